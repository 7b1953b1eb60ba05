"""Training runs: build the vector env and the stable-baselines3 model from a config, train, checkpoint, evaluate.

A run folder (``runs/<env>/<experiment>/seed_<n>/``) holds everything needed to reproduce or continue the run::

    config.yaml        the resolved config (every default written out)
    command.txt        the exact command lines that produced it (the first one and every resume)
    model.zip          the final model (a plain stable-baselines3 zip)
    vecnormalize.pkl   normalization statistics, when the config normalizes
    checkpoints/       step_<n>/ folders, each complete (written to a temporary folder, then renamed)
    monitor/           per-env episode logs (stable-baselines3 Monitor CSVs)
    tb/                TensorBoard events
    eval.json          returns of the final policy on the source and every target

A transfer run (``config.transfer``) trains on its target domain and also holds::

    source.pth         the source weights it started from (tensors only), for the weight-drift curves
    transfer.json      each layer group's state (frozen, trainable, learning-rate scale)
    curve.json         the learning curve on the target: evaluation returns by step, from step 0
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import yaml
from rich.console import Console
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.utils import LinearSchedule as SB3LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from sim2real.callbacks import (
    AdrCallback,
    CheckpointCallback,
    EvalCurveCallback,
    NegativeTransferCallback,
    ProgressFile,
    RandomizationLogger,
    TransferCallback,
)
from sim2real.config import Config, LinearSchedule, dump_config, flat_hparams, parse_config, read_yaml
from sim2real.domain import DomainSpec, find_dynamics_wrapper, make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.evaluation import DomainResult, domain_seed, evaluate_config, evaluate_domain, print_results
from sim2real.evaluation.metrics import Curve
from sim2real.io import atomic_path, save_with, write_json, write_text
from sim2real.logging import make_logger, record_hparams, record_text
from sim2real.modelfile import (
    MODEL,
    TRANSFER_STATE,
    VECNORMALIZE,
    VECNORMALIZE_JSON,
    ModelFile,
    apply_normalization_state,
    normalization_state,
    observation_size,
    read_model,
)
from sim2real.randomization import RandomChange
from sim2real.transfer import TRANSFER_ALGORITHMS, Transfer
from sim2real.transfer.prognet import is_progressive, make_progressive, source_arch_of

ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": SAC}
_ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}
_POLICY_KEYS = {"name", "net_arch", "activation", "log_std_init"}
# Fields a resumed run may change: everything else must match the run it continues.
_RESUMABLE_OVERRIDES = {
    "train.total_timesteps",
    "train.checkpoint_every",
    "train.progress_bar",
    "train.device",
    "train.torch_threads",
}

SOURCE_WEIGHTS = "source.pth"
CURVE = "curve.json"
REPLAY_BUFFER = "replay_buffer.pkl"
ADR_STATE = "adr.json"


@dataclass
class TrainResult:
    run_dir: Path
    num_timesteps: int
    results: list[DomainResult]
    seconds: float  # the whole call: checks, setup, training, saving, evaluation
    learn_seconds: float  # stable-baselines3's learn() alone


# ------------------------------------------------------------------------------------------- building


def check_domains(config: Config) -> dict[str, dict[str, float]]:
    """Builds every domain's env once so a bad name or value fails before anything is written.

    Returns each domain's changed model values (``{"quantity/element": value}``).
    """
    parameters = {}
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    for name, domain in config.domains().items():
        env = make_domain_env(config.env, domain.spec(), seed=(config.train.seed, 0), **env_kwargs)
        wrapper = find_dynamics_wrapper(env)
        parameters[name] = wrapper.domain_parameters() if wrapper else {}
        env.close()
    return parameters


def _training_env(
    env_id: str, spec: DomainSpec, seed: tuple[int, ...], monitor_file: str | None, append: bool, env_kwargs: dict
) -> gym.Env:
    # check_domains() has already warned about this domain's friction; the copies stay quiet.
    env = make_domain_env(env_id, spec, seed=seed, check_friction=False, **env_kwargs)
    return Monitor(env, filename=monitor_file, override_existing=not append)


def build_vec_env(
    config: Config, run_dir: Path | None = None, append_monitor: bool = False, resume_step: int = 0
) -> VecEnv:
    """The training domain (the source; a transfer run's target) as a vector env of ``train.n_envs`` copies.

    Env ``i`` draws its random dynamics from a generator seeded with (seed, i) and resets with seed + i
    (stable-baselines3's convention), in this process or in its own (fork, spawn or forkserver). A resumed
    run adds its step to both, so it does not replay the parameter sequence its first part already saw.
    """
    train = config.train
    stream = (train.seed,) if not resume_step else (train.seed, resume_step)
    if run_dir is not None:
        (run_dir / "monitor").mkdir(parents=True, exist_ok=True)
    factories: list[Callable[[], gym.Env]] = [
        partial(
            _training_env,
            config.env,
            config.training_domain().spec(),
            (*stream, i),
            str(run_dir / "monitor" / str(i)) if run_dir else None,
            append_monitor,
            dict(config.env_kwargs),
        )
        for i in range(train.n_envs)
    ]
    venv: VecEnv
    if train.vec_env == "subproc":
        venv = SubprocVecEnv(factories, start_method=train.start_method)
    else:
        venv = DummyVecEnv(factories)
    venv.seed(train.seed + resume_step)
    return venv


def algorithm_kwargs(config: Config) -> dict[str, Any]:
    """Constructor keywords of the stable-baselines3 algorithm (hyperparameters and policy_kwargs)."""
    algo = config.algo
    kwargs = algo.model_dump(exclude=_POLICY_KEYS)
    if isinstance(algo.learning_rate, LinearSchedule):
        kwargs["learning_rate"] = SB3LinearSchedule(algo.learning_rate.initial, algo.learning_rate.final, 1.0)
    kwargs["policy_kwargs"] = {
        "net_arch": list(algo.net_arch),
        "activation_fn": _ACTIVATIONS[algo.activation],
        "log_std_init": algo.log_std_init,
    }
    return kwargs


def build_model(config: Config, env: VecEnv) -> BaseAlgorithm:
    """A fresh model; a transfer run gets the per-layer learning-rate variant (it saves as a plain SB3 zip)."""
    cls = (TRANSFER_ALGORITHMS if config.transfer is not None else ALGORITHMS)[config.algo.name]
    return cls(
        "MlpPolicy",
        env,
        seed=config.train.seed,
        device=config.train.device,
        verbose=0,
        **algorithm_kwargs(config),
    )


def load_policy(config: Config, path: Path, trusted: bool = False) -> tuple[BaseAlgorithm, ModelFile]:
    """A saved model rebuilt for evaluation from its weights alone (read weights-only, see modelfile).

    The network's layer sizes come from the weights (a progressive net's columns too); the algorithm and
    activation from ``config``, whose env must have the model's observation and action spaces.
    """
    model_file = read_model(path, trusted=trusted)
    if model_file.algo != config.algo.name:
        raise Sim2RealError(
            f"{model_file.path} is a {model_file.algo.upper()} model but the config says {config.algo.name.upper()} "
            f"(set algo.name: {model_file.algo})"
        )
    env = make_domain_env(config.env, (), seed=0, check_friction=False, **config.env_kwargs)
    mismatch = [
        f"{kind} space: model {saved.describe()}, config {space}"
        for kind, saved, space in (
            ("observation", model_file.observation, env.observation_space),
            ("action", model_file.action, env.action_space),
        )
        if saved is not None and saved.shape != tuple(space.shape or ())
    ]
    if mismatch:
        env.close()
        raise Sim2RealError(f"{model_file.path} does not fit {config.env}: " + "; ".join(mismatch))
    trunk = "mlp_extractor.policy_net" if config.algo.name == "ppo" else "actor.latent_pi"
    progressive = is_progressive(model_file.policy)
    arch = source_arch_of(model_file.policy, trunk + ".column" if progressive else trunk)
    algo = config.algo.model_copy(update={"net_arch": arch or list(config.algo.net_arch)})
    model = ALGORITHMS[config.algo.name](
        "MlpPolicy",
        DummyVecEnv([lambda: env]),
        device=config.train.device,
        verbose=0,
        **algorithm_kwargs(config.model_copy(update={"algo": algo})),
    )
    if progressive:
        make_progressive(model.policy, config.algo.name, source_arch_of(model_file.policy, trunk), arch)
    try:
        model.policy.load_state_dict(model_file.policy)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise Sim2RealError(
            f"{model_file.path}: weights do not fit a {config.algo.name.upper()} policy ({first})"
        ) from None
    return model, model_file


# ------------------------------------------------------------------------------------------- checkpoints


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (incomplete ones never carry the ``step_`` name)."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_"))


def save_checkpoint(model: BaseAlgorithm, run_dir: Path, adr: AdrCallback | None = None, keep: int = 2) -> Path:
    """Writes model, normalization statistics, replay buffer and ADR state into ``checkpoints/step_<n>/``.

    The files go into a hidden folder that is renamed to its final name only when complete.
    """
    root = run_dir / "checkpoints"
    final = root / f"step_{model.num_timesteps:012d}"
    if final.exists():
        return final
    partial_dir = root / f".partial_{final.name}"
    shutil.rmtree(partial_dir, ignore_errors=True)
    partial_dir.mkdir(parents=True)
    model.save(partial_dir / MODEL)
    venv = model.get_vec_normalize_env()
    if venv is not None:
        venv.save(str(partial_dir / VECNORMALIZE))
        write_json(partial_dir / VECNORMALIZE_JSON, normalization_state(venv))
    transfer: Transfer | None = getattr(model, "transfer", None)
    if transfer is not None:
        write_json(partial_dir / TRANSFER_STATE, transfer.state())
    if isinstance(model, OffPolicyAlgorithm):
        model.save_replay_buffer(partial_dir / REPLAY_BUFFER)
    if adr is not None:
        write_json(partial_dir / ADR_STATE, adr.state())
    partial_dir.rename(final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(config: Config, checkpoint: Path, env: VecEnv) -> BaseAlgorithm:
    """Loads a checkpoint of our own (trusted: written by this run) onto a freshly built env."""
    cls = ALGORITHMS[config.algo.name]
    try:
        if config.train.normalize is not None:
            env = VecNormalize.load(str(checkpoint / VECNORMALIZE), env)
        model = cls.load(checkpoint / MODEL, env=env, device=config.train.device)
        if isinstance(model, OffPolicyAlgorithm) and (checkpoint / REPLAY_BUFFER).exists():
            model.load_replay_buffer(checkpoint / REPLAY_BUFFER)
    except Exception as error:  # a damaged zip or pickle can raise nearly anything
        env.close()
        raise Sim2RealError(f"checkpoint {checkpoint} is corrupt or incomplete: {error}") from None
    return model


# ------------------------------------------------------------------------------------------- runs


def _prepare_new_run(config: Config, command: str) -> Path:
    run_dir = config.run_dir()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise Sim2RealError(
            f"run folder {run_dir} already holds a run; continue it with --resume {run_dir}, "
            f"or start another with --set run.experiment=NAME or --set train.seed=N"
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        write_text(run_dir / "config.yaml", dump_config(config))
        write_text(run_dir / "command.txt", command + "\n")
    except OSError as error:
        raise Sim2RealError(f"cannot write run folder {run_dir}: {error.strerror or error}") from None
    return run_dir


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> Config:
    """The resolved config of an existing run, with the overrides a resume may make."""
    path = run_dir / "config.yaml"
    if not run_dir.is_dir():
        raise Sim2RealError(f"{run_dir}: no such run folder")
    if not path.is_file():
        raise Sim2RealError(f"{run_dir}: not a run folder (no config.yaml)")
    saved = read_yaml(path)
    config = parse_config(saved, str(path))
    if not overrides:
        return config
    from sim2real.config import apply_overrides

    for item in overrides:
        key = item.partition("=")[0]
        if key not in _RESUMABLE_OVERRIDES:
            raise Sim2RealError(
                f"--set {key}: a resumed run keeps its config; only {', '.join(sorted(_RESUMABLE_OVERRIDES))} may change"
            )
    return parse_config(apply_overrides(saved, overrides), str(path))


def _close_env(model: BaseAlgorithm) -> None:
    env = model.get_env()
    if env is not None:
        env.close()


def _normalized(config: Config, env: VecEnv) -> VecEnv:
    n = config.train.normalize
    if n is None:
        return env
    return VecNormalize(
        env, norm_obs=n.observations, norm_reward=n.rewards, clip_obs=n.clip_obs, gamma=config.algo.gamma
    )


def read_source(config: Config, source: str | Path | None, trusted: bool = False) -> ModelFile | None:
    """The source model of a transfer run (None for scratch), read weights-only; checked against the config."""
    assert config.transfer is not None
    if config.transfer.method == "scratch":
        return None
    if source is None:
        raise Sim2RealError(
            f"transfer method '{config.transfer.method}' needs a source: --source RUN_DIR_OR_ZIP or transfer.source"
        )
    model_file = read_model(Path(source), trusted=trusted)
    if model_file.algo != config.algo.name:
        raise Sim2RealError(
            f"source {model_file.path} is a {model_file.algo.upper()} model but the config trains "
            f"{config.algo.name.upper()} (set algo.name: {model_file.algo})"
        )
    if config.train.normalize is not None and model_file.normalization is None:
        raise Sim2RealError(
            f"source {model_file.path} has no normalization statistics (vecnormalize.json) but the config normalizes "
            "observations; its weights expect raw observations: set train.normalize: null"
        )
    if config.train.normalize is None and model_file.normalization is not None:
        raise Sim2RealError(
            f"source {model_file.path} was trained on normalized observations; its weights need them: "
            "set train.normalize in the config"
        )
    return model_file


def _check_transfer(config: Config, source: ModelFile | None) -> None:
    """Sets the transfer up once on a throwaway model, so a bad layer name or shape fails before anything is
    written."""
    assert config.transfer is not None
    spec = config.training_domain().spec()
    env = DummyVecEnv(
        [partial(make_domain_env, config.env, spec, seed=(0,), check_friction=False, **config.env_kwargs)]
    )
    try:
        Transfer.start(build_model(config, env), config.transfer, config.algo.name, source)
    finally:
        env.close()


def _start_transfer(config: Config, model: BaseAlgorithm, source: ModelFile | None, run_dir: Path) -> Transfer:
    assert config.transfer is not None
    transfer = Transfer.start(model, config.transfer, config.algo.name, source)
    normalization = model.get_vec_normalize_env()
    if source is not None and source.normalization is not None and normalization is not None:
        size = int(np.prod(model.observation_space.shape or (1,)))
        if observation_size(source.normalization) == size:
            apply_normalization_state(normalization, source.normalization)
    if normalization is not None and config.transfer.normalization == "fixed":
        normalization.training = False
    with atomic_path(run_dir / SOURCE_WEIGHTS) as tmp:
        torch.save(transfer.reference, tmp)
    write_json(run_dir / TRANSFER_STATE, transfer.state())
    return transfer


def _resume_transfer(config: Config, checkpoint: Path, env: VecEnv, run_dir: Path) -> tuple[BaseAlgorithm, Transfer]:
    """A transfer run's model from its checkpoint: built from the config, then weights loaded (weights-only)."""
    assert config.transfer is not None
    try:
        if config.train.normalize is not None:
            env = VecNormalize.load(str(checkpoint / VECNORMALIZE), env)  # our own file: trusted
        model = build_model(config, env)
        state = json.loads((checkpoint / TRANSFER_STATE).read_text())
        reference = (
            torch.load(run_dir / SOURCE_WEIGHTS, weights_only=True) if (run_dir / SOURCE_WEIGHTS).is_file() else {}
        )
        transfer = Transfer.restore(
            model, config.transfer, config.algo.name, read_model(checkpoint / MODEL, trusted=True), state, reference
        )
        if isinstance(model, OffPolicyAlgorithm) and (checkpoint / REPLAY_BUFFER).exists():
            model.load_replay_buffer(checkpoint / REPLAY_BUFFER)
    except Sim2RealError:
        env.close()
        raise
    except Exception as error:  # a damaged file can raise nearly anything
        env.close()
        raise Sim2RealError(f"checkpoint {checkpoint} is corrupt or incomplete: {error}") from None
    return model, transfer


def _reference_curve(reference: str | None) -> Curve | None:
    """A scratch run's learning curve (its folder or its curve.json), for the negative-transfer warning."""
    if reference is None:
        return None
    path = Path(reference)
    path = path / CURVE if path.is_dir() else path
    try:
        points = json.loads(path.read_text())["points"]
        return Curve.of([p["step"] for p in points], [p["mean_reward"] for p in points])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Sim2RealError(f"transfer.early_warning.reference: {path}: not a learning curve ({error})") from None


def _eval_curve(config: Config, model: BaseAlgorithm, run_dir: Path, step: int) -> EvalCurveCallback:
    """The learning curve on the training domain (a transfer run's target), continued on resume."""
    assert config.transfer is not None
    name = config.training_domain_name()
    index = list(config.domains()).index(name)
    points = []
    if (run_dir / CURVE).is_file():
        points = [p for p in json.loads((run_dir / CURVE).read_text()).get("points", []) if p["step"] <= step]
    evaluate = partial(
        evaluate_domain,
        model,
        config.env,
        config.training_domain().spec(),
        env_kwargs=config.env_kwargs,
        episodes=config.transfer.eval_episodes,
        deterministic=config.eval.deterministic,
        seed=domain_seed(config.train.seed, index),
        normalization=model.get_vec_normalize_env(),
        name=name,
    )
    return EvalCurveCallback(evaluate, name, config.transfer.eval_every, run_dir / CURVE, points)


def train(
    config: Config,
    *,
    command: str = "",
    resume: Path | None = None,
    console: Console | None = None,
    source: str | Path | None = None,
    trust_source: bool = False,
    progress_file: Path | None = None,
    study_hparams: dict[str, str | int] | None = None,
) -> TrainResult:
    """Trains ``config``'s policy in a new run folder (or continues ``resume``) and evaluates it.

    A plain config trains on its source domain. A config with a ``transfer`` section trains on its target,
    starting from a source model as ``transfer.method`` says.

    Args:
        config: the experiment (for a resume: the run's own config, see :func:`load_run_config`).
        command: the command line to record in ``command.txt``.
        resume: an existing run folder to continue from its last checkpoint.
        console: where the progress and the evaluation table go.
        source: a transfer run's source (run folder or zip); default: ``transfer.source``.
        trust_source: allow the source's pickled files (``vecnormalize.pkl``) to be read.
        progress_file: a JSON file kept up to date with the step count (for a study's coordinator).
        study_hparams: HPARAMS columns a study adds (source, method, ...); the study declares the
            dashboard's columns itself, so the run writes only its session.
    """
    console = console or Console()
    started = time.perf_counter()
    if config.train.torch_threads is not None:
        # Two runs on two cores, each with torch's default threads, measured 4.6x slower than with one each.
        torch.set_num_threads(config.train.torch_threads)
    if config.transfer is not None and resume is None:
        settings = config.transfer
        if source is not None:
            # The run's own config records the source; the caller's stays as it was.
            settings = settings.model_copy(update={"source": str(Path(source).resolve())})
            config = config.model_copy(update={"transfer": settings})
        source_model = read_source(config, settings.source, trust_source)
        _check_transfer(config, source_model)
    warning = config.transfer.early_warning if config.transfer is not None else None
    reference = _reference_curve(warning.reference) if warning is not None else None
    parameters = check_domains(config)
    transfer: Transfer | None = None
    if resume is None:
        run_dir = _prepare_new_run(config, command)
        model = build_model(config, _normalized(config, build_vec_env(config, run_dir)))
        if config.transfer is not None:
            transfer = _start_transfer(config, model, source_model, run_dir)
        purge_step = None
        adr_state = None
    else:
        run_dir = resume
        checkpoints = checkpoint_dirs(run_dir)
        if not checkpoints:
            raise Sim2RealError(f"{run_dir}: no checkpoint to resume from (checkpoints/step_* is missing)")
        step = int(checkpoints[-1].name.removeprefix("step_"))
        env = build_vec_env(config, run_dir, append_monitor=True, resume_step=step)
        if config.transfer is not None:
            model, transfer = _resume_transfer(config, checkpoints[-1], env, run_dir)
        else:
            model = load_checkpoint(config, checkpoints[-1], env)
        adr_file = checkpoints[-1] / ADR_STATE
        adr_state = json.loads(adr_file.read_text()) if adr_file.is_file() else None
        # Hide events a killed run logged after this checkpoint; the ones at its step stay (nothing relogs them).
        purge_step = model.num_timesteps + 1
        history = run_dir / "command.txt"
        try:
            write_text(history, (history.read_text() if history.is_file() else "") + command + "\n")
        except OSError as error:
            _close_env(model)
            raise Sim2RealError(f"cannot write run folder {run_dir}: {error.strerror or error}") from None
        console.print(f"resuming {run_dir} from step {model.num_timesteps:,}", soft_wrap=True)

    model.set_logger(make_logger(run_dir / "tb", purge_step=purge_step))
    remaining = config.train.total_timesteps - model.num_timesteps
    if resume is None:
        record_text(model.logger, "config", dump_config(config))
        record_text(model.logger, "domains", yaml.safe_dump(parameters, sort_keys=False))
        model.logger.dump(0)
    domain = config.training_domain()
    callbacks: list[BaseCallback] = []
    adr = None
    if domain.adr is not None:
        a = domain.adr
        adr = AdrCallback(a.low_threshold, a.high_threshold, a.step, a.episodes, state=adr_state)
        callbacks.append(adr)
    if any(isinstance(c, RandomChange) for c in domain.changes()) or domain.reality_gap.factories():
        callbacks.append(RandomizationLogger())
    curve = None
    if transfer is not None:
        callbacks.append(TransferCallback(transfer, announce=lambda text: console.print(text, soft_wrap=True)))
        curve = _eval_curve(config, model, run_dir, model.num_timesteps)
        callbacks.append(curve)
        if warning is not None:
            callbacks.append(
                NegativeTransferCallback(
                    curve,
                    warning.margin,
                    warning.patience,
                    reference=reference,
                    stop=warning.stop,
                    announce=lambda text: console.print(text, soft_wrap=True),
                )
            )
    callbacks.append(CheckpointCallback(partial(save_checkpoint, model, run_dir, adr), config.train.checkpoint_every))
    if progress_file is not None:
        callbacks.append(ProgressFile(progress_file, config.train.total_timesteps))
    if adr is not None:
        training_env = model.get_env()
        assert training_env is not None
        adr.prepare(training_env)
    learn_started = time.perf_counter()
    try:
        if remaining > 0:
            model.learn(
                total_timesteps=remaining,
                callback=callbacks,
                reset_num_timesteps=resume is None,
                progress_bar=config.train.progress_bar,
            )
    except KeyboardInterrupt:
        checkpoint = save_checkpoint(model, run_dir, adr)
        _close_env(model)
        raise Sim2RealError(
            f"interrupted at step {model.num_timesteps:,}; saved {checkpoint}; continue with --resume {run_dir}"
        ) from None
    learn_seconds = time.perf_counter() - learn_started
    save_checkpoint(model, run_dir, adr)
    save_with(run_dir / MODEL, model.save)
    normalization = model.get_vec_normalize_env()
    if normalization is not None:
        save_with(run_dir / VECNORMALIZE, normalization.save)
        write_json(run_dir / VECNORMALIZE_JSON, normalization_state(normalization))
    if transfer is not None:
        write_json(run_dir / TRANSFER_STATE, transfer.state())

    results = evaluate_config(model, config, normalization)
    # SB3 dumps a PPO update's losses at the next rollout; the last update's were never dumped in plain SB3
    # either, and dumping them now would put a second point at the final step.
    for pending in (model.logger.name_to_value, model.logger.name_to_count, model.logger.name_to_excluded):
        pending.clear()
    if transfer is not None:
        transfer.record(model.logger)  # the final weight drift and frozen state, at the final step
    for r in results:
        model.logger.record(f"eval/{r.domain}/mean_reward", r.mean_reward)
        model.logger.record(f"eval/{r.domain}/std_reward", r.std_reward)
        model.logger.record(f"eval/{r.domain}/mean_ep_length", r.mean_ep_length)
    metrics = {f"eval/{r.domain}/mean_reward": r.mean_reward for r in results}
    if curve is not None and curve.points:
        # The curve's first point: the return on the target before any target training.
        metrics["transfer/jumpstart"] = curve.points[0]["mean_reward"]
        model.logger.record("transfer/jumpstart", curve.points[0]["mean_reward"])
    if study_hparams is None:
        record_hparams(model.logger, flat_hparams(config), metrics)
    else:
        record_hparams(model.logger, {**flat_hparams(config), **study_hparams}, metrics, declare=False)
    model.logger.dump(model.num_timesteps)
    model.logger.close()
    write_json(
        run_dir / "eval.json",
        {"num_timesteps": model.num_timesteps, "domains": {r.domain: r.as_dict() for r in results}},
    )
    _close_env(model)
    print_results(results, console)
    return TrainResult(run_dir, model.num_timesteps, results, time.perf_counter() - started, learn_seconds)
