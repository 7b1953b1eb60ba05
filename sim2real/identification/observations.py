"""Joint states from observations: a recording that holds what the policy saw (and its commands), not MuJoCo's
``qpos`` and ``qvel``, as a robot's logs often do.

The gymnasium MuJoCo envs' observations are known functions of the state, and for these envs they can be
inverted row by row:

- Hopper, Walker2d, HalfCheetah (and Swimmer): ``[qpos[k:], qvel]``. The first ``k`` positions, where the
  body is in the plane (x; Swimmer's x and y), are not observed; they are irrelevant to the fit, since the
  floor is the same everywhere, and are set to 0. Hopper's and Walker2d's velocities are clipped to +-10:
  a row with a clipped velocity does not hold the state, and is cut out (it ends its episode's piece).
- InvertedPendulum: ``[qpos, qvel]``.
- InvertedDoublePendulum: ``[cart x, sin and cos of both hinge angles, qvel (clipped to +-10), the cart's
  constraint force]``: the angles are ``atan2(sin, cos)``, unwrapped along each episode; the force is derived,
  not needed.

A layout that does not match the env is refused rather than fitted: the positions read from it must move as its
velocities say (the same check that :mod:`~sim2real.identification.smoothing` rests on).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.errors import Sim2RealError
from sim2real.identification.trajectories import Trajectories

# Velocities the envs clip their observation at.
CLIP = 10.0
# The layout check compares each position's change over a few steps with its velocity's integral over them: the
# steps (a third of a typical piece, at most this many) let the motion outgrow the sensor noise (Hopper with noise
# 0.02: correlation 0.06 over one step, 0.43 or more over 10; with 0.05, 0.14 or more; columns in the wrong order:
# -0.34 to -0.01), and a correlation counts when it is 2 standard errors above zero.
LAYOUT_STEPS = 10
# ... and a position that follows another velocity better than its own by this much follows that one: two coupled
# joints read swapped (Hopper's pitch and thigh: 0.97 against 0.5 or less); every recording of the env's own
# layout, noise up to 0.05, stays far below it.
ASTRAY = 0.2

Inverse = Callable[[np.ndarray, int, int], tuple[np.ndarray, np.ndarray, np.ndarray]]


def _planar(hidden: int, clipped: bool) -> Inverse:
    """``[qpos[hidden:], qvel]``: the hidden positions set to 0; rows with a clipped velocity not known."""

    def inverse(obs: np.ndarray, nq: int, nv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        shown = nq - hidden
        qpos = np.concatenate([np.zeros((len(obs), hidden)), obs[:, :shown]], axis=1)
        qvel = obs[:, shown : shown + nv]
        known = ~(np.abs(qvel) >= CLIP).any(axis=1) if clipped else np.ones(len(obs), dtype=bool)
        return qpos, qvel, known

    return inverse


def _double_pendulum(obs: np.ndarray, nq: int, nv: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    hinges = nq - 1
    angles = np.arctan2(obs[:, 1 : 1 + hinges], obs[:, 1 + hinges : 1 + 2 * hinges])
    qpos = np.concatenate([obs[:, :1], angles], axis=1)
    qvel = obs[:, 1 + 2 * hinges : 1 + 2 * hinges + nv]
    return qpos, qvel, ~(np.abs(qvel) >= CLIP).any(axis=1)


# Each supported env (its unwrapped class), how its observation inverts, and the size it must have.
INVERSES: dict[str, tuple[Inverse, Callable[[int, int], int]]] = {
    "HopperEnv": (_planar(1, clipped=True), lambda nq, nv: nq - 1 + nv),
    "Walker2dEnv": (_planar(1, clipped=True), lambda nq, nv: nq - 1 + nv),
    "HalfCheetahEnv": (_planar(1, clipped=False), lambda nq, nv: nq - 1 + nv),
    "SwimmerEnv": (_planar(2, clipped=False), lambda nq, nv: nq - 2 + nv),
    "InvertedPendulumEnv": (_planar(0, clipped=False), lambda nq, nv: nq + nv),
    "InvertedDoublePendulumEnv": (_double_pendulum, lambda nq, nv: 1 + 2 * (nq - 1) + nv + 1),
}


def with_states(path: Path, trajectories: Trajectories, env: Any, period: float) -> Trajectories:
    """``trajectories`` with ``qpos`` and ``qvel`` read from its observations (see the module docstring); rows
    whose state the observation does not hold split their episode (they start and end no replay window).

    Raises:
        Sim2RealError: the env's observation is not invertible here, or the recording's is not its layout.
    """
    unwrapped = env.unwrapped
    kind = type(unwrapped).__name__
    if kind not in INVERSES:
        raise Sim2RealError(
            f"{path}: holds observations, not qpos and qvel, and {kind}'s observation is not one sim2real reads "
            f"states from ({', '.join(sorted(INVERSES))}); record qpos and qvel"
        )
    if trajectories.observation is None:
        raise Sim2RealError(f"{path}: holds neither qpos and qvel nor observation columns")
    if getattr(unwrapped, "_exclude_current_positions_from_observation", True) is False:
        raise Sim2RealError(f"{path}: the env's observation includes the x position; record qpos and qvel")
    inverse, size = INVERSES[kind]
    nq, nv = int(unwrapped.model.nq), int(unwrapped.model.nv)
    obs = trajectories.observation
    if obs.shape[1] != size(nq, nv):
        raise Sim2RealError(f"{path}: observation has {obs.shape[1]} columns, {kind}'s has {size(nq, nv)}")
    if kind == "InvertedDoublePendulumEnv":
        norms = obs[:, 1:3] ** 2 + obs[:, 3:5] ** 2  # 1, up to the sensor noise
        if np.median(np.abs(norms - 1.0)) > 0.2:
            raise Sim2RealError(f"{path}: observation columns 1 to 4 are not the sines and cosines of the angles")
    qpos, qvel, known = inverse(obs, nq, nv)
    qpos = _unwrap(qpos, trajectories.episode, kind)
    episode = _pieces(trajectories.episode, known)
    _check_layout(path, qpos, qvel, episode, period)
    return replace(trajectories, episode=episode, qpos=qpos, qvel=qvel,
                   header={**trajectories.header, "states_from": "observation",
                           "episodes_recorded": trajectories.episodes})  # fmt: skip


def _unwrap(qpos: np.ndarray, episode: np.ndarray, kind: str) -> np.ndarray:
    """Hinge angles read as atan2 continue across +-pi within an episode (a pendulum that went over the top)."""
    if kind != "InvertedDoublePendulumEnv":
        return qpos
    out = qpos.copy()
    for rows in np.split(np.arange(len(episode)), np.flatnonzero(np.diff(episode)) + 1):
        out[rows, 1:] = np.unwrap(qpos[rows, 1:], axis=0)
    return out


def _pieces(episode: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Episode numbers that keep each run of known rows of an episode together and put every unknown row in a
    piece of its own: a piece of one row holds no transition, so no window starts or ends there."""
    new = np.ones(len(episode), dtype=bool)
    new[1:] = (episode[1:] != episode[:-1]) | ~known[1:] | ~known[:-1]
    return np.cumsum(new) - 1


def _check_layout(path: Path, qpos: np.ndarray, qvel: np.ndarray, episode: np.ndarray, period: float) -> None:
    """Each observed position moves as its velocity says over a few consecutive rows of a piece."""
    lengths = np.unique(episode, return_counts=True)[1]
    k = int(np.clip(np.median(lengths) // 3, 1, LAYOUT_STEPS))
    rows = np.arange(max(len(episode) - k, 0))
    rows = rows[episode[rows] == episode[rows + k]]
    if len(rows) < 10:  # too little to tell
        return
    trapezoid = 0.5 * period * (qvel[1:] + qvel[:-1])
    integral = np.vstack([np.zeros((1, qvel.shape[1])), np.cumsum(trapezoid, axis=0)])
    moved, said = qpos[rows + k] - qpos[rows], integral[rows + k] - integral[rows]
    enough = 2.0 / np.sqrt(len(rows))
    shared = min(qpos.shape[1], qvel.shape[1])
    live = [j for j in range(shared) if np.std(moved[:, j]) > 0 and np.std(said[:, j]) > 0]  # not hidden, not still
    if not live:
        return
    match = np.corrcoef(moved[:, live].T, said[:, live].T)[: len(live), len(live) :]  # position j, velocity i
    own = np.diag(match)
    # A position that barely moves within the noise follows no velocity; one that follows another velocity than
    # its own, or most positions following none, is a layout read wrongly.
    astray = [(j, int(np.argmax(row))) for j, row in enumerate(match) if row.max() - own[j] >= max(enough, ASTRAY)]
    if astray or np.median(own) < enough:
        j, i = astray[0] if astray else (int(np.argmin(own)), int(np.argmin(own)))
        raise Sim2RealError(
            f"{path}: the observation does not hold the env's layout: position {live[j]} read from it moves as "
            f"velocity {live[i]} says (correlation {match[j, i]:.2f} over {k} steps), not as its own "
            f"({own[j]:.2f}); record qpos and qvel, or the env's own observation"
        )
