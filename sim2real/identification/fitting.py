"""Fit named dynamics quantities so that replaying recorded commands reproduces the recorded motion.

The objective: from the recorded state at the start of each window, the simulator replays the recorded commands
for ``horizon`` control steps, and the simulated joint states (``qpos``, ``qvel``) are compared with the
recorded ones, each dimension divided by how much it moves over a window in the recording. Windows do not
overlap, so each is an independent piece of evidence.

The hot loop is MuJoCo's own ``mujoco.rollout``: every candidate parameter set is one model copy, and every
(candidate, window) pair one open-loop rollout, stepped in C on a thread pool. CMA-ES (the ``cma`` package)
searches the parameters, scaled to [0, 1] within their ranges, and Gauss-Newton with Levenberg-Marquardt
(``mujoco.minimize.least_squares``, the solver of MuJoCo's ``mujoco.sysid``) then polishes its estimate: the
search finds the basin of an objective that contacts make rugged, the least-squares steps its optimum.

Uncertainty, at the estimate: the residuals' Jacobian (central differences, one batched rollout) gives the
Gauss-Newton curvature ``H`` of the objective (in relative units: a 1% change of each value). Along each of
its eigenvectors the objective is probed 25% away; a direction in which it barely rises is not identified by
the recording: one parameter alone is named as flat, several together as identified only in combination
(every mass, the motor gear and the damping scaled together give the same accelerations). Elsewhere the 95%
interval is the cluster-robust sandwich ``H^-1 B H^-1`` over windows, which holds when the residuals within a
window are correlated (they share one start state), widened by the search's own tolerance (CMA-ES stops once
its steps are below ``tolerance`` of each range, so the estimate is that far from the optimum at most in a
well-conditioned fit). It assumes the quantities not fitted are right, and it does not hold the bias that
noisy start states leave (BENCHMARKS.md).
"""

from __future__ import annotations

import copy
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout
from scipy.signal import lfilter

from sim2real.config import ACTION_LAG, SENSOR_OFFSET, IdentifyParam
from sim2real.dynamics import Change, Dynamics
from sim2real.errors import Sim2RealError
from sim2real.identification.trajectories import Trajectories

# How far (relative) the flatness test moves along each direction of the curvature.
MOVE = 0.25
# A rise of the objective below this is no evidence (see _uncertainty).
FLAT_RISE = 1e-6
# A parameter takes part in a weak direction when its share of the eigenvector is above this.
PART_OF_DIRECTION = 0.3
# Step of the central differences, as a share of each parameter's range.
DIFFERENCE_STEP = 0.01
# The Gauss-Newton polish: its finite-difference step (in the unit cube of the ranges) and iterations at most.
POLISH_STEP = 1e-6
POLISH_ITERATIONS = 50
# Why CMA-ES stopped, and whether that means it converged.
_CONVERGED = {"tolx", "tolfun", "tolfunhist", "tolflatfitness", "tolupsigma"}


@dataclass
class Windows:
    """Replay windows cut from a recording: start states, the commands after them and the states they led to."""

    starts: np.ndarray  # (W,) row of each window's start in the recording
    initial: np.ndarray  # (W, nstate) MuJoCo full-physics state at each start
    control: np.ndarray  # (W, horizon * frame_skip, nu) the commands, held for frame_skip physics steps
    target: np.ndarray  # (W, horizon, nq + nv) recorded states after each control step
    scale: np.ndarray  # (nq + nv,) how much each dimension moves over a window (the residuals' unit)
    # For a motor lag, which filters every command an episode sent before a window too:
    delayed: np.ndarray | None = None  # (rows, nu) the command reaching the motor at each row (latency applied)
    first: np.ndarray | None = None  # each episode's first row, in order (rows 0 to first[1] - 1 are episode 0's)
    idle: np.ndarray | None = None  # (nu,) the motor's command at each episode's start (the action midpoint)
    period: float = 0.0  # seconds per control step

    def lagged(self, tau: float) -> np.ndarray:
        """The windows' controls through a first-order motor lag of time constant ``tau`` seconds, as the
        ``action_lag`` wrapper applies it: filtered from each episode's start, so a window's first command
        carries what the motor still held of the ones before."""
        assert self.delayed is not None and self.first is not None and self.idle is not None
        if tau <= 0:
            return self.control
        share = -math.expm1(-self.period / tau)
        applied = np.empty_like(self.delayed)
        for rows in np.split(np.arange(len(self.delayed)), self.first[1:]):
            applied[rows] = lfilter([share], [1.0, share - 1.0], self.delayed[rows], axis=0,
                                    zi=((1.0 - share) * self.idle)[None, :])[0]  # fmt: skip
        horizon = self.target.shape[1]
        frame_skip = self.control.shape[1] // horizon
        return np.repeat(applied[self.starts[:, None] + np.arange(horizon)], frame_skip, axis=1)


def cut_windows(
    trajectories: Trajectories,
    model: mujoco.MjModel,
    frame_skip: int,
    horizon: int,
    max_windows: int,
    latency: int = 0,
    skip: int | None = None,
) -> Windows:
    """Non-overlapping windows of ``horizon`` steps inside episodes, at most ``max_windows`` evenly spread.

    ``latency``: control steps between a command being sent and the motor applying it; the replay of step ``t``
    applies the command of row ``t - latency``, so windows start ``skip`` (default: ``latency``) rows into an
    episode; the same ``skip`` for several latencies compares them on the same windows.
    """
    skip = latency if skip is None else skip
    episode = trajectories.episode
    rows = len(episode)
    starts: list[int] = []
    begin = 0
    while begin < rows:
        end = begin
        while end + 1 < rows and episode[end + 1] == episode[begin]:
            end += 1
        # Rows begin..end; a window needs start + horizon, and the command sent latency rows before its start.
        starts.extend(range(begin + skip, end - horizon + 1, horizon))
        begin = end + 1
    if not starts:
        longest = int(np.max(np.unique(episode, return_counts=True)[1]))
        raise Sim2RealError(
            f"no episode is longer than the horizon of {horizon} steps (the longest has {longest} rows); "
            "record longer episodes or give a shorter {horizon}",
            horizon=horizon,
        )
    if len(starts) > max_windows:
        starts = [starts[i] for i in np.linspace(0, len(starts) - 1, max_windows).round().astype(int)]
    start = np.asarray(starts)
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    data = mujoco.MjData(model)
    initial = np.empty((len(start), mujoco.mj_stateSize(model, spec)))
    for i, row in enumerate(start):
        mujoco.mj_resetData(model, data)
        data.qpos[:] = trajectories.qpos[row]
        data.qvel[:] = trajectories.qvel[row]
        mujoco.mj_getState(model, data, initial[i], spec)
    offsets = np.arange(horizon)
    commands = trajectories.action[start[:, None] + offsets - latency]  # (W, horizon, nu)
    control = np.repeat(commands, frame_skip, axis=1)
    states = np.concatenate([trajectories.qpos, trajectories.qvel], axis=1)
    target = states[start[:, None] + offsets + 1]
    moved = target[:, -1] - states[start]
    scale = moved.std(axis=0)
    scale = np.maximum(scale, max(1e-8, 1e-3 * float(scale.max())))
    # What reaches the motor at each row: the command sent latency rows before, or nothing yet (the midpoint).
    limited = model.actuator_ctrllimited.astype(bool)
    idle = np.where(limited, model.actuator_ctrlrange.mean(axis=1), 0.0)
    first = np.r_[0, np.flatnonzero(np.diff(episode)) + 1]
    begins = first[np.searchsorted(first, np.arange(rows), side="right") - 1]
    source = np.arange(rows) - latency
    delayed = np.where((source >= begins)[:, None], trajectories.action[np.maximum(source, 0)], idle)
    period = float(model.opt.timestep) * frame_skip
    return Windows(start, initial, control, target, scale, delayed, first, idle, period)


class Replay:
    """Replays windows on model copies with candidate parameter values (``mujoco.rollout``).

    Args:
        model: the model the parameters change (the config's source domain applied).
        base: the source domain's own fixed changes, applied before the parameters.
        params: what is fitted.
        windows: the replay windows.
        frame_skip: physics steps per control step.
        threads: rollout threads.
    """

    def __init__(
        self,
        model: mujoco.MjModel,
        base: Sequence[Change],
        params: Sequence[IdentifyParam],
        windows: Windows,
        frame_skip: int,
        threads: int,
    ) -> None:
        self.model = model
        self.base = list(base)
        self.params = list(params)
        self.windows = windows
        self.frame_skip = frame_skip
        self.threads = threads
        self.low = np.array([p.bounds[0] for p in params])
        self.high = np.array([p.bounds[1] for p in params])
        # The motor lag is not in the model: it filters the commands the windows replay. A sensor offset is not
        # either: it is what the recorded positions hold beyond the joints' (qpos addresses per parameter).
        self._lag = next((i for i, p in enumerate(self.params) if p.quantity == ACTION_LAG), None)
        self._offsets = {
            i: _position_columns(model, p) for i, p in enumerate(self.params) if p.quantity == SENSOR_OFFSET
        }
        self._copies: list[Dynamics] = []
        self._datas = [mujoco.MjData(model) for _ in range(threads)]
        self.nq = model.nq
        self.rollouts = 0

    def values(self, unit: np.ndarray) -> np.ndarray:
        """Parameter values of points in the unit cube (the optimizer's coordinates)."""
        return self.low + np.clip(unit, 0.0, 1.0) * (self.high - self.low)

    def changes(self, values: Sequence[float] | np.ndarray) -> list[Change]:
        return [
            *self.base,
            *(Change(p.quantity, p.op, float(v), p.select)
              for p, v in zip(self.params, values, strict=True) if p.quantity not in OUTSIDE_THE_MODEL),
        ]  # fmt: skip

    def check(self) -> None:
        """Refuses parameters the model does not have and ranges the physics refuses (either end), and warns
        (:class:`~sim2real.errors.NoEffectWarning`) about a parameter that changes nothing."""
        dynamics = Dynamics(copy.copy(self.model))
        neutral = self.values(start_point(self.params))
        for index, param in enumerate(self.params):
            if param.quantity in OUTSIDE_THE_MODEL:  # checked by the schema and _position_columns
                continue
            for end in param.bounds:
                values = neutral.copy()
                values[index] = end
                try:
                    dynamics.check(dynamics.resolve(self.changes(values)))
                except Sim2RealError as error:
                    raise Sim2RealError(
                        f"{{params}} {param.label()} {list(param.bounds)}: {error}", params=None
                    ) from None
        dynamics.apply(self.changes(neutral), check_friction=True)

    def _models(self, values: np.ndarray) -> list[mujoco.MjModel]:
        while len(self._copies) < len(values):
            self._copies.append(Dynamics(copy.copy(self.model)))
        models = []
        for dynamics, point in zip(self._copies, values, strict=False):
            dynamics.apply(self.changes(point), check_friction=False)
            models.append(dynamics.model)
        return models

    def simulate(self, values: np.ndarray) -> np.ndarray:
        """Simulated states (P, W, horizon, nq + nv) of every window under each of P parameter sets, as the
        recording's sensors would read them (a sensor offset added to its joints' positions)."""
        w = self.windows
        values = np.atleast_2d(values)
        models = self._models(values)
        count, n_windows = len(models), len(w.starts)
        batch = [m for m in models for _ in range(n_windows)]
        shift = self._shift(values)  # (P, nq): what each candidate's sensors add to the true positions
        initial = np.tile(w.initial, (count, 1))
        initial[:, 1 : 1 + self.nq] -= np.repeat(shift, n_windows, axis=0)  # a window starts where the joints were
        state, _ = rollout.rollout(batch, self._datas, initial, self._controls(values), persistent_pool=True)
        self.rollouts += len(batch)
        # The state after control step j is the last of its frame_skip physics steps; columns 1.. are qpos, qvel.
        after = state[:, self.frame_skip - 1 :: self.frame_skip, 1 : 1 + self.nq + self._nv]
        after = after.reshape(count, n_windows, -1, self.nq + self._nv)
        after[..., : self.nq] += shift[:, None, None, :]
        return after

    def _shift(self, values: np.ndarray) -> np.ndarray:
        shift = np.zeros((len(values), self.nq))
        for index, columns in self._offsets.items():
            shift[:, columns] += values[:, index, None]
        return shift

    def _controls(self, values: np.ndarray) -> np.ndarray:
        """Every (candidate, window) pair's controls, in the batch's order: the recorded ones, or each
        candidate's lagged."""
        w = self.windows
        if self._lag is None:
            return np.tile(w.control, (len(values), 1, 1))
        return np.concatenate([w.lagged(float(point[self._lag])) for point in values])

    @property
    def _nv(self) -> int:
        return int(self.model.nv)

    def residuals(self, values: np.ndarray) -> np.ndarray:
        """Normalized residuals (P, W, horizon * (nq + nv))."""
        simulated = self.simulate(values)
        error = (simulated - self.windows.target[None]) / self.windows.scale
        return error.reshape(error.shape[0], error.shape[1], -1)

    def losses(self, values: np.ndarray) -> np.ndarray:
        """Mean squared normalized residual of each parameter set."""
        return np.mean(self.residuals(values) ** 2, axis=(1, 2))


# Fitted quantities that are not the model's: the motor lag filters the commands, a sensor offset shifts what the
# recording says of the joints' positions.
OUTSIDE_THE_MODEL = (ACTION_LAG, SENSOR_OFFSET)


def _position_columns(model: mujoco.MjModel, param: IdentifyParam) -> list[int]:
    """The qpos addresses of a sensor offset's joints: hinges and slides, whose position is one number."""
    names = param.select if isinstance(param.select, list) else [param.select]
    if names == ["all"]:
        names = [model.joint(j).name for j in range(model.njnt)]
    columns = []
    for name in names:
        joint = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, str(name))
        if joint < 0:
            raise Sim2RealError(f"{{params}} {param.label()}: the model has no joint '{name}'", params=None)
        if int(model.jnt_type[joint]) not in (int(mujoco.mjtJoint.mjJNT_HINGE), int(mujoco.mjtJoint.mjJNT_SLIDE)):
            raise Sim2RealError(
                f"{{params}} {param.label()}: joint '{name}' is not a hinge or a slide; a sensor offset is one "
                "number added to one joint position",
                params=None,
            )
        columns.append(int(model.jnt_qposadr[joint]))
    return columns


@dataclass
class Estimate:
    """One fitted parameter: its value, 95% interval, sensitivity and whether the recording pins it."""

    param: IdentifyParam
    value: float
    low: float
    high: float
    sensitivity: float  # rise of the objective, relative to its value at the estimate, for a 1% change
    identified: bool
    note: str = ""


@dataclass
class Fit:
    """What identification found, with how it got there."""

    estimates: list[Estimate]
    loss_start: float  # the objective at the config's source domain (or the ranges' centres)
    loss: float  # the objective at the estimate
    converged: bool
    stop: str  # why CMA-ES stopped
    generations: int
    evaluations: int
    rollouts: int
    seconds: float
    combinations: list[list[str]] = field(default_factory=list)  # names identified only together
    history: list[dict[str, float]] = field(default_factory=list)  # per generation: best loss, sigma, values
    polish: int = 0  # Gauss-Newton iterations that lowered the objective after CMA-ES (0: none did)

    def to_json(self) -> dict[str, Any]:
        return {
            "converged": self.converged,
            "stop": self.stop,
            "loss_start": self.loss_start,
            "loss": self.loss,
            "generations": self.generations,
            "evaluations": self.evaluations,
            "rollouts": self.rollouts,
            "polish": self.polish,
            "seconds": round(self.seconds, 3),
            "combinations": self.combinations,
            "parameters": [
                {
                    "name": e.param.name,
                    "op": e.param.op,
                    "range": list(e.param.bounds),
                    "value": e.value,
                    "interval": [e.low, e.high],
                    "sensitivity": e.sensitivity,
                    "identified": e.identified,
                    "note": e.note,
                }
                for e in self.estimates
            ],
        }


def start_point(params: Sequence[IdentifyParam]) -> np.ndarray:
    """Where the search starts, in the unit cube: the model's own value (scale 1, offset 0) when the range holds
    it, else the range's centre."""
    point = []
    for p in params:
        low, high = p.bounds
        neutral = 0.0 if p.quantity == ACTION_LAG else {"scale": 1.0, "offset": 0.0}.get(p.op)
        inside = neutral is not None and low <= neutral <= high
        point.append((neutral - low) / (high - low) if inside else 0.5)  # type: ignore[operator]
    return np.array(point)


def fit(
    replay: Replay,
    *,
    seed: int = 0,
    max_generations: int = 200,
    popsize: int | None = None,
    tolerance: float = 2e-3,
    on_generation: Callable[[int, dict[str, float]], None] | None = None,
) -> Fit:
    """Searches the parameters with CMA-ES, then measures the estimate's uncertainty and identifiability.

    Args:
        replay: the windows and models to replay.
        seed: seeds CMA-ES's sampling.
        max_generations: CMA-ES generations at most; stopping there means it did not converge.
        popsize: candidates per generation (default: CMA-ES's own, 4 + 3 ln(d)).
        tolerance: stop when every coordinate's step is below this share of its range.
        on_generation: called with (generation, record) after each generation (TensorBoard, progress).
    """
    import cma

    began = time.perf_counter()
    dims = len(replay.params)
    x0 = start_point(replay.params)
    loss_start = float(replay.losses(replay.values(x0)[None])[0])
    options: dict[str, Any] = {
        "bounds": [0.0, 1.0],
        "seed": seed + 1,  # cma reads 0 as "draw a seed from the clock"
        "maxiter": max_generations,
        "tolx": tolerance,
        "tolfun": 1e-12,
        "verbose": -9,
    }
    if popsize is not None:
        options["popsize"] = popsize
    if dims == 1:
        # CMA-ES needs two dimensions; a second, dummy coordinate that the objective ignores.
        x0 = np.append(x0, 0.5)
    strategy = cma.CMAEvolutionStrategy(list(x0), 0.3, options)
    history: list[dict[str, float]] = []
    while not strategy.stop():
        candidates = np.array(strategy.ask())
        losses = replay.losses(replay.values(candidates[:, :dims]))
        strategy.tell(list(candidates), list(losses))
        best = replay.values(np.array(strategy.result.xbest)[:dims])
        record = {"loss": float(strategy.result.fbest), "sigma": float(strategy.sigma)}
        record.update({p.name: float(v) for p, v in zip(replay.params, best, strict=True)})
        history.append(record)
        if on_generation is not None:
            on_generation(len(history), record)
    stop = ", ".join(strategy.stop())
    converged = bool(_CONVERGED & set(strategy.stop()))
    unit = np.array(strategy.result.xbest)[:dims]
    unit, polish = _polish(replay, unit, float(strategy.result.fbest))
    estimate = replay.values(unit)
    loss = float(replay.losses(estimate[None])[0])
    estimates, combinations = _uncertainty(replay, unit, loss, tolerance)
    return Fit(
        estimates=estimates,
        loss_start=loss_start,
        loss=loss,
        converged=converged,
        stop=stop,
        generations=len(history),
        evaluations=int(strategy.result.evaluations),
        rollouts=replay.rollouts,
        seconds=time.perf_counter() - began,
        combinations=combinations,
        history=history,
        polish=polish,
    )


def _polish(replay: Replay, unit: np.ndarray, loss: float) -> tuple[np.ndarray, int]:
    """CMA-ES's estimate refined by Gauss-Newton with Levenberg-Marquardt (``mujoco.minimize.least_squares``,
    finite differences batched through the same rollouts), kept where it lowers the objective. CMA-ES finds the
    basin of an objective that contacts make rugged; within it, the least-squares steps reach the optimum that
    the search's tolerance stops short of (clean recordings: MuJoCo's own ``mujoco.sysid``, which is
    Gauss-Newton alone, was exact there where CMA-ES alone was 0.01% to 0.2% off)."""
    from mujoco import minimize

    def residual(x: np.ndarray) -> np.ndarray:
        points = np.atleast_2d(x.T)  # (k, d): one row per point asked
        columns = replay.residuals(replay.values(points)).reshape(len(points), -1).T
        return columns if x.ndim > 1 else columns[:, 0]

    try:
        found, trace = minimize.least_squares(unit, residual, bounds=(np.zeros(len(unit)), np.ones(len(unit))),
                                              eps=POLISH_STEP, max_iter=POLISH_ITERATIONS, verbose=0)  # fmt: skip
    except (ValueError, np.linalg.LinAlgError, FloatingPointError):
        return unit, 0
    found = np.clip(found, 0.0, 1.0)
    if float(replay.losses(replay.values(found)[None])[0]) >= loss:
        return unit, 0
    return found, len(trace)


def _uncertainty(
    replay: Replay, unit: np.ndarray, loss: float, tolerance: float = 0.0
) -> tuple[list[Estimate], list[list[str]]]:
    """Intervals, sensitivities and weak directions at the estimate ``unit`` (see the module docstring); each
    interval is widened by ``tolerance`` of its range, where the search stopped (CMA-ES's ``tolx``)."""
    params = replay.params
    dims = len(params)
    width = replay.high - replay.low
    estimate = replay.values(unit)
    # Central differences in parameter units; one-sided at a bound.
    step = DIFFERENCE_STEP * width
    upper = np.minimum(estimate + step, replay.high)
    lower = np.maximum(estimate - step, replay.low)
    points = np.concatenate([np.where(np.eye(dims, dtype=bool), upper, estimate),
                             np.where(np.eye(dims, dtype=bool), lower, estimate)])  # fmt: skip
    residuals = replay.residuals(np.vstack([points, estimate[None]]))
    at_estimate = residuals[-1]  # (W, n)
    jacobian = (residuals[:dims] - residuals[dims : 2 * dims]) / (upper - lower)[:, None, None]  # (d, W, n)
    windows, per_window = at_estimate.shape
    total = windows * per_window
    # Curvature in relative units (a 1% change of a scale or a set value), so that a direction in which every
    # value changes by the same factor (all masses with the motor gear) looks like one; an offset, or a value
    # near zero, is measured in units of its range.
    units = np.where([p.op != "offset" for p in params] & (np.abs(estimate) > 1e-3 * width), np.abs(estimate), width)
    scaled = jacobian * units[:, None, None]
    hessian = 2.0 * np.einsum("iwn,jwn->ij", scaled, scaled) / total
    _, eigenvectors = np.linalg.eigh(hessian)
    # A direction is flat when moving 25% along it (both ways) raises the objective by less than what the
    # windows can tell apart (a chi-square test with one degree of freedom, one window one observation), or
    # by under 1e-6: errors of a thousandth of how far the joints move in a window (noise-free data).
    moves = np.concatenate([eigenvectors.T, -eigenvectors.T]) * MOVE * units
    probes = np.clip(estimate + moves, replay.low, replay.high)
    rises = replay.losses(probes).reshape(2, dims).min(axis=0) - loss
    significant_rise = max(3.84 / windows * loss, FLAT_RISE)
    unpinned: set[int] = set()
    combinations: list[list[str]] = []
    for k in range(dims):
        if rises[k] >= significant_rise:
            continue
        members = [i for i in range(dims) if abs(eigenvectors[i, k]) > PART_OF_DIRECTION]
        unpinned.update(members)
        if len(members) > 1:
            combinations.append([params[i].name for i in members])
    # Cluster-robust (sandwich) covariance over windows, in the pinned subspace.
    per_window_gradient = np.einsum("iwn,wn->wi", scaled, at_estimate) * 2.0 / total
    meat = per_window_gradient.T @ per_window_gradient
    bread = np.linalg.pinv(hessian, rcond=1e-12)
    covariance = bread @ meat @ bread
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None)) * units
    estimates = []
    for i, param in enumerate(params):
        value = float(estimate[i])
        rise = 0.5 * hessian[i, i] * 0.01**2  # a 1% change (of the range, for offsets and values near zero)
        sensitivity = rise / max(loss, 1e-12)
        if i in unpinned:
            together = next((c for c in combinations if param.name in c), None)
            note = (
                f"identified only together with {', '.join(n for n in together if n != param.name)}"
                if together
                else "not identifiable from this recording: the fit is flat in it"
            )
            estimates.append(
                Estimate(param, value, *param.bounds, sensitivity=sensitivity, identified=False, note=note)
            )
            continue
        # The sandwich measures what the windows' residuals leave uncertain about the optimum; the search stops
        # within its tolerance of it, which on a clean recording is most of the error (intervals without it
        # were 0.01% wide and held the truth in 0 to 3 of 5 fits).
        half = 1.96 * float(std[i]) + tolerance * float(width[i])
        low, high = max(value - half, param.bounds[0]), min(value + half, param.bounds[1])
        estimates.append(Estimate(param, value, low, high, sensitivity=sensitivity, identified=True))
    return estimates, combinations


def close_pool() -> None:
    """Ends the persistent rollout thread pool that :meth:`Replay.simulate` starts."""
    rollout.shutdown_persistent_pool()


def default_threads() -> int:
    """Rollout threads: the cores this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def significant(value: float, digits: int = 4) -> float:
    """``value`` rounded to ``digits`` significant digits (for the YAML a user reads)."""
    if value == 0 or not math.isfinite(value):
        return value
    return round(value, digits - 1 - math.floor(math.log10(abs(value))))
