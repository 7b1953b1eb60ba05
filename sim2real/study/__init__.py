"""``sim2real study``: one command from a study file to a report.

The data flows one way: the study file -> a plan (every run's resolved config and folder, checked before
anything runs) -> jobs on a backend (a local process pool or a Ray cluster) -> run folders -> the report.

A study folder holds ``runs/`` (sources, transfer and scratch runs, each a normal run folder), ``sweeps/``,
``identification/`` and ``recordings/`` (identified sources), ``logs/`` (each job's output) and ``report/``. Re-running the same study reads what is already there: a
finished run is skipped, an interrupted one resumes from its last checkpoint, so nothing is trained twice.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from sim2real.adapt import adapt_finished
from sim2real.config import (
    ADAPT_METHOD,
    AdaptConfig,
    Config,
    StudyConfig,
    StudyIdentify,
    SweepParam,
    apply_overrides,
    load_config,
    parse_config,
    read_config_data,
)
from sim2real.domain import DomainSpec, check_domains, check_env_id
from sim2real.errors import Sim2RealError
from sim2real.runs import RESUMABLE_FIELDS, AdaptFolder, RunFolder, run_dir

# Fields a study may set differently from an earlier run of the same study without making it another run: those
# a resume may change (the budget is compared on its own: a larger one extends a finished run), where the
# folder lives and the source's absolute path.
_VOLATILE = {tuple(name.split(".")) for name in RESUMABLE_FIELDS} | {("run", "root"), ("transfer", "source")}

Status = Literal["new", "resume", "done", "restart"]


@dataclass(frozen=True)
class RunSpec:
    """What a training job is in its study: a source, or a method from a source (none: scratch) on a target."""

    role: Literal["source", "transfer"]
    source: str | None  # the source's name; None for scratch
    method: str  # "pretrain" for a source
    target: str | None = None  # None for a source
    seed: int = 0

    @property
    def name(self) -> str:
        """``source nominal``, ``finetune from nominal on heavy_weak, seed 1``, ``scratch on heavy_weak, seed 0``."""
        if self.role == "source":
            return f"source {self.source}"
        label = self.method if self.source is None else f"{self.method} from {self.source}"
        return f"{label} on {self.target}, seed {self.seed}"

    def hparams(self) -> dict[str, str]:
        """The HPARAMS columns the study adds to the run."""
        return {"study/role": self.role, "study/source": self.source or "none", "study/method": self.method,
                "study/target": self.target or "-"}  # fmt: skip


@dataclass(frozen=True)
class SweepSpec:
    """A zero-shot sweep job: the axes, the models (label -> run folder), episodes and seed."""

    params: tuple[SweepParam, ...]
    models: tuple[tuple[str, str], ...]
    episodes: int
    seed: int

    def as_json(self) -> str:
        """What the sweep's ``spec.json`` holds once it is complete (the study compares it to skip the sweep)."""
        return json.dumps({
            "params": [p.model_dump(mode="json", exclude_none=True) for p in self.params],
            "models": dict(self.models),
            "episodes": self.episodes,
            "seed": self.seed,
        }, sort_keys=True)  # fmt: skip


@dataclass(frozen=True)
class IdentifySpec:
    """An identification job: record on a target with a source's policy (or random actions), fit, write the
    identified domain that the source then trains on."""

    source: str  # the identified source's name
    settings: StudyIdentify
    policy: str | None  # the recording policy's run folder; None: random actions
    recording: str  # where the recording is written

    def as_json(self) -> str:
        """What the identification's ``spec.json`` holds once it is complete (the study compares it to skip it)."""
        return json.dumps({"settings": self.settings.model_dump(mode="json"), "policy": self.policy}, sort_keys=True)


@dataclass(frozen=True)
class Job:
    """One unit of work for a backend: typed data that pickles to a process or a Ray worker."""

    spec: RunSpec | SweepSpec | IdentifySpec
    name: str
    folder: str  # the run folder (train) or the sweep's output folder, absolute
    config: Config  # the run's resolved config (a sweep's: the study's base config)
    steps: int  # environment steps (train) or grid points x models (sweep)
    log: str  # the job's output goes here
    progress: str  # the job keeps {"step", "total"} here
    command: str = ""
    needs: tuple[str, ...] = ()
    resume: bool = False
    identified: str = ""  # train: the identified domain file whose source domain replaces the config's
    source: str = ""  # adapt: the source's run folder

    @property
    def kind(self) -> Literal["train", "sweep", "identify", "adapt"]:
        if isinstance(self.spec, IdentifySpec):
            return "identify"
        if isinstance(self.spec, RunSpec) and self.spec.method == ADAPT_METHOD:
            return "adapt"
        return "sweep" if isinstance(self.spec, SweepSpec) else "train"


@dataclass
class Plan:
    """Every job of a study with its status, worked out before anything runs."""

    study: StudyConfig
    file: Path
    folder: Path
    base: Config
    jobs: list[Job]
    status: dict[str, Status]
    resume_step: dict[str, int] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)  # source name -> run folder
    transfers: list[Path] = field(default_factory=list)  # every transfer and scratch run folder
    sweeps: list[Path] = field(default_factory=list)

    def pending(self) -> list[Job]:
        return [job for job in self.jobs if self.status[job.name] != "done"]


def _dotted(data: Any, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(data, dict):
        flat: dict[tuple[str, ...], Any] = {}
        for key, value in data.items():
            flat.update(_dotted(value, (*prefix, str(key))))
        return flat
    return {prefix: data}


def _differences(saved: dict[str, Any], planned: dict[str, Any]) -> list[str]:
    old, new = _dotted(saved), _dotted(planned)
    # A field only one side has was added or removed by another sim2real version, not set by the study.
    keys = [k for k in new if k in old and k not in _VOLATILE]
    return [
        f"{'.'.join(k)} is {old.get(k)!r}, the study asks for {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)
    ]


def _run_status(folder: Path, config: Config) -> tuple[Status, int]:
    """What to do with a run folder: start it, resume it from a step, skip it, or restart it (no checkpoint).

    A folder made by another config (a changed study) is refused: the study would otherwise mix runs.
    """
    if not folder.is_dir() or not any(folder.iterdir()):
        return "new", 0
    run = RunFolder(folder)
    saved = run.saved_config()
    if not isinstance(saved, dict):
        raise Sim2RealError(
            f"{folder}: holds something that is not a run (no readable {run.config_file.name}); move it away"
        )
    planned = config.model_dump(mode="json")
    differences = _differences(saved, planned)
    if differences:
        raise Sim2RealError(
            f"{folder}: made by another config ({differences[0]}); give the study another output folder "
            f"or move this run away"
        )
    saved_steps = int(saved.get("train", {}).get("total_timesteps", 0))
    if saved_steps > config.train.total_timesteps:
        raise Sim2RealError(
            f"{folder}: trained for {saved_steps:,} steps, more than the study's {config.train.total_timesteps:,}; "
            f"give the study another output folder or move this run away"
        )
    checkpoints = run.checkpoints()
    step = checkpoints[-1].step if checkpoints else 0
    if run.finished() and saved_steps == config.train.total_timesteps:
        return "done", step
    if checkpoints:
        return "resume", step
    return "restart", 0


def _load_data(path: Path, overrides: list[str], what: str) -> dict[str, Any]:
    data = read_config_data(path)
    if not isinstance(data, dict):
        raise Sim2RealError(f"{path}: expected a mapping of keys (env, source, targets, algo, ...)")
    return apply_overrides(data, list(overrides), source=f"{what}: set")


def _check_env(study: StudyConfig, file: Path) -> None:
    try:
        check_env_id(study.env)
    except Sim2RealError as error:
        raise Sim2RealError(f"{file}: env: {error}") from None


def _study_run(config: Config, runs: Path, experiment: str, seed: int, steps: int) -> Config:
    """``config`` as one of the study's runs: its folder, seed and budget, one torch thread, no progress bar."""
    return config.model_copy(update={
        "run": config.run.model_copy(update={"root": str(runs), "experiment": experiment}),
        "train": config.train.model_copy(update={"seed": seed, "total_timesteps": steps, "torch_threads": 1,
                                                 "progress_bar": False}),
    })  # fmt: skip


def default_output(file: Path) -> Path:
    """``studies/<env folder>`` for ``configs/<env>/study.yaml``, else ``studies/<file stem>``."""
    return Path("studies") / (file.parent.name if file.stem == "study" else file.stem)


def plan_study(file: Path, study: StudyConfig, output: Path | None = None) -> Plan:
    """Resolves every run of ``study`` and checks it (env, domains, configs, existing folders) before any run.

    Each run's config is a typed copy of its source's config or of the study's base config (see
    :func:`_study_run`); the study file's ``set`` overrides are the only text applied, as the file spells them.
    The jobs come in the order they should start: sources, sweeps, transfer runs.
    """
    _check_env(study, file)
    folder = (output or (Path(study.output) if study.output else default_output(file))).resolve()
    if folder.exists() and not folder.is_dir():
        raise Sim2RealError(f"{folder}: the study folder is a file")
    plan = Plan(study, file, folder, _base_config(file, study), [], {})
    source_configs = _source_configs(plan)
    _plan_sources(plan, source_configs)
    # Sweeps first: they need only the sources, and started early they run beside the transfer runs
    # instead of alone at the end.
    _plan_sweeps(plan)
    _plan_transfers(plan, source_configs)
    for job in plan.jobs:
        if isinstance(job.spec, (SweepSpec, IdentifySpec)):
            plan.status[job.name] = "done" if spec_complete(job) else "new"
            continue
        if job.kind == "adapt":  # the loop resumes itself, stage by stage, from its adapt.json
            plan.status[job.name] = "done" if adapt_finished(Path(job.folder), job.config.adapt) else "new"
            continue
        status, step = _run_status(Path(job.folder), job.config)
        plan.status[job.name] = status
        plan.resume_step[job.name] = step
    # A source that is not finished invalidates nothing, but a transfer run waits for it (its ``needs``).
    plan.jobs[:] = [_with_resume(job, plan.status[job.name]) for job in plan.jobs]
    return plan


def _command(plan: Plan) -> str:
    return f"sim2real study {plan.file}"


def _add(plan: Plan, spec: RunSpec, config: Config, needs: tuple[str, ...] = (), identified: str = "") -> None:
    job = _train_job(spec, config, plan.folder, _command(plan), needs)
    plan.jobs.append(replace(job, identified=identified))


def _base_config(file: Path, study: StudyConfig) -> Config:
    """The study's base config (``config:``, with the study's ``set``), checked to hold the study's targets."""
    base_path = file.parent / study.config
    base = parse_config(_load_data(base_path, study.set, str(file)), str(base_path), study.set, f"{file}: set")
    if base.env != study.env:
        raise Sim2RealError(f"{base_path}: env is {base.env}, the study's env is {study.env}")
    for target in study.targets:
        if target not in base.targets:
            raise Sim2RealError(
                f"{file}: targets: no target '{target}' in {base_path} (targets: {', '.join(base.targets)})"
            )
    check_domains(base)
    return base


def _source_configs(plan: Plan) -> dict[str, Config]:
    """Each source's run config, with every study target to be evaluated on; its run folder into the plan."""
    file, study = plan.file, plan.study
    configs: dict[str, Config] = {}
    for name, source in study.sources.items():
        if name == "scratch":
            raise Sim2RealError(
                f"{file}: sources: 'scratch' names the method without a source; call the source otherwise"
            )
        path = file.parent / source.config
        data = _load_data(path, study.set, str(file))
        data.pop("transfer", None)  # a source pretrains; the study's methods do the transferring
        config = _study_run(parse_config(data, str(path), study.set, f"{file}: set"), plan.folder / "runs", name, source.seed,
                            study.source_steps(name))  # fmt: skip
        # Every source is evaluated zero-shot on every study target, also one its own config does not define.
        missing = {t: plan.base.targets[t] for t in study.targets if t not in config.targets}
        config = config.model_copy(update={"targets": {**config.targets, **missing}}) if missing else config
        if config.env != study.env:
            raise Sim2RealError(f"{path}: env is {config.env}, the study's env is {study.env}")
        check_domains(config)
        configs[name] = config
        plan.sources[name] = run_dir(config)
    return configs


def _plan_sources(plan: Plan, source_configs: dict[str, Config]) -> None:
    """A pretraining job per source: after its teacher's, or after the identification that gives its domain."""
    file, study = plan.file, plan.study
    for name, config in source_configs.items():
        teacher = study.sources[name].teacher
        if teacher is not None and study.sources[name].identify is not None:
            raise Sim2RealError(f"{file}: sources.{name}: a student learns from its teacher's domain; identify "
                                "goes with a source that trains on its own (give one of teacher and identify)")  # fmt: skip
        if teacher is not None:
            _add(plan, RunSpec("source", name, "pretrain"), _with_teacher(file, name, teacher, config,
                 source_configs, plan.sources), needs=(f"source {teacher}",))  # fmt: skip
            continue
        identification = study.sources[name].identify
        if identification is None:
            _add(plan, RunSpec("source", name, "pretrain"), config)
            continue
        job = _identify_job(file, name, identification, config, plan.folder, _command(plan), plan.sources)
        plan.jobs.append(job)
        identified = str(Path(job.folder) / IDENTIFIED_FILES[identification.use])
        if spec_complete(job):
            # Identified already: the source's config is known, so its run folder can be checked like any other.
            config = with_identified_source(config, Path(identified))
        _add(plan, RunSpec("source", name, "pretrain"), config, needs=(job.name,), identified=identified)


def _plan_sweeps(plan: Plan) -> None:
    from sim2real.evaluation.sweep import check_params

    base, folder = plan.base, plan.folder
    for index, sweep in enumerate(plan.study.sweeps):
        check_params(base, sweep.params, DomainSpec.from_config(base.source))
        names = sweep.sources or list(plan.study.sources)
        spec = SweepSpec(tuple(sweep.params), tuple((n, str(plan.sources[n])) for n in names), sweep.episodes,
                         sweep.seed)  # fmt: skip
        tag = "__".join(p.tag() for p in sweep.params)
        out = folder / "sweeps" / (tag if tag not in {s.name for s in plan.sweeps} else f"{tag}_{index}")
        plan.sweeps.append(out)
        points = 1
        for p in sweep.params:
            points *= p.points
        plan.jobs.append(Job(spec, f"sweep {out.name}", str(out), base, points * len(names),
                             str(folder / "logs" / f"sweep_{out.name}.log"),
                             str(folder / "logs" / f"sweep_{out.name}.progress.json"), _command(plan),
                             needs=tuple(f"source {n}" for n in names)))  # fmt: skip


def _plan_transfers(plan: Plan, source_configs: dict[str, Config]) -> None:
    """A run per target, method, source it transfers from (none for scratch) and seed."""
    file, study, base = plan.file, plan.study, plan.base
    for target in study.targets:
        for method in study.methods:
            origins: list[str | None] = [None] if method == "scratch" else list(study.sources_to_transfer_from(method))
            origins = [o for o in origins if o is None or _transfers(file, o, method, study, source_configs[o])]
            for origin in origins:
                for seed in study.seed_list():
                    if method == ADAPT_METHOD:
                        assert origin is not None
                        _plan_adapt(plan, origin, target, seed, source_configs[origin])
                        continue
                    source_path = str(plan.sources[origin]) if origin else None
                    settings = study.transfer_settings(method).model_copy(update={"target": target,
                                                                                  "source": source_path})  # fmt: skip
                    settings.apply_recipe(base.algo.name, base.train.normalize)
                    config = _study_run(base, plan.folder / "runs", origin or "scratch", seed, study.budgets.transfer)
                    # A run from a source with an observation history keeps it (the policy's input is the same);
                    # from a memoryless source into a base config with one, the source's weights are widened.
                    history = (source_configs[origin].history if origin else None) or base.history
                    config = config.model_copy(update={"transfer": settings, "history": history})
                    _add(plan, RunSpec("transfer", origin, method, target, seed), config,
                         needs=(f"source {origin}",) if origin else ())  # fmt: skip
                    plan.transfers.append(run_dir(config))


def _plan_adapt(plan: Plan, origin: str, target: str, seed: int, source: Config) -> None:
    """The loop from source ``origin`` on ``target``: the base config's adapt section on the study's transfer
    budget (target steps, as every method's), in ``runs/<env>/<origin>/<target>/adapt/seed_<n>``. Its
    fine-tuning stage starts from the study's finetune settings, as the study's finetune runs do, and the
    policy keeps the source's observation history."""
    base = plan.base
    settings = (base.adapt or AdaptConfig()).model_copy(
        update={"target": target, "budget": plan.study.budgets.transfer}
    )
    finetune = plan.study.transfer_settings("finetune").model_copy(update={"target": target})
    config = _study_run(base, plan.folder / "runs", origin, seed, base.train.total_timesteps)
    config = config.model_copy(update={"adapt": settings, "transfer": finetune,
                                       "history": source.history or base.history})  # fmt: skip
    folder = AdaptFolder.default(config, target, seed)
    spec = RunSpec("transfer", origin, ADAPT_METHOD, target, seed)
    slug = str(folder.relative_to(plan.folder / "runs")).replace("/", "__")
    logs = plan.folder / "logs"
    plan.jobs.append(Job(spec, spec.name, str(folder), config, settings.budget, str(logs / f"{slug}.log"),
                         str(logs / f"{slug}.progress.json"), _command(plan), (f"source {origin}",),
                         source=str(plan.sources[origin])))  # fmt: skip
    plan.transfers.append(folder)


# The identified domain a source trains on: the point estimate, or randomized over its uncertainty.
IDENTIFIED_FILES = {"estimate": "identified.yaml", "randomized": "identified_randomized.yaml"}


def spec_complete(job: Job) -> bool:
    """A sweep or identification is complete once its ``spec.json`` (written last) matches the job's."""
    assert isinstance(job.spec, (SweepSpec, IdentifySpec))
    spec_file = Path(job.folder) / "spec.json"
    return spec_file.is_file() and spec_file.read_text().strip() == job.spec.as_json()


def _identify_job(
    file: Path, name: str, settings: StudyIdentify, config: Config, folder: Path, command: str,
    sources: dict[str, Path],
) -> Job:  # fmt: skip
    """The identification of source ``name``, checked now: the target to record on, a fixed source domain to
    start from, and every parameter's range on the model."""
    from sim2real.evaluation.sweep import check_ranges

    where = f"{file}: sources.{name}.identify"
    target = settings.record.target
    if target not in config.targets:
        raise Sim2RealError(
            f"{where}.record.target: no target '{target}' in {config.origin} (targets: {', '.join(config.targets)})"
        )
    spec = DomainSpec.from_config(config.source)
    if spec.randomized:
        raise Sim2RealError(
            f"{where}: the source domain of {config.origin} draws its dynamics or has reality-gap wrappers; "
            "identification starts from one fixed model: use a config whose source domain is fixed"
        )
    try:
        check_ranges(config, settings.params, spec)
    except Sim2RealError as error:
        raise Sim2RealError(f"{where}.params: {error.render(lambda *_: '').strip()}") from None
    policy = settings.record.policy
    identify = IdentifySpec(name, settings, None if policy == "random" else str(sources[policy]),
                            str(folder / "recordings" / f"{name}.npz"))  # fmt: skip
    needs = () if policy == "random" else (f"source {policy}",)
    return Job(identify, f"identify {name}", str(folder / "identification" / name), config,
               settings.max_generations * len(set(settings.latency)), str(folder / "logs" / f"identify_{name}.log"),
               str(folder / "logs" / f"identify_{name}.progress.json"), command, needs)  # fmt: skip


def _with_teacher(
    file: Path, name: str, teacher: str, config: Config, configs: dict[str, Config], sources: dict[str, Path]
) -> Config:
    """Student source ``name``'s config learning from the study's source ``teacher``, checked now."""
    where = f"{file}: sources.{name}.teacher"
    if config.student is None:
        raise Sim2RealError(f"{where}: {config.origin} has no student section; only a student learns from a teacher")
    if teacher not in configs or teacher == name:
        others = ", ".join(n for n in configs if n != name)
        raise Sim2RealError(f"{where}: '{teacher}' is not another source of the study (sources: {others})")
    if not configs[teacher].privileged:
        raise Sim2RealError(
            f"{where}: source '{teacher}' is not trained with privileged inputs ({configs[teacher].origin} has "
            "privileged: false); a student learns from a privileged teacher"
        )
    return config.model_copy(update={"student": config.student.model_copy(update={"teacher": str(sources[teacher])})})


def _transfers(file: Path, origin: str, method: str, study: StudyConfig, config: Config) -> bool:
    """Whether the study transfers from source ``origin``: not from a privileged teacher, whose inputs no target
    run has (skipped when the study transfers from every source, refused when named)."""
    if not config.privileged:
        return True
    variant = study.variants.get(method)
    named = [*(study.transfer_from or []), *(variant.transfer_from or [] if variant is not None else [])]
    if origin in named:
        raise Sim2RealError(
            f"{file}: transfer_from: '{origin}' is a privileged teacher; its inputs are not there on a target: "
            "transfer from its student"
        )
    return False


def with_identified_source(config: Config, identified: Path) -> Config:
    """``config`` with the source domain (dynamics and reality gap) of an identification's output file."""
    return config.model_copy(update={"source": load_config(identified).source})


def _train_job(spec: RunSpec, config: Config, folder: Path, command: str, needs: tuple[str, ...]) -> Job:
    run = run_dir(config)
    slug = str(run.relative_to(folder / "runs")).replace("/", "__")
    return Job(spec, spec.name, str(run), config, config.train.total_timesteps, str(folder / "logs" / f"{slug}.log"),
               str(folder / "logs" / f"{slug}.progress.json"), command, needs)  # fmt: skip


def _with_resume(job: Job, status: Status) -> Job:
    return replace(job, resume=True) if status == "resume" else job


@contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """Holds ``<study>/study.lock`` while the study runs: a second ``sim2real study`` on the same folder would
    take the first one's running runs (no checkpoint yet) for dead ones. The OS drops the lock with the process."""
    import fcntl

    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "study.lock").open("a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            pid = handle.read().strip() or "?"
            raise Sim2RealError(f"{folder}: another sim2real study (process {pid}) is running this study") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def set_aside(folder: Path, study_folder: Path) -> Path:
    """Moves a run folder that died before its first checkpoint to ``<study>/interrupted/`` (kept, not deleted)."""
    relative = folder.relative_to(study_folder / "runs")
    target = study_folder / "interrupted" / f"{str(relative).replace('/', '__')}_{time.strftime('%Y%m%d-%H%M%S')}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(folder), str(target))
    return target


__all__ = [
    "IdentifySpec",
    "Job",
    "Plan",
    "RunSpec",
    "SweepSpec",
    "default_output",
    "plan_study",
    "set_aside",
    "spec_complete",
    "study_lock",
    "with_identified_source",
]
