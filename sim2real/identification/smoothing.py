"""Sensor noise taken out of a recording's joint positions before a fit, from the recording alone.

Why: each replay window starts from the recorded state. With noise on the recorded positions the start is wrong,
and the simulator's reply to a wrong start (a foot 1 cm into the floor) is what the fit then explains with wrong
masses and friction: an errors-in-variables bias that more data does not shrink (BENCHMARKS.md, identification).

How: a joint's position moves by the integral of its velocity, and the recorded velocity pins that integral
well over one control step (its noise is multiplied by the step's length). So each joint's positions in an
episode are re-estimated as the least-squares compromise between what was recorded and what the recorded
velocities say happened between rows (the trapezoid rule)::

    minimize  sum_t (p_t - p~_t)^2 / s_p^2  +  sum_t (p_{t+1} - p_t - dt (v~_t + v~_{t+1}) / 2)^2 / s_k^2

a tridiagonal linear system per joint and episode. Both variances come from the recording: the residuals
``r_t = p~_{t+1} - p~_t - dt (v~_t + v~_{t+1}) / 2`` share the noise of row ``t + 1`` with opposite signs, so
their lag-1 covariance is ``-s_p^2``, and their variance is ``2 s_p^2 + s_k^2`` (``s_k``: what the trapezoid
misses, the integrator's own error and the velocity noise). A clean recording has ``s_p ~ 0`` and keeps its
positions. Free joints' orientation (a quaternion) is left as recorded; their position is smoothed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import mujoco
import numpy as np
from scipy.linalg import solve_banded

from sim2real.identification.trajectories import Trajectories

# Noise is there when the residuals alternate: their lag-1 correlation is -s_p^2 / (2 s_p^2 + s_k^2), -0.5 for noise
# alone, -0.1 to -0.25 for a clean recording (the integrator's own errors); below -NOISE_FLOOR the noise is taken out.
NOISE_FLOOR = 0.35
# A residual further than this many robust stds out is an impact's, not noise (see _variances).
OUTLIER = 4.0
CHI2_MEDIAN = 0.4549  # the median of a squared standard normal: median(r^2) / CHI2_MEDIAN estimates var(r)
# Too short an episode says nothing about the noise.
MIN_ROWS = 5


@dataclass
class Smoothing:
    """What was taken out: per smoothed position coordinate, the estimated noise (its std, in the coordinate's
    units) and the std of what the recorded velocities miss; ``smoothed`` coordinates had noise to remove."""

    names: list[str]
    noise: list[float]
    integration: list[float]
    smoothed: list[bool]

    def as_dict(self) -> dict[str, dict[str, float | bool]]:
        return {n: {"noise": s, "integration": k, "smoothed": b}
                for n, s, k, b in zip(self.names, self.noise, self.integration, self.smoothed, strict=True)}  # fmt: skip


def _coordinates(model: mujoco.MjModel) -> list[tuple[str, int, int]]:
    """(name, qpos index, dof index) of every position coordinate whose rate is one velocity: hinge and slide
    joints, and the translation of free joints."""
    pairs = []
    for joint in range(model.njnt):
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, joint) or f"joint{joint}"
        kind, qpos, dof = int(model.jnt_type[joint]), model.jnt_qposadr[joint], model.jnt_dofadr[joint]
        if kind in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            pairs.append((name, int(qpos), int(dof)))
        elif kind == int(mujoco.mjtJoint.mjJNT_FREE):
            pairs += [(f"{name}[{axis}]", int(qpos) + axis, int(dof) + axis) for axis in range(3)]
    return pairs


def _variances(residuals: list[np.ndarray]) -> tuple[float, float, float]:
    """The noise variance and the integration variance of one coordinate, pooled over its episodes, and the
    bound above which a step is an outlier: an impact, where the velocity jumps within the step and the trapezoid
    says nothing. The spread is read robustly (the median of the squares), so a few impacts do not pass for noise
    or for a poor integrator."""
    squares = np.concatenate(residuals) ** 2
    bound = OUTLIER**2 * float(np.median(squares)) / CHI2_MEDIAN
    inlier = [r**2 <= bound for r in residuals]
    pairs = np.concatenate([r[:-1] * r[1:] * (k[:-1] & k[1:]) for r, k in zip(residuals, inlier, strict=True)])
    counted = sum(int((k[:-1] & k[1:]).sum()) for k in inlier)
    noise = max(0.0, -float(pairs.sum()) / counted) if counted else 0.0
    spread = float(np.mean(squares[squares <= bound])) if (squares <= bound).any() else float(np.mean(squares))
    # Below a ten-thousandth of the noise the integration's variance changes nothing but the solve's conditioning.
    return noise, max(spread - 2 * noise, 1e-4 * noise, 1e-18), bound


def _solve(recorded: np.ndarray, steps: np.ndarray, noise: float, integration: np.ndarray) -> np.ndarray:
    """The positions that minimize the objective of the module docstring for one episode (tridiagonal), each
    step with its own integration variance."""
    a, b = 1.0 / noise, 1.0 / integration
    diagonal = np.full(len(recorded), a)
    diagonal[:-1] += b
    diagonal[1:] += b
    bands = np.zeros((3, len(recorded)))
    bands[0, 1:] = -b
    bands[1] = diagonal
    bands[2, :-1] = -b
    rhs = a * recorded
    rhs[:-1] -= b * steps
    rhs[1:] += b * steps
    return np.asarray(solve_banded((1, 1), bands, rhs))


def smooth_positions(trajectories: Trajectories, model: mujoco.MjModel, dt: float) -> tuple[Trajectories, Smoothing]:
    """A copy of ``trajectories`` with each position coordinate's noise taken out (module docstring), and what
    was estimated. ``dt``: the control period (s)."""
    qpos = trajectories.qpos.astype(np.float64, copy=True)
    qvel = trajectories.qvel
    episodes = [np.flatnonzero(trajectories.episode == e) for e in np.unique(trajectories.episode)]
    episodes = [rows for rows in episodes if len(rows) >= MIN_ROWS]
    names, noises, integrations, smoothed = [], [], [], []
    for name, position, dof in _coordinates(model):
        steps = [dt * 0.5 * (qvel[rows[:-1], dof] + qvel[rows[1:], dof]) for rows in episodes]
        residuals = [np.diff(qpos[rows, position]) - step for rows, step in zip(episodes, steps, strict=True)]
        if not residuals:
            continue
        noise, integration, bound = _variances(residuals)
        useful = noise > NOISE_FLOOR * (2 * noise + integration)
        if useful:
            for rows, step, r in zip(episodes, steps, residuals, strict=True):
                # An outlier step (an impact) constrains nothing beyond what its own residual says.
                per_step = np.where(r**2 <= bound, integration, np.maximum(r**2, integration))
                qpos[rows, position] = _solve(qpos[rows, position], step, noise, per_step)
        names.append(name)
        noises.append(float(np.sqrt(noise)))
        integrations.append(float(np.sqrt(integration)))
        smoothed.append(bool(useful))
    return replace(trajectories, qpos=qpos), Smoothing(names, noises, integrations, smoothed)
