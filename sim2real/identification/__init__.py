"""System identification: from recorded trajectories (a robot's logs, or a simulated target's) to a domain.

``record`` writes trajectories (:mod:`sim2real.identification.trajectories`); ``identify`` fits the named
dynamics quantities that make the simulator reproduce them (:mod:`sim2real.identification.fitting`) and writes an
identification folder:

- ``identified.yaml``: the config with the estimate as its source domain (``extends:`` the config file, or the
  whole config where it differs from its file);
- ``identified_randomized.yaml``: the same, randomized uniformly over each estimate's 95% interval, and over
  the whole range of what the recording does not identify;
- ``report.json`` and ``report.md``: each parameter's estimate, interval and sensitivity, the fit's numbers;
- ``fit.png``: recorded joint trajectories against the simulated ones, before and after;
- ``tb/``: the fit's progress in TensorBoard (``identify/loss``, ``identify/sigma``, ``identify/<param>``).

The folder appears whole or not at all, and only for a fit that converged.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from sim2real.config import ACTION_LAG, SENSOR_OFFSET, Config, IdentifyParam, load_config
from sim2real.errors import Sim2RealError
from sim2real.identification.fitting import (
    Fit,
    Replay,
    Windows,
    close_pool,
    cut_windows,
    default_threads,
    fit,
    significant,
    start_point,
)
from sim2real.identification.observations import with_states
from sim2real.identification.smoothing import Smoothing, smooth_positions
from sim2real.identification.trajectories import (
    Trajectories,
    check_fits,
    control_period,
    read_trajectories,
    record,
)

__all__ = [
    "Identification",
    "Trajectories",
    "identify",
    "read_trajectories",
    "record",
    "write_identification",
]

# The files of an identification folder (one owner: this module).
IDENTIFIED = "identified.yaml"
IDENTIFIED_RANDOMIZED = "identified_randomized.yaml"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
FIGURE = "fit.png"
# Control steps of the figure's open-loop replays.
DISPLAY_HORIZON = 25


@dataclass
class Identification:
    """A converged fit, with what is needed to write it and to show it."""

    config: Config
    recording: Path
    trajectories: Trajectories
    params: list[IdentifyParam]
    fit: Fit
    windows: Windows  # what the fit replayed
    display: Windows  # longer windows, for the figure
    before: np.ndarray  # (display windows, display horizon, nq + nv) simulated at the start point
    after: np.ndarray  # the same at the estimate
    horizon: int
    latency: int = 0  # control steps between a command and the motor, chosen among the candidates
    latency_losses: dict[int, float] = field(default_factory=dict)  # each candidate's best objective
    smoothing: Smoothing | None = None  # the sensor noise estimated and taken out of the positions (None: not asked)


def identify(
    recording: Path,
    config: Config,
    params: Sequence[IdentifyParam],
    *,
    horizon: int = 3,
    windows: int = 128,
    seed: int = 0,
    max_generations: int = 200,
    popsize: int | None = None,
    threads: int | None = None,
    latency: Sequence[int] = (0,),
    smooth: bool = True,
    on_generation: Callable[[int, dict[str, float]], None] | None = None,
) -> Identification:
    """Fits ``params`` so that the simulator replays ``recording`` as it was recorded.

    Args:
        recording: a ``.npz`` or ``.csv`` recording (see :mod:`sim2real.identification.trajectories`).
        config: the experiment config: its env, and its source domain as the model the parameters change.
        params: the quantities to fit, each within its [low, high].
        horizon: control steps replayed from each recorded state.
        windows: replay windows at most (spread evenly over the recording).
        seed: seeds the search.
        max_generations: CMA-ES generations at most.
        popsize: candidates per generation (default: CMA-ES's).
        threads: rollout threads (default: the cores available).
        latency: candidate delays (control steps between a command being sent and the motor applying it): each
            is fitted, and the one whose fit reproduces the motion best is kept.
        smooth: take the sensor noise the recording shows out of its joint positions before the fit
            (:mod:`sim2real.identification.smoothing`; a clean recording is left as it is).
        on_generation: called after each generation with (generation, {loss, sigma, <param>: value}).

    Raises:
        Sim2RealError: bad input (a recording for another env, a parameter the model does not have, a range the
            physics refuses), or a fit that did not converge.
    """
    from sim2real.domain import find_dynamics_wrapper
    from sim2real.dynamics import Change

    _check_params(params)
    trajectories = read_trajectories(recording)
    env = _fixed_source(config)
    try:
        trajectories = _fitting(recording, trajectories, env, config.env)
        unwrapped: Any = env.unwrapped
        model, frame_skip = unwrapped.model, int(getattr(unwrapped, "frame_skip", 1))
        smoothing = None
        replayed = trajectories
        if smooth:  # the fit replays from the smoothed states; the figure shows what was recorded
            replayed, smoothing = smooth_positions(trajectories, model, control_period(env))
        # Copies start from the env file's nominal model; the source's fixed changes and then the parameters are
        # applied to them (scale and offset are relative to the model file, as in every domain).
        wrapper = find_dynamics_wrapper(env)
        assert wrapper is not None, "make_domain_env wraps every env"
        base = [c for c in wrapper.changes if isinstance(c, Change)]
        wrapper.dynamics.reset()
        fits: dict[int, tuple[Fit, Replay]] = {}
        try:
            for delay in sorted(set(latency)):
                cut = cut_windows(replayed, model, frame_skip, horizon, windows, delay, skip=max(latency))
                replay = Replay(model, base, params, cut, frame_skip, threads or default_threads())
                replay.check()
                fits[delay] = (fit(replay, seed=seed, max_generations=max_generations, popsize=popsize,
                                   on_generation=on_generation), replay)  # fmt: skip
            # The latency whose best fit reproduces the motion best (each replays the same windows).
            chosen = min(fits, key=lambda delay: fits[delay][0].loss)
            losses = {delay: fits[delay][0].loss for delay in fits}
            result, replay = fits[chosen]
            cut = replay.windows
            _check_converged(recording, result, max_generations)
            display, before, after = _display(trajectories, replay, result, horizon, chosen)
        finally:
            close_pool()
    finally:
        env.close()
    return Identification(config, Path(recording), trajectories, list(params), result, cut, display, before, after,
                          horizon, chosen, losses, smoothing)  # fmt: skip


def _fitting(recording: Path, trajectories: Trajectories, env: Any, env_id: str) -> Trajectories:
    """The recording checked against the env, with its states read from its observations if it has none."""
    check_fits(recording, trajectories, env, env_id, control_period(env))
    if trajectories.has_states:
        return trajectories
    return with_states(recording, trajectories, env, control_period(env))


def _fixed_source(config: Config) -> Any:
    """The config's source domain as the env whose one fixed model the fit replays on."""
    from sim2real.domain import DomainSpec, make_domain_env

    spec = DomainSpec.from_config(config.source)
    if spec.randomized:
        raise Sim2RealError(
            f"{config.origin}: source: draws its dynamics or has reality-gap wrappers; identification replays on "
            "one fixed model: use a config whose source domain is fixed"
        )
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    return make_domain_env(config.env, spec, seed=0, check_friction=False, **env_kwargs)


def _check_converged(recording: Path, result: Fit, max_generations: int) -> None:
    if not result.converged:
        raise Sim2RealError(
            f"{recording}: the fit did not converge in {result.generations} generations (stopped: "
            f"{result.stop}); nothing written. Give more {{max_generations}}, narrower ranges, fewer "
            "parameters or a recording that moves more",
            max_generations=max_generations,
        )


def _check_params(params: Sequence[IdentifyParam]) -> None:
    if not params:
        raise Sim2RealError("give at least one parameter to identify ({params})", params=None)
    names = [p.name for p in params]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise Sim2RealError(f"{{params}}: {', '.join(repeated)} given twice", params=None)


def _display(
    trajectories: Trajectories, replay: Replay, result: Fit, horizon: int, latency: int
) -> tuple[Windows, np.ndarray, np.ndarray]:
    """The figure's windows and their replays from the start point and from the estimate. They are longer than
    the fit's, so that drift shows: a few control steps from a recorded state look alike under any parameters."""
    longest = int(np.max(np.unique(trajectories.episode, return_counts=True)[1]))
    display_horizon = max(horizon, min(DISPLAY_HORIZON, longest - 1 - latency))
    display = cut_windows(trajectories, replay.model, replay.frame_skip, display_horizon, 64, latency=latency)
    shown = Replay(replay.model, replay.base, replay.params, display, replay.frame_skip, replay.threads)
    before = shown.simulate(replay.values(start_point(replay.params))[None])[0]
    after = shown.simulate(np.array([e.value for e in result.estimates])[None])[0]
    return display, before, after


def _dynamics_entries(config: Config, values: dict[str, Any], identification: Identification) -> list[dict[str, Any]]:
    """The source's own changes (those the parameters do not replace) followed by the identified ones."""
    entries = [change.model_dump(mode="json", exclude_defaults=True) for change in config.source.dynamics]
    for param in identification.params:
        if param.quantity == ACTION_LAG:  # a reality-gap effect, written there (_config_text)
            continue
        if param.quantity == SENSOR_OFFSET:  # the robot's, not the simulator's: the report names it to correct
            continue
        entry: dict[str, Any] = {"quantity": param.quantity}
        if param.select is not None:
            entry["select"] = param.select
        entry[param.op] = values[param.name]
        entries.append(entry)
    return entries


def _reads_as(origin: Path, config: Config) -> bool:
    """Whether the file ``origin`` holds ``config`` as it is (so that a config may say ``extends:`` it)."""
    try:
        return origin.is_file() and load_config(origin) == config
    except Sim2RealError:  # changed or removed since it was read
        return False


def _config_text(identification: Identification, folder: Path, values: dict[str, Any], comment: str) -> str:
    config = identification.config
    origin = Path(config.origin)
    data: dict[str, Any]
    if _reads_as(origin, config):
        data = {"extends": os.path.relpath(origin.resolve(), folder.resolve())}
    else:  # a config built in Python, or a file's with fields overridden: the whole of it
        data = config.model_dump(mode="json", exclude={"source", "transfer"})
    data["source"] = {"dynamics": _dynamics_entries(config, values, identification)}
    gap = config.source.reality_gap.model_dump(mode="json", exclude_none=True)
    if identification.latency:
        gap["action_latency"] = {"steps": identification.latency}
    lag = next((p.name for p in identification.params if p.quantity == ACTION_LAG), None)
    if lag is not None:
        tau = values[lag]
        if isinstance(tau, dict) and tau["high"] > 0:  # a time constant is >= 0, whatever the interval says
            tau = {**tau, "low": max(0.0, tau["low"])}
        elif isinstance(tau, dict):
            tau = 0.0
        gap["action_lag"] = {"tau": tau}
    if gap:
        data["source"]["reality_gap"] = gap
    data["run"] = (
        {"experiment": "identified"}
        if "extends" in data
        else {**config.run.model_dump(mode="json"), "experiment": "identified"}
    )
    return comment + yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=110)


def _report_md(identification: Identification, command: str) -> str:
    f = identification.fit
    lines = [
        f"# Identification from {identification.recording.name}",
        "",
        f"`{command}`" if command else "",
        "",
        f"- recording: {identification.trajectories.episodes} episodes, {identification.trajectories.steps} steps; "
        f"{len(identification.windows.starts)} windows of {identification.horizon} steps",
        f"- objective (mean squared normalized error): {f.loss_start:.4g} at the start, {f.loss:.4g} at the estimate",
        f"- latency: {identification.latency} control steps"
        + (
            " (best objective per candidate: "
            + ", ".join(f"{k}: {v:.4g}" for k, v in identification.latency_losses.items())
            + ")"
            if len(identification.latency_losses) > 1
            else ""
        ),
        f"- CMA-ES: {f.generations} generations, {f.evaluations} candidates, {f.rollouts} rollouts, "
        f"{f.seconds:.1f} s; stopped: {f.stop}",
        _smoothing_line(identification.smoothing),
        "",
        "| parameter | op | range | estimate | 95% interval | sensitivity | identified |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in f.estimates:
        low, high = e.param.bounds
        lines.append(
            f"| {e.param.name} | {e.param.op} | [{low:g}, {high:g}] | {significant(e.value):g} | "
            f"[{significant(e.low):g}, {significant(e.high):g}] | {e.sensitivity:.3g} | "
            f"{'yes' if e.identified else 'no: ' + e.note} |"
        )
    values = {e.param.name: e.value for e in f.estimates}
    for names in f.combinations:
        first = names[0]
        ratios = ", ".join(
            f"{name} / {first} = {significant(values[name] / values[first]):g}" for name in names[1:] if values[first]
        )
        lines += ["", f"Identified only in combination: {', '.join(names)} can change together without changing the "
                  f"recorded motion (every mass with the motor gear and damping, for one). What is identified: {ratios}."]  # fmt: skip
    lines += [
        "",
        "Sensitivity: the objective's rise, relative to its value at the estimate, when the parameter moves by 1%.",
    ]
    return "\n".join(lines) + "\n"


def _smoothing_line(smoothing: Smoothing | None) -> str:
    if smoothing is None:
        return "- positions replayed as recorded (smoothing off)"
    taken = [f"{n} {s:.2g}" for n, s, b in zip(smoothing.names, smoothing.noise, smoothing.smoothed, strict=True) if b]
    if not taken:
        return "- sensor noise on the positions: none found (replayed as recorded)"
    return "- sensor noise estimated and taken out of the positions (std): " + ", ".join(taken)


def _figure(identification: Identification) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = identification.trajectories
    windows = identification.display
    horizon = windows.target.shape[1]
    episodes = t.episode[windows.starts]
    episode = int(np.bincount(episodes).argmax())  # the episode with the most windows
    chosen = np.flatnonzero(episodes == episode)
    rows = np.flatnonzero(t.episode == episode)
    states = np.concatenate([t.qpos, t.qvel], axis=1)
    nq = t.qpos.shape[1]
    # The joints that move most (by the windows' scale), positions first.
    dims = [int(d) for d in np.argsort(-windows.scale[:nq])[:3]] + [
        nq + int(d) for d in np.argsort(-windows.scale[nq:])[:1]
    ]
    figure, axes_list = plt.subplots(len(dims), 1, figsize=(8, 2.1 * len(dims)), sharex=True, layout="constrained")
    dt = float(t.header.get("control_period", 1.0))
    for axes, dim in zip(np.atleast_1d(axes_list), dims, strict=True):
        axes.plot((rows - rows[0]) * dt, states[rows, dim], color="black", lw=1.2, label="recorded")
        for index in chosen:
            start = windows.starts[index] - rows[0]
            x = (start + 1 + np.arange(horizon)) * dt
            for simulated, color, label in ((identification.before, "tab:red", "simulated, start"),
                                            (identification.after, "tab:blue", "simulated, identified")):  # fmt: skip
                axes.plot(x, simulated[index, :, dim], color=color, lw=1, alpha=0.8,
                          label=label if index == chosen[0] else None)  # fmt: skip
        kind = "qpos" if dim < nq else "qvel"
        axes.set_ylabel(f"{kind}[{dim if dim < nq else dim - nq}]")
        axes.grid(alpha=0.3)
    np.atleast_1d(axes_list)[0].legend(loc="upper right", fontsize=8)
    np.atleast_1d(axes_list)[-1].set_xlabel(f"time in episode {episode} (s)")
    return figure


def write_identification(identification: Identification, out: Path, command: str = "") -> dict[str, Path]:
    """Writes the identification folder ``out`` (see the module docstring) whole: built beside it, then renamed.

    An existing folder is replaced only if it is an identification folder (it holds ``identified.yaml``).
    """
    from sim2real.io import write_json
    from sim2real.logging import make_logger

    out = Path(out)
    if out.exists() and not (out / IDENTIFIED).is_file():
        raise Sim2RealError(f"{out}: exists and is not an identification folder; choose another {{out}}", out=out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        f = identification.fit
        point = {e.param.name: significant(e.value) for e in f.estimates}
        # Over the 95% interval; over the whole range where the recording leaves a parameter flat. Members of a
        # combination keep the estimate: every point along their valley moves the robot the same way.
        combined = {name for names in f.combinations for name in names}
        ranges: dict[str, Any] = {
            e.param.name: point[e.param.name]
            if e.param.name in combined
            else {"dist": "uniform", "low": significant(e.low), "high": significant(e.high)}
            for e in f.estimates
        }
        source = f"{identification.recording}"
        comment = (
            f"# Identified by sim2real from {source} (report: {REPORT_MD}).\n"
            "# The source domain is the estimate; use it through `extends:` or as a study source.\n"
        )
        (staging / IDENTIFIED).write_text(_config_text(identification, out, point, comment))
        comment_random = (
            f"# Identified by sim2real from {source} (report: {REPORT_MD}): each parameter drawn uniformly over its\n"
            "# 95% interval, over its whole range where the fit is flat in it, and at the estimate where it is\n"
            "# identified only in combination with others (any point of that combination moves the robot alike).\n"
        )
        (staging / IDENTIFIED_RANDOMIZED).write_text(_config_text(identification, out, ranges, comment_random))
        report = {"recording": str(identification.recording), "command": command, **f.to_json(),
                  "episodes": identification.trajectories.episodes, "steps": identification.trajectories.steps,
                  "windows": len(identification.windows.starts), "horizon": identification.horizon,
                  "latency": identification.latency,
                  "latency_losses": {str(k): v for k, v in identification.latency_losses.items()},
                  "smoothing": None if identification.smoothing is None else identification.smoothing.as_dict()}  # fmt: skip
        write_json(staging / REPORT_JSON, report)
        (staging / REPORT_MD).write_text(_report_md(identification, command))
        figure = _figure(identification)
        figure.savefig(staging / FIGURE, dpi=110)
        import matplotlib.pyplot as plt

        logger = make_logger(staging / "tb")
        for generation, record in enumerate(f.history, start=1):
            for key, value in record.items():
                logger.record(f"identify/{key}", value)
            logger.dump(generation)
        logger.record("identify/figure", _tb_figure(figure), exclude=("stdout", "log", "json", "csv"))
        logger.dump(len(f.history))
        logger.close()
        plt.close(figure)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return {name: out / name for name in (IDENTIFIED, IDENTIFIED_RANDOMIZED, REPORT_JSON, REPORT_MD, FIGURE)}


def _tb_figure(figure: Any) -> Any:
    from stable_baselines3.common.logger import Figure

    return Figure(figure, close=False)
