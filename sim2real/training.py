"""Training runs: a config in, a run folder out.

:func:`train` reads top to bottom: open the run folder (new or resumed) -> build the training envs -> build or
load the model (a transfer run sets its source up here, once) -> callbacks -> learn -> save -> evaluate -> log.
The folder's layout belongs to :mod:`sim2real.runs`; how a source is reused, to :mod:`sim2real.transfer`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import cast

import gymnasium as gym
import torch
import yaml
from rich.console import Console
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from sim2real.callbacks import (
    AdrCallback,
    CheckpointCallback,
    DomainCurveCallback,
    ProgressFile,
    RandomizationLogger,
    record_evaluation,
)
from sim2real.config import Config, HistoryConfig, PrivilegedTerm, dump_config
from sim2real.domain import DomainSpec, check_domains, make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.evaluation import DomainResult, curve_evaluation, evaluate_config, print_results
from sim2real.evaluation.metrics import Curve
from sim2real.io import save_with, write_json
from sim2real.logging import flat_hparams, make_logger, record_hparams, record_text
from sim2real.modelfile import (
    ModelFile,
    apply_normalization_state,
    load_replay_buffer,
    normalization_state,
    read_model,
    read_normalization,
    restore_model,
    save_replay_buffer,
)
from sim2real.models import DEFAULT_POLICY, Policy, build_model
from sim2real.runs import VECNORMALIZE_JSON, Checkpoint, RunFolder, read_curve_points, run_label
from sim2real.student import Teacher, distill, prepare_student, read_teacher
from sim2real.transfer import Transfer, read_source, resume_transfer, start_transfer
from sim2real.transfer.callbacks import EvalCurveCallback, transfer_callbacks


@dataclass
class _Session:
    """A run opened for training: its folder, model, transfer state, and the checkpoint it resumed from."""

    run: RunFolder
    model: BaseAlgorithm
    transfer: Transfer | None = None
    resumed_from: Checkpoint | None = None


@dataclass
class TrainResult:
    run_dir: Path
    num_timesteps: int
    results: list[DomainResult]
    seconds: float  # the whole call: checks, setup, training, saving, evaluation
    learn_seconds: float  # stable-baselines3's learn() alone


# ------------------------------------------------------------------------------------------- building


def _training_env(
    env_id: str, spec: DomainSpec, seed: tuple[int, ...], monitor_file: str | None, append: bool, env_kwargs: dict,
    history: HistoryConfig | None = None, privileged: Sequence[PrivilegedTerm] | None = None,
    teacher: Sequence[PrivilegedTerm] | None = None,
) -> gym.Env:  # fmt: skip
    # check_domains() has already warned about this domain's friction; the copies stay quiet.
    env = make_domain_env(env_id, spec, seed=seed, check_friction=False, history=history, privileged=privileged,
                          teacher=teacher, **env_kwargs)  # fmt: skip
    return Monitor(env, filename=monitor_file, override_existing=not append)


def build_vec_env(
    config: Config,
    run: RunFolder | Path | None = None,
    append_monitor: bool = False,
    resume_step: int = 0,
    teacher: Sequence[PrivilegedTerm] | None = None,
) -> VecEnv:
    """The training domain (the source; a transfer run's target) as a vector env of ``train.n_envs`` copies.

    Env ``i`` draws its random dynamics from a generator seeded with (seed, i) and resets with seed + i
    (stable-baselines3's convention), in this process or in its own (fork, spawn or forkserver). A resumed
    run adds its step to both, so it does not replay the parameter sequence its first part already saw.
    Episode logs go to the run folder's ``monitor/`` when a run is given. ``teacher``: a student's env, whose
    infos carry its teacher's observation (:class:`~sim2real.domain.TeacherView`).
    """
    train = config.train
    stream = (train.seed,) if not resume_step else (train.seed, resume_step)
    monitor = None
    if run is not None:
        monitor = (run if isinstance(run, RunFolder) else RunFolder(run)).monitor
        monitor.mkdir(parents=True, exist_ok=True)
    spec = DomainSpec.from_config(config.training_domain(), training=True)
    files = [str(monitor / str(i)) if monitor else None for i in range(train.n_envs)]
    factories: list[Callable[[], gym.Env]] = [
        partial(
            _training_env,
            config.env,
            spec,
            (*stream, i),
            files[i],
            append_monitor,
            dict(config.env_kwargs),
            config.history,
            config.privileged_terms(),
            teacher,
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


def normalize_env(config: Config, venv: VecEnv) -> VecEnv:
    """``venv`` with fresh running normalization, as ``train.normalize`` says (unchanged when it is off)."""
    n = config.train.normalize
    if n is None:
        return venv
    return VecNormalize(
        venv, norm_obs=n.observations, norm_reward=n.rewards, clip_obs=n.clip_obs, gamma=config.algo.gamma
    )


# ------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    model: BaseAlgorithm,
    run: RunFolder,
    adr: AdrCallback | None = None,
    transfer: Transfer | None = None,
    keep: int = 2,
) -> Path:
    """Writes model, normalization statistics, replay buffer, transfer and ADR state as ``checkpoints/step_<n>/``.

    The files go into a hidden folder that is renamed to its final name only when complete.
    """
    with run.new_checkpoint(model.num_timesteps, keep) as folder:
        if folder is not None:
            checkpoint = Checkpoint(folder)
            model.save(checkpoint.model)
            venv = model.get_vec_normalize_env()
            if venv is not None:
                venv.save(str(checkpoint.vecnormalize))
                write_json(checkpoint.vecnormalize_json, normalization_state(venv))
            if transfer is not None:
                write_json(checkpoint.transfer_state, transfer.state())
            if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
                save_replay_buffer(model.replay_buffer, checkpoint.replay_buffer)
            if adr is not None:
                write_json(checkpoint.adr_file, adr.state())
    return run.checkpoints()[-1].path


def _load_checkpoint(
    config: Config, policy: Policy, run: RunFolder, checkpoint: Checkpoint, env: VecEnv, trusted: bool = False
) -> tuple[BaseAlgorithm, Transfer | None]:
    """A run's model at ``checkpoint``, on a freshly built env, from plain data only: weights read weights-only,
    normalization statistics from JSON, the replay buffer from arrays. A run folder may come from someone else
    (a downloaded study): nothing in it is unpickled unless ``trusted`` (earlier versions' pickled buffers)."""
    try:
        if config.train.normalize is not None:
            env = normalize_env(config, env)
            state = read_normalization(checkpoint.path, trusted)
            if state is None:
                raise Sim2RealError(
                    f"checkpoint {checkpoint.path} has no normalization statistics ({VECNORMALIZE_JSON})"
                )
            venv = cast(VecNormalize, env)
            apply_normalization_state(venv, state)
            venv.training = config.transfer is None or config.transfer.normalization != "fixed"
        model = build_model(config, env, policy)
        transfer = None
        if config.transfer is None:
            restore_model(model, read_model(checkpoint.model, with_normalization=False))
        else:
            transfer = resume_transfer(model, config.transfer, run, checkpoint)
        if isinstance(model, OffPolicyAlgorithm) and model.replay_buffer is not None:
            if checkpoint.replay_buffer.exists():
                load_replay_buffer(model.replay_buffer, checkpoint.replay_buffer)
            elif checkpoint.replay_buffer_pickle.exists():
                if not trusted:
                    raise Sim2RealError(
                        f"{checkpoint.replay_buffer_pickle}: a replay buffer only as a pickle (an earlier version's), "
                        "which can run code when read; pass {trust_source} if you trust this run",
                        trust_source=True,
                    )
                model.load_replay_buffer(checkpoint.replay_buffer_pickle)
    except Sim2RealError:
        env.close()
        raise
    except Exception as error:  # a damaged file can raise nearly anything
        env.close()
        raise Sim2RealError(f"checkpoint {checkpoint.path} is corrupt or incomplete: {error}") from None
    return model, transfer


# ------------------------------------------------------------------------------------------- runs


def load_run_config(run_dir: Path, overrides: list[str] | None = None) -> Config:
    """The resolved config of an existing run, with the overrides a resume may make (``runs.RESUMABLE_FIELDS``)."""
    return RunFolder.open(run_dir).config(overrides)


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Caps torch's CPU threads for the block when ``threads`` is set, and puts the caller's setting back."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    # Two runs on two cores, each with torch's default threads, measured 4.6x slower than with one each.
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _reference_curve(reference: str | None) -> Curve | None:
    """A scratch run's learning curve (its folder or its curve file), for the negative-transfer warning."""
    if reference is None:
        return None
    try:
        points = read_curve_points(Path(reference))
        return Curve.of([p["step"] for p in points], [p["mean_reward"] for p in points])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Sim2RealError(f"transfer.early_warning.reference: {reference}: not a learning curve ({error})") from None


def _callbacks(
    config: Config, session: _Session, console: Console, reference: Curve | None
) -> tuple[list[BaseCallback], AdrCallback | None, EvalCurveCallback | None]:
    """sim2real's own callbacks for this run: ADR, randomization histograms, transfer schedule and curve."""
    run, model, transfer = session.run, session.model, session.transfer
    announce = partial(console.print, soft_wrap=True)
    domain = config.training_domain()
    spec = DomainSpec.from_config(domain)
    callbacks: list[BaseCallback] = []
    adr = None
    if domain.adr is not None:
        a = domain.adr
        state = session.resumed_from.adr_state() if session.resumed_from else None
        adr = AdrCallback(a.low_threshold, a.high_threshold, a.step, a.episodes, state=state)
        callbacks.append(adr)
    if spec.randomized:
        callbacks.append(RandomizationLogger())
    curve = None
    if transfer is not None and config.transfer is not None:
        transferring, curve = transfer_callbacks(config, model, run, transfer, spec, reference, announce)
        callbacks += transferring
    elif config.eval.curve_points > 1:
        evaluate = partial(evaluate_config, model, config, model.get_vec_normalize_env())
        callbacks.append(DomainCurveCallback(evaluate, config.train.total_timesteps, config.eval.curve_points))
    return callbacks, adr, curve


def _open_new(
    config: Config, policy: Policy, command: str, source: ModelFile | None, teacher: Teacher | None = None
) -> _Session:
    """A new run: its folder, envs and model (a transfer run's source set up once, a student's teacher read);
    the folder appears only once all of it has been built, so a bad source or layer name leaves nothing behind."""
    with RunFolder.create(config, command) as staged:
        env = normalize_env(config, build_vec_env(config, staged, teacher=teacher.terms if teacher else None))
        try:
            model = build_model(config, env, policy)
            if teacher is not None:
                prepare_student(model, teacher)
            # The curve's step-0 evaluation, when it measures the mean action as auto's check does: a source
            # that works keeps that measurement as its first point.
            first = (curve_evaluation(config, model, DomainSpec.from_config(config.training_domain()))
                     if config.transfer and config.eval.deterministic else None)  # fmt: skip
            transfer = (
                start_transfer(model, config.transfer, source, staged, config.history, first, config.target_budget())
                if config.transfer
                else None
            )
        except BaseException:
            env.close()
            raise
    return _Session(staged.final(), model, transfer)


def _open_resumed(
    config: Config,
    policy: Policy,
    command: str,
    folder: Path,
    console: Console,
    trusted: bool = False,
    teacher: Teacher | None = None,
) -> _Session:
    """A run continued from its last checkpoint."""
    run = RunFolder.open(folder)
    checkpoint = run.latest_checkpoint()
    env = build_vec_env(config, run, append_monitor=True, resume_step=checkpoint.step,
                        teacher=teacher.terms if teacher else None)  # fmt: skip
    model, transfer = _load_checkpoint(config, policy, run, checkpoint, env, trusted)
    try:
        run.append_command(command)
    except Sim2RealError:
        _close_env(model)
        raise
    console.print(f"resuming {run.path} from step {model.num_timesteps:,}", soft_wrap=True)
    return _Session(run, model, transfer, checkpoint)


def _close_env(model: BaseAlgorithm) -> None:
    env = model.get_env()
    if env is not None:
        env.close()


def train(
    config: Config,
    *,
    callbacks: Sequence[BaseCallback] = (),
    policy: Policy = DEFAULT_POLICY,
    command: str = "",
    resume: Path | None = None,
    console: Console | None = None,
    source: str | Path | ModelFile | None = None,
    trust_source: bool = False,
    progress_file: Path | None = None,
    study_hparams: Mapping[str, str | int] | None = None,
) -> TrainResult:
    """Trains ``config``'s policy in a new run folder (or continues ``resume``) and evaluates it.

    A plain config trains on its source domain. A config with a ``transfer`` section trains on its target,
    starting from a source model as ``transfer.method`` says.

    Args:
        config: the experiment (for a resume: the run's own config, see :func:`load_run_config`).
        callbacks: stable-baselines3 callbacks of your own, called after sim2real's.
        policy: the policy, as stable-baselines3 takes it (``"MlpPolicy"`` or a policy class).
        command: the command line to record in the run folder (:meth:`RunFolder.append_command`).
        resume: an existing run folder to continue from its last checkpoint.
        console: where the progress and the evaluation table go.
        source: a transfer run's source (run folder, zip, or a model already read); default ``transfer.source``.
        trust_source: allow pickled files to be read (a source's ``vecnormalize.pkl``, an earlier version's
            pickled replay buffer in a checkpoint); without it nothing sim2real reads is unpickled.
        progress_file: a JSON file kept up to date with the step count (for a study's coordinator).
        study_hparams: HPARAMS columns a study adds (source, method, ...).

    Example:
        >>> from sim2real import load_config, train
        >>> result = train(load_config("configs/inverted_double_pendulum/nominal.yaml"))  # doctest: +SKIP
    """
    console = console or Console()
    started = time.perf_counter()
    with torch_threads(config.train.torch_threads):
        warning = config.transfer.early_warning if config.transfer is not None else None
        reference = _reference_curve(warning.reference) if warning is not None else None
        config, session, teacher = _open(config, policy, command, resume, console, source, trust_source)
        run, model, transfer = session.run, session.model, session.transfer
        ours, adr, curve = _callbacks(config, session, console, reference)
        checkpoint = CheckpointCallback(
            partial(save_checkpoint, model, run, adr, transfer), config.train.checkpoint_every
        )
        progress = [ProgressFile(progress_file, config.train.total_timesteps)] if progress_file else []
        if adr is not None:
            training_env = model.get_env()
            assert training_env is not None
            adr.prepare(training_env)

        learn_started = time.perf_counter()
        try:
            _learn(config, session, teacher, [*ours, *callbacks, checkpoint, *progress], curve, console)
        except KeyboardInterrupt:
            saved = save_checkpoint(model, run, adr, transfer)
            _close_env(model)
            raise Sim2RealError(
                f"interrupted at step {model.num_timesteps:,}; saved {saved}; continue with {{resume}}",
                resume=run.path,
            ) from None
        learn_seconds = time.perf_counter() - learn_started

        _save(model, run, adr, transfer)
        results = evaluate_config(model, config, model.get_vec_normalize_env())
        _log_final(model, run, config, results, transfer, curve, study_hparams)
        run.write_eval(model.num_timesteps, {r.domain: r.as_dict() for r in results})
        _close_env(model)
    print_results(results, console)
    return TrainResult(run.path, model.num_timesteps, results, time.perf_counter() - started, learn_seconds)


def _open(
    config: Config, policy: Policy, command: str, resume: Path | None, console: Console,
    source: str | Path | ModelFile | None, trust_source: bool,
) -> tuple[Config, _Session, Teacher | None]:  # fmt: skip
    """The run opened (new or resumed) with its logger, the config as the run records it, and its teacher."""
    teacher = read_teacher(config, trusted=trust_source) if config.student is not None else None
    if teacher is not None and config.student is not None:  # the run's own config records its teacher
        student = config.student.model_copy(update={"teacher": str(teacher.path.resolve())})
        config = config.model_copy(update={"student": student})
    if resume is not None:
        check_domains(config)
        session = _open_resumed(config, policy, command, resume, console, trust_source, teacher)
        session.model.set_logger(make_logger(session.run.tensorboard, purge_step=session.model.num_timesteps + 1))
        return config, session, teacher
    source_file = None
    if config.transfer is not None:
        source_file = source if isinstance(source, ModelFile) else read_source(config, source, trust_source)
        if source_file is not None:  # the run's own config records where its source came from
            settings = config.transfer.model_copy(update={"source": str(source_file.path.resolve())})
            config = config.model_copy(update={"transfer": settings})
    parameters = check_domains(config)
    session = _open_new(config, policy, command, source_file, teacher)
    model = session.model
    model.set_logger(make_logger(session.run.tensorboard, purge_step=None))
    record_text(model.logger, "config", dump_config(config.paths_relative_to(session.run.path)))
    record_text(model.logger, "domains", yaml.safe_dump(parameters, sort_keys=False))
    model.logger.dump(0)
    return config, session, teacher


def _learn(
    config: Config, session: _Session, teacher: Teacher | None, callbacks: list[BaseCallback],
    curve: EvalCurveCallback | None, console: Console,
) -> None:  # fmt: skip
    """Trains for what is left of the budget: a transfer run's budget is one of target steps, so its
    evaluations and recalibration count too."""
    model, resumed = session.model, session.resumed_from is not None
    remaining = config.train.total_timesteps - model.num_timesteps
    remaining -= curve.overhead if curve is not None and curve.budget is not None else 0
    if remaining > 0 and teacher is not None and config.student is not None:
        everything = model._init_callback(callbacks, progress_bar=config.train.progress_bar)
        # The teacher's share of the actions falls over the run's first budget (config.yaml keeps it).
        horizon = config.student.teacher_steps * session.run.config().train.total_timesteps
        distill(model, teacher, config.student, config.train.total_timesteps, everything, config.train.seed,
                horizon)  # fmt: skip
    elif remaining > 0 or curve is not None:  # a curve has a start point even when nothing is left to train
        if remaining <= 0 and not resumed:
            console.print(f"warning: the budget of {config.train.total_timesteps:,} target steps went to "
                          f"the recalibration and checks ({curve.overhead if curve else 0:,}); nothing is "
                          "left to train", soft_wrap=True)  # fmt: skip
        model.learn(total_timesteps=max(remaining, 0), callback=callbacks, reset_num_timesteps=not resumed,
                    progress_bar=config.train.progress_bar)  # fmt: skip


def _save(model: BaseAlgorithm, run: RunFolder, adr: AdrCallback | None, transfer: Transfer | None) -> None:
    """The last checkpoint, then the run's final model (a plain SB3 zip), statistics and transfer state."""
    save_checkpoint(model, run, adr, transfer)
    save_with(run.model, model.save)
    normalization = model.get_vec_normalize_env()
    if normalization is not None:
        save_with(run.vecnormalize, normalization.save)
        write_json(run.vecnormalize_json, normalization_state(normalization))
    if transfer is not None:
        write_json(run.transfer_state, transfer.state())


def _log_final(
    model: BaseAlgorithm,
    run: RunFolder,
    config: Config,
    results: list[DomainResult],
    transfer: Transfer | None,
    curve: EvalCurveCallback | None,
    study_hparams: Mapping[str, str | int] | None,
) -> None:
    """The final evaluation, transfer state and HPARAMS at the final step, then closes the run's logger.

    A logger of its own over the run's TensorBoard writer: SB3 dumps a PPO update's losses at the next rollout,
    so the last update's are still pending in the model's logger (plain SB3 never writes them either), and
    dumping them now would put a second point at the final step.
    """
    logger = Logger(model.logger.dir, model.logger.output_formats)
    if transfer is not None:
        transfer.record(logger)  # the final weight drift and frozen state
    record_evaluation(logger, results)
    if curve is not None and curve.points:
        # The curve's first point: the return on the target before any target training.
        logger.record("transfer/jumpstart", curve.points[0]["mean_reward"])
    hparams = {**flat_hparams(config.paths_relative_to(run.path)), **(study_hparams or {})}
    record_hparams(logger, hparams, run_label(config))
    logger.dump(model.num_timesteps)
    logger.close()
