"""Recorded trajectories: the one file format that system identification reads, from a simulator or a robot.

A recording is a table with one row per control step, in time order, episodes one after another:

=============== ============ ===============================================================================
column          shape        meaning
=============== ============ ===============================================================================
``episode``     (N,) int     which episode the row belongs to; a change of value is an episode boundary
``qpos``        (N, nq)      joint positions before the step (MuJoCo's ``data.qpos``: m, rad, quaternions)
``qvel``        (N, nv)      joint velocities before the step (``data.qvel``: m/s, rad/s)
``action``      (N, nu)      the command sent at this step, in the env's action units
``observation`` (N, n_obs)   what the policy saw: optional, or in place of ``qpos`` and ``qvel``
``reward``      (N,)         optional: the reward the step earned
=============== ============ ===============================================================================

plus a small JSON header: the env id and keywords, the control period (s), what produced the file and the
sim2real version. Without ``qpos`` and ``qvel``, identification reads the states from the observations, for
the envs whose observation it can invert (:mod:`sim2real.identification.observations`). Row ``t + 1`` of an episode is the state that the command of row ``t`` led to, so an episode
of T rows holds T - 1 transitions.

Two containers hold the same table: ``.npz`` (numpy arrays, the header as a JSON string; read without pickle)
and ``.csv`` (the header on a first ``# {...}`` line, then columns ``episode, qpos_0, ..., qvel_0, ...,
action_0, ..., observation_0, ..., reward``). A robot's logs become a recording with :meth:`Trajectories.write`
from arrays (docs/identification.md).
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sim2real.errors import Sim2RealError
from sim2real.io import atomic_path, write_text

if TYPE_CHECKING:
    import gymnasium as gym

    from sim2real.config import Config, HistoryConfig
    from sim2real.evaluation.batched import BatchPolicy, ObservationNormalizer

FORMAT = "sim2real.trajectories"
FORMAT_VERSION = 1
# The table's columns in file order: the first four are required, but qpos and qvel may give way to observation.
REQUIRED = ("episode", "qpos", "qvel", "action")
OPTIONAL = ("observation", "reward")
STATES = ("qpos", "qvel")
SUFFIXES = (".npz", ".csv")


@dataclass
class Trajectories:
    """A recording: per-step arrays (see the module docstring) and the header.

    Args:
        episode: (N,) episode index of each row.
        qpos: (N, nq) joint positions before each step ((N, 0): not recorded, see ``has_states``).
        qvel: (N, nv) joint velocities before each step ((N, 0): not recorded).
        action: (N, nu) the command sent at each step.
        observation: (N, n_obs) what the policy saw, or None.
        reward: (N,) the reward of each step, or None.
        header: ``env``, ``env_kwargs``, ``control_period`` (s) and what produced the file.
    """

    episode: np.ndarray
    qpos: np.ndarray
    qvel: np.ndarray
    action: np.ndarray
    observation: np.ndarray | None = None
    reward: np.ndarray | None = None
    header: dict[str, Any] = field(default_factory=dict)

    @property
    def steps(self) -> int:
        return len(self.episode)

    @property
    def episodes(self) -> int:
        """Episodes recorded (states read from observations split some into pieces: the header keeps the count)."""
        return int(self.header.get("episodes_recorded", len(np.unique(self.episode))))

    @property
    def has_states(self) -> bool:
        """Whether ``qpos`` and ``qvel`` were recorded (else only observations and actions were)."""
        return self.qpos.shape[1] > 0 or self.qvel.shape[1] > 0

    def arrays(self) -> dict[str, np.ndarray]:
        """The table's columns that are present, in file order."""
        named = {name: getattr(self, name) for name in (*REQUIRED, *OPTIONAL)}
        absent = () if self.has_states else STATES
        return {name: value for name, value in named.items() if value is not None and name not in absent}

    def observations_only(self) -> Trajectories:
        """The same recording without ``qpos`` and ``qvel``: what a robot that logs its observations has."""
        if self.observation is None:
            raise Sim2RealError("a recording without observations cannot drop its qpos and qvel")
        empty = np.zeros((self.steps, 0))
        return Trajectories(self.episode, empty, empty, self.action, self.observation, self.reward, dict(self.header))

    def transitions(self) -> np.ndarray:
        """Row indices ``t`` whose next row ``t + 1`` is in the same episode (the state the command led to)."""
        return np.flatnonzero(self.episode[:-1] == self.episode[1:])

    def write(self, path: Path) -> None:
        """Writes the recording to ``path`` (``.npz`` or ``.csv``), atomically."""
        path = Path(path)
        header = {"format": FORMAT, "version": FORMAT_VERSION, **self.header}
        if path.suffix == ".csv":
            write_text(path, _to_csv(self, header))
            return
        if path.suffix != ".npz":
            raise Sim2RealError(f"{path}: a recording is a .npz or .csv file")
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez_compressed(handle, header=np.array(json.dumps(header)), **self.arrays())  # type: ignore[arg-type]


def read_trajectories(path: Path) -> Trajectories:
    """Reads a recording (``.npz`` or ``.csv``) and checks it is a complete, finite table.

    Raises:
        Sim2RealError: naming the file and the problem (unreadable, a missing column, rows that disagree,
            NaN or inf, no transition).
    """
    path = Path(path)
    if not path.is_file():
        raise Sim2RealError(f"{path}: no such recording")
    if path.suffix not in SUFFIXES:
        raise Sim2RealError(f"{path}: a recording is a .npz or .csv file (got '{path.suffix or 'no suffix'}')")
    try:
        arrays, header = _read_csv(path) if path.suffix == ".csv" else _read_npz(path)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile, UnicodeDecodeError) as error:
        raise Sim2RealError(f"{path}: not a readable recording ({error})") from None
    states = all(name in arrays for name in STATES) or "observation" not in arrays
    missing = [name for name in REQUIRED if name not in arrays and (states or name not in STATES)]
    if missing:
        raise Sim2RealError(
            f"{path}: no {', '.join(missing)} column (a recording has {', '.join(REQUIRED)}, or episode, "
            "observation and action)"
        )
    if not states:  # observations and actions only: identification reads the states from the observations
        arrays = {
            **arrays,
            "qpos": np.zeros((len(arrays["episode"]), 0)),
            "qvel": np.zeros((len(arrays["episode"]), 0)),
        }
    trajectories = Trajectories(
        arrays["episode"], arrays["qpos"], arrays["qvel"], arrays["action"],
        arrays.get("observation"), arrays.get("reward"), header,
    )  # fmt: skip
    _check_table(path, trajectories)
    return trajectories


def _check_table(path: Path, t: Trajectories) -> None:
    rows = len(t.episode)
    if rows == 0:
        raise Sim2RealError(f"{path}: the recording is empty")
    for name, value in t.arrays().items():
        expected_ndim = 1 if name in ("episode", "reward") else 2
        if value.ndim != expected_ndim:
            raise Sim2RealError(f"{path}: {name} has {value.ndim} dimensions, expected {expected_ndim}")
        if len(value) != rows:
            raise Sim2RealError(f"{path}: {name} has {len(value)} rows, episode has {rows}")
        if not np.isfinite(value).all():
            bad = int(np.flatnonzero(~np.isfinite(value.reshape(rows, -1)).all(axis=1))[0])
            raise Sim2RealError(f"{path}: {name} holds NaN or inf (first at row {bad})")
    starts = np.r_[0, np.flatnonzero(np.diff(t.episode)) + 1]
    seen: set[int] = set()
    for row in starts:  # an episode is one block of rows: a number that comes back is another episode's rows
        if int(t.episode[row]) in seen:
            raise Sim2RealError(
                f"{path}: episode {int(t.episode[row])} comes back at row {int(row)} after other episodes; each "
                "episode's rows must be together, in time order"
            )
        seen.add(int(t.episode[row]))
    if len(t.transitions()) == 0:
        raise Sim2RealError(f"{path}: no complete step (every episode has a single row)")


def check_fits(path: Path, t: Trajectories, env: gym.Env, env_id: str, control_period: float) -> None:
    """Raises :class:`Sim2RealError` when the recording's dimensions or control period are not ``env``'s."""
    model = env.unwrapped.model  # type: ignore[attr-defined]
    recorded_env = t.header.get("env")
    if recorded_env not in (None, env_id):
        raise Sim2RealError(f"{path}: recorded on {recorded_env}, but the config's env is {env_id}")
    expected = {"qpos": model.nq, "qvel": model.nv, "action": model.nu} if t.has_states else {"action": model.nu}
    if t.observation is not None and env.observation_space.shape:
        expected["observation"] = env.observation_space.shape[0]
    wrong = [
        f"{name} has {getattr(t, name).shape[1]} columns, {env_id} has {size}"
        for name, size in expected.items()
        if getattr(t, name).shape[1] != size
    ]
    if wrong:
        raise Sim2RealError(f"{path}: does not fit {env_id}: " + "; ".join(wrong))
    period = t.header.get("control_period")
    if period is not None and not np.isclose(float(period), control_period, rtol=1e-6):
        raise Sim2RealError(
            f"{path}: control_period {period} s, but {env_id} steps every {control_period:g} s "
            "(a recording is replayed at the env's own rate)"
        )


def _read_npz(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: np.asarray(data[name], dtype=np.float64) for name in data.files if name != "header"}
        header = _parse_header(path, str(data["header"])) if "header" in data.files else {}
    if "episode" in arrays:
        arrays["episode"] = arrays["episode"].astype(np.int64)
    return arrays, header


def _parse_header(path: Path, text: str) -> dict[str, Any]:
    try:
        header = json.loads(text)
    except json.JSONDecodeError as error:
        raise Sim2RealError(f"{path}: the header is not JSON ({error})") from None
    if not isinstance(header, dict):
        raise Sim2RealError(f"{path}: the header is not a JSON object")
    if header.get("format", FORMAT) != FORMAT:
        raise Sim2RealError(f"{path}: header format '{header['format']}', expected '{FORMAT}'")
    return header


def _to_csv(t: Trajectories, header: Mapping[str, Any]) -> str:
    out = io.StringIO()
    out.write("# " + json.dumps(header) + "\n")
    columns: list[str] = []
    blocks: list[np.ndarray] = []
    for name, value in t.arrays().items():
        block = value.reshape(len(value), -1)
        columns += [name] if value.ndim == 1 else [f"{name}_{i}" for i in range(block.shape[1])]
        blocks.append(block.astype(np.float64))
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    table = np.concatenate(blocks, axis=1)
    for row, episode in zip(table, t.episode, strict=True):
        writer.writerow([int(episode), *(repr(float(v)) for v in row[1:])])
    return out.getvalue()


def _read_csv(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    lines = path.read_text().splitlines()
    header: dict[str, Any] = {}
    if lines and lines[0].startswith("#"):
        header = _parse_header(path, lines[0][1:].strip())
        lines = lines[1:]
    if not lines:
        raise Sim2RealError(f"{path}: the recording is empty")
    reader = csv.reader(lines)
    names = [name.strip() for name in next(reader)]
    try:
        table = np.array([[float(v) for v in row] for row in reader if row], dtype=np.float64)
    except ValueError as error:
        raise Sim2RealError(f"{path}: a value is not a number ({error})") from None
    if table.size and table.shape[1] != len(names):
        raise Sim2RealError(f"{path}: rows have {table.shape[1]} values, the column line names {len(names)}")
    table = table.reshape(-1, len(names))
    arrays: dict[str, np.ndarray] = {}
    for name in (*REQUIRED, *OPTIONAL):
        if name in names:
            arrays[name] = table[:, names.index(name)]
            continue
        indices = [i for i, column in enumerate(names) if column.rsplit("_", 1)[0] == name]
        if indices:
            arrays[name] = table[:, indices]
    if "episode" in arrays:
        arrays["episode"] = arrays["episode"].astype(np.int64)
    return arrays, header


def control_period(env: gym.Env) -> float:
    """The env's control period (s): the physics timestep times the frames per step."""
    unwrapped: Any = env.unwrapped
    return float(unwrapped.model.opt.timestep * getattr(unwrapped, "frame_skip", 1))


def record(
    config: Config,
    *,
    model_path: Path | None,
    domain: str,
    episodes: int,
    seed: int = 0,
    deterministic: bool = True,
    noise: float = 0.0,
    latency: int = 0,
    lag: float = 0.0,
    trust_source: bool = False,
    min_steps: int = 0,
) -> Trajectories:
    """Rolls a policy (or uniform random actions, for excitation) out on a domain and records every step.

    Args:
        config: the experiment config; its domain ``domain`` is where the recording is made.
        model_path: a run folder or model zip; None: uniform random actions.
        domain: ``source`` or a target's name.
        episodes: how many episodes (each reset with its own seed from ``seed``).
        seed: seeds the episodes' resets, random actions, the policy's sampling and the noise.
        deterministic: the policy's mean action, or a sampled one (more excitation).
        noise: standard deviation of Gaussian sensor noise on the recorded qpos, qvel and observation (the
            policy sees the noisy observation), in each quantity's units: imperfect data, as from a robot.
        latency: control steps between sending a command and the motor applying it (the recorded action is
            the one sent), as the ``action_latency`` reality-gap wrapper makes it.
        lag: the motor's first-order time constant in seconds (after the latency), as ``action_lag`` makes it.
        trust_source: allow reading a pickled ``vecnormalize.pkl``.
        min_steps: go on with more episodes (each with the next seed) until this many steps are recorded: a
            policy that falls within 20 steps needs many episodes to give a fit enough data.
    """
    import sim2real
    from sim2real.domain import make_domain_env
    from sim2real.wrappers import ActionLag, ActionLatency, ObservationHistory

    domains = config.domains()
    if domain not in domains:
        raise Sim2RealError(f"{config.origin}: no domain '{domain}' (domains: {', '.join(domains)})", domain=domain)
    history, policy, normalizer = _recording_policy(config, model_path, deterministic, noise, trust_source)
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    env = make_domain_env(config.env, domains[domain], seed=(seed, 0), **env_kwargs)
    size = int(np.prod(env.observation_space.shape or (1,)))  # the env's own observation: what is recorded
    if lag:
        env = ActionLag(env, tau=lag, seed=seed)
    if latency:
        env = ActionLatency(env, steps=latency, seed=seed)
    if history is not None:  # outermost: the policy's past holds its commands, before the delay
        env = ObservationHistory(env, history.steps, history.actions)
    try:
        rows = _roll_out(env, size, policy, normalizer, episodes, seed, noise, min_steps)
    finally:
        env.close()
    arrays = {name: np.stack(values) for name, values in rows.items()}
    arrays["episode"] = arrays["episode"].astype(np.int64)
    header = {
        "env": config.env,
        "env_kwargs": dict(config.env_kwargs),
        "control_period": control_period(env),
        "domain": domain,
        "produced_by": str(model_path) if model_path is not None else "random actions",
        "deterministic": deterministic if model_path is not None else None,
        "episodes": int(arrays["episode"][-1]) + 1 if len(arrays["episode"]) else 0,
        "seed": seed,
        "noise": noise,
        "latency": latency,
        "lag": lag,
        "sim2real_version": sim2real.__version__,
    }
    return Trajectories(**arrays, header=header)


def _recording_policy(
    config: Config, model_path: Path | None, deterministic: bool, noise: float, trust_source: bool
) -> tuple[HistoryConfig | None, BatchPolicy | None, ObservationNormalizer | None]:
    """The policy that records (None: random actions), its observation history and its normalization."""
    from sim2real.evaluation.batched import BatchPolicy, ObservationNormalizer
    from sim2real.runs import own_inputs

    # The policy's input is its own run's (with the observation history it was trained with, if any).
    own = config if model_path is None else own_inputs(model_path, config)
    if own.privileged:
        raise Sim2RealError(
            f"{model_path}: a privileged teacher acts on inputs a robot does not have; a recording stands in for "
            "the robot's, so record with a policy that needs none (the teacher's student)"
        )
    if noise and own.history is not None:
        raise Sim2RealError(
            f"{model_path}: the policy sees its past (history), and the recorded noise would have to be on that "
            f"past too; recording it with {noise} is not supported: record without noise",
            noise=noise,
        )
    if model_path is None:
        return own.history, None, None
    from sim2real.models import load_policy

    model, model_file = load_policy(own, model_path, trusted=trust_source)
    return own.history, BatchPolicy(model, deterministic), ObservationNormalizer.from_state(model_file.normalization)


def _roll_out(
    env: gym.Env, size: int, policy: BatchPolicy | None, normalizer: ObservationNormalizer | None, episodes: int,
    seed: int, noise: float, min_steps: int = 0,
) -> dict[str, list[np.ndarray]]:  # fmt: skip
    """Every step of ``episodes`` episodes (more, until ``min_steps`` steps): the state, the action, the
    observation (``size`` entries) and reward. An episode's seed depends only on its index, so a longer
    recording starts with a shorter one's episodes."""
    import torch

    from sim2real.evaluation.batched import episode_seeds

    data: Any = env.unwrapped.data  # type: ignore[attr-defined]
    rng = np.random.default_rng(seed)
    rows: dict[str, list[np.ndarray]] = {name: [] for name in (*REQUIRED, *OPTIONAL)}
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # a sampled action comes from torch's generator
    try:
        index, seeds = 0, episode_seeds(seed, episodes)
        while index < episodes or len(rows["reward"]) < min_steps:
            if index == len(seeds):  # more episodes: the seeds' list grows, its first ones the same
                seeds = episode_seeds(seed, max(1, 2 * len(seeds)))
            episode_seed = seeds[index]
            env.action_space.seed(episode_seed)
            observation, _ = env.reset(seed=episode_seed)
            if policy is not None:
                policy.reset(0)  # a recurrent policy's memory starts with the episode
            done = False
            while not done:
                seen = np.asarray(observation, dtype=np.float64)
                qpos, qvel = np.array(data.qpos), np.array(data.qvel)
                if noise:
                    seen = seen + rng.normal(0.0, noise, seen.shape)
                    qpos = qpos + rng.normal(0.0, noise, qpos.shape)
                    qvel = qvel + rng.normal(0.0, noise, qvel.shape)
                if policy is None:
                    action = env.action_space.sample()
                else:
                    batch = seen[None].astype(np.float32)
                    action = policy(normalizer(batch) if normalizer is not None else batch)[0]
                observation, reward, terminated, truncated, _ = env.step(action)
                done = terminated or truncated
                for name, value in (("episode", index), ("qpos", qpos), ("qvel", qvel), ("action", action),
                                    ("observation", seen[:size]), ("reward", float(reward))):  # fmt: skip
                    rows[name].append(np.asarray(value, dtype=np.float64))
            index += 1
    finally:
        torch.random.set_rng_state(generator_state)
    return rows
