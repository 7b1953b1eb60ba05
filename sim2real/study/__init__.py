"""``sim2real study``: one command from a study file to a report.

The data flows one way: the study file -> a plan (every run's resolved config and folder, checked before
anything runs) -> jobs on a backend (a local process pool or a Ray cluster) -> run folders -> the report.

A study folder holds ``runs/`` (sources, transfer and scratch runs, each a normal run folder), ``sweeps/``,
``logs/`` (each job's output) and ``report/``. Re-running the same study reads what is already there: a
finished run is skipped, an interrupted one resumes from its last checkpoint, so nothing is trained twice.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from sim2real.config import (
    Config,
    StudyConfig,
    SweepParam,
    apply_overrides,
    dump_config,
    flat_hparams,
    parse_config,
    read_config_data,
)
from sim2real.errors import Sim2RealError

# Fields a study may set differently from an earlier run of the same study without making it another run:
# where the folder lives, how many threads and checkpoints, the progress bar, the source's absolute path.
_VOLATILE = {
    ("run", "root"),
    ("train", "torch_threads"),
    ("train", "progress_bar"),
    ("train", "checkpoint_every"),
    ("transfer", "source"),
    ("train", "total_timesteps"),  # compared on its own: a larger budget extends a finished run
}

Status = Literal["new", "resume", "done", "restart"]


@dataclass(frozen=True)
class Job:
    """One unit of work for a backend: plain data, so it pickles to a process or a Ray worker."""

    name: str  # "source nominal", "finetune from nominal on heavy_weak, seed 1", "sweep ..."
    kind: Literal["train", "sweep"]
    folder: str  # the run folder (train) or the sweep's output folder, absolute
    config: str  # the resolved config as YAML
    steps: int  # environment steps (train) or grid points x models (sweep)
    log: str  # the job's output goes here
    progress: str  # the job keeps {"step", "total"} here
    command: str = ""
    needs: tuple[str, ...] = ()
    resume: bool = False
    hparams: tuple[tuple[str, str], ...] = ()  # HPARAMS columns the study adds to the run
    sweep: str = ""  # a sweep's spec as JSON: params, models (label -> run folder), episodes, seed


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
    from sim2real.training import checkpoint_dirs

    if not folder.is_dir() or not any(folder.iterdir()):
        return "new", 0
    saved_file = folder / "config.yaml"
    try:
        saved = yaml.safe_load(saved_file.read_text())
    except (OSError, yaml.YAMLError):
        saved = None
    if not isinstance(saved, dict):
        raise Sim2RealError(f"{folder}: holds something that is not a run (no readable config.yaml); move it away")
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
    checkpoints = checkpoint_dirs(folder)
    step = int(checkpoints[-1].name.removeprefix("step_")) if checkpoints else 0
    if (folder / "eval.json").is_file() and saved_steps == config.train.total_timesteps:
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
    import gymnasium as gym
    import sim2real_envs  # noqa: F401  (registers the Sim2Real/ ids)

    try:
        gym.spec(study.env)
    except gym.error.Error as error:
        raise Sim2RealError(f"{file}: env: unknown env '{study.env}' ({error})") from None


def default_output(file: Path) -> Path:
    """``studies/<env folder>`` for ``configs/<env>/study.yaml``, else ``studies/<file stem>``."""
    return Path("studies") / (file.parent.name if file.stem == "study" else file.stem)


def plan_study(file: Path, study: StudyConfig, output: Path | None = None) -> Plan:
    """Resolves every run of ``study`` and checks it (env, domains, configs, existing folders) before any run."""
    from sim2real.evaluation.sweep import check_params
    from sim2real.training import check_domains

    _check_env(study, file)
    here = file.parent
    folder = (output or (Path(study.output) if study.output else default_output(file))).resolve()
    if folder.exists() and not folder.is_dir():
        raise Sim2RealError(f"{folder}: the study folder is a file")
    runs = folder / "runs"
    common = [f"run.root={runs}", "train.torch_threads=1", "train.progress_bar=false"]
    command = f"sim2real study {file}"

    base_path = here / study.config
    base_data = _load_data(base_path, study.set, str(file))
    base = parse_config(copy.deepcopy(base_data), str(base_path))
    if base.env != study.env:
        raise Sim2RealError(f"{base_path}: env is {base.env}, the study's env is {study.env}")
    for target in study.targets:
        if target not in base.targets:
            raise Sim2RealError(
                f"{file}: targets: no target '{target}' in {base_path} (targets: {', '.join(base.targets)})"
            )
    check_domains(base)

    jobs: list[Job] = []
    configs: dict[str, Config] = {}
    plan = Plan(study, file, folder, base, jobs, {})

    def add(job: Job, config: Config | None = None) -> None:
        jobs.append(job)
        if config is not None:
            configs[job.name] = config

    for name, source in study.sources.items():
        if name == "scratch":
            raise Sim2RealError(
                f"{file}: sources: 'scratch' names the method without a source; call the source otherwise"
            )
        path = here / source.config
        data = _load_data(path, study.set, str(file))
        data = apply_overrides(data, [*common, f"run.experiment={name}", f"train.seed={source.seed}",
                                      f"train.total_timesteps={study.budgets.source}"])  # fmt: skip
        data.pop("transfer", None)
        config = parse_config(data, str(path))
        if config.env != study.env:
            raise Sim2RealError(f"{path}: env is {config.env}, the study's env is {study.env}")
        check_domains(config)
        run_dir = config.run_dir()
        plan.sources[name] = run_dir
        job_name = f"source {name}"
        hparams = (("study/role", "source"), ("study/source", name), ("study/method", "pretrain"),
                   ("study/target", "-"))  # fmt: skip
        add(_train_job(job_name, config, folder, command, (), hparams), config)

    # Sweeps first: they need only the sources, and started early they run beside the transfer runs
    # instead of alone at the end.
    for index, sweep in enumerate(study.sweeps):
        check_params(base, sweep.params, base.source.spec())
        names = sweep.sources or list(study.sources)
        spec = {
            "params": [p.model_dump(mode="json", exclude_none=True) for p in sweep.params],
            "models": {name: str(plan.sources[name]) for name in names},
            "episodes": sweep.episodes,
            "seed": sweep.seed,
        }
        tag = "__".join(p.tag() for p in sweep.params)
        out = folder / "sweeps" / (tag if tag not in {s.name for s in plan.sweeps} else f"{tag}_{index}")
        plan.sweeps.append(out)
        points = 1
        for p in sweep.params:
            points *= p.points
        job = Job(name=f"sweep {out.name}", kind="sweep", folder=str(out), config=dump_config(base),
                  steps=points * len(names), log=str(folder / "logs" / f"sweep_{out.name}.log"),
                  progress=str(folder / "logs" / f"sweep_{out.name}.progress.json"), command=command,
                  needs=tuple(f"source {n}" for n in names), sweep=json.dumps(spec, sort_keys=True))  # fmt: skip
        add(job)

    settings = study.transfer.model_dump(mode="json", exclude={"method", "target", "source"})
    for target in study.targets:
        for method in study.methods:
            origins: list[str | None] = [None] if method == "scratch" else list(study.sources_to_transfer_from())
            for origin in origins:
                for seed in study.seed_list():
                    data = copy.deepcopy(base_data)
                    data["transfer"] = {**settings, "method": method, "target": target,
                                        "source": str(plan.sources[origin]) if origin else None}  # fmt: skip
                    data = apply_overrides(data, [*common, f"run.experiment={origin or 'scratch'}",
                                                  f"train.seed={seed}", f"train.total_timesteps={study.budgets.transfer}"])  # fmt: skip
                    config = parse_config(data, str(base_path))
                    label = method if origin is None else f"{method} from {origin}"
                    job_name = f"{label} on {target}, seed {seed}"
                    needs = (f"source {origin}",) if origin else ()
                    hparams = (("study/role", "transfer"), ("study/source", origin or "none"),
                               ("study/method", method), ("study/target", target))  # fmt: skip
                    add(_train_job(job_name, config, folder, command, needs, hparams), config)
                    plan.transfers.append(config.run_dir())

    for job in jobs:
        if job.kind == "sweep":
            spec_file = Path(job.folder) / "spec.json"
            done = spec_file.is_file() and spec_file.read_text().strip() == job.sweep
            plan.status[job.name] = "done" if done else "new"
            continue
        status, step = _run_status(Path(job.folder), configs[job.name])
        plan.status[job.name] = status
        plan.resume_step[job.name] = step
    # A source that is not finished invalidates nothing, but a transfer run waits for it (its ``needs``).
    plan.jobs[:] = [_with_resume(job, plan.status[job.name]) for job in jobs]
    return plan


def _train_job(
    name: str, config: Config, folder: Path, command: str, needs: tuple[str, ...], hparams: tuple[tuple[str, str], ...]
) -> Job:
    run_dir = config.run_dir()
    slug = str(run_dir.relative_to(folder / "runs")).replace("/", "__")
    return Job(
        name=name,
        kind="train",
        folder=str(run_dir),
        config=dump_config(config),
        steps=config.train.total_timesteps,
        log=str(folder / "logs" / f"{slug}.log"),
        progress=str(folder / "logs" / f"{slug}.progress.json"),
        command=command,
        needs=needs,
        hparams=hparams,
    )


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


def job_hparams(plan: Plan) -> list[dict[str, bool | int | float | str]]:
    """Every training run's HPARAMS session as the runs write them (for the study's dashboard columns)."""
    sessions = []
    for job in plan.jobs:
        if job.kind == "train":
            config = parse_config(yaml.safe_load(job.config), job.folder)
            sessions.append({**flat_hparams(config), **dict(job.hparams)})
    return sessions


__all__ = ["Job", "Plan", "SweepParam", "default_output", "job_hparams", "plan_study", "set_aside", "study_lock"]
