"""Where a study's jobs run: a local process pool or a Ray cluster, behind one small interface.

Both hand back ``concurrent.futures.Future`` objects, so the scheduler in :func:`execute` is the same for
both. Every job trains with one torch thread whatever the backend, so a study gives the same numbers on
one worker, on two, or on a cluster.
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
import traceback
import warnings
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from sim2real.errors import Sim2RealError
from sim2real.io import write_json
from sim2real.runs import RunFolder
from sim2real.study import IdentifySpec, Job, Plan, RunSpec, SweepSpec, set_aside, with_identified_source


@dataclass(frozen=True)
class Outcome:
    name: str
    seconds: float
    error: str | None = None


# ------------------------------------------------------------------------------------------------ the job


def run_job(job: Job) -> Outcome:
    """Runs one job in this process (a pool or Ray worker); its output goes to ``job.log``."""
    started = time.perf_counter()
    log_path = Path(job.log)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # Pool workers ignore Ctrl-C while idle (no tracebacks from the pool's queue); a running job takes it, so
    # training saves a checkpoint before it stops.
    previous = signal.signal(signal.SIGINT, _interrupt_once) if _main_thread() else None
    with log_path.open("a") as log, redirect_stdout(log), redirect_stderr(log), warnings.catch_warnings():
        console = Console(file=log, width=140, force_terminal=False)
        try:
            if job.kind == "train":
                _train(job, console)
            elif job.kind == "identify":
                _identify(job, console)
            elif job.kind == "adapt":
                _adapt(job, console)
            else:
                _sweep(job)
        except Sim2RealError as error:
            return Outcome(job.name, time.perf_counter() - started, str(error))
        except KeyboardInterrupt:
            return Outcome(job.name, time.perf_counter() - started, "interrupted")
        except Exception as error:
            traceback.print_exc(file=log)
            return Outcome(job.name, time.perf_counter() - started, f"{type(error).__name__}: {error} (see {log_path})")
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
    return Outcome(job.name, time.perf_counter() - started)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


def _ignore_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _interrupt_once(signum: int, frame: Any) -> None:
    """The first interrupt stops the running job (training saves a checkpoint on its way out); the study
    forwards every interrupt it gets, so a worker that the terminal reached too gets a second one, which must
    not cut that checkpoint short."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _train(job: Job, console: Console) -> None:
    from sim2real.training import train

    assert isinstance(job.spec, RunSpec)
    # An identified source's domain is known once its identification has run, which may be after planning.
    config = with_identified_source(job.config, Path(job.identified)) if job.identified else job.config
    train(
        config,
        command=job.command,
        resume=Path(job.folder) if job.resume else None,
        console=console,
        progress_file=Path(job.progress),
        study_hparams=job.spec.hparams(),
    )


def _adapt(job: Job, console: Console) -> None:
    """The sim-to-real loop (:func:`sim2real.adapt.adapt`): it resumes itself from the folder's adapt.json."""
    from sim2real.adapt import adapt

    assert isinstance(job.spec, RunSpec)
    adapt(job.config, Path(job.source), seed=job.spec.seed, out=Path(job.folder), console=console,
          command=job.command)  # fmt: skip


def _identify(job: Job, console: Console) -> None:
    """Records on the target, identifies, and writes the identification folder (``spec.json`` last)."""
    from sim2real.identification import identify, record, write_identification

    spec = job.spec
    assert isinstance(spec, IdentifySpec)
    settings, recording = spec.settings, Path(spec.recording)
    source = settings.record
    trajectories = record(job.config, model_path=None if spec.policy is None else Path(spec.policy),
                          domain=source.target, episodes=source.episodes, seed=source.seed,
                          deterministic=not source.stochastic, noise=source.noise, latency=source.latency)  # fmt: skip
    recording.parent.mkdir(parents=True, exist_ok=True)
    trajectories.write(recording)
    console.print(
        f"recorded {trajectories.episodes} episodes, {trajectories.steps:,} steps on {source.target}: {recording}"
    )
    progress, done = Path(job.progress), [0]

    def advance(*_: Any) -> None:
        done[0] += 1
        write_json(progress, {"step": done[0], "total": job.steps})

    result = identify(recording, job.config, settings.params, horizon=settings.horizon, windows=settings.windows,
                      seed=settings.seed, max_generations=settings.max_generations, latency=settings.latency,
                      on_generation=advance)  # fmt: skip
    out = Path(job.folder)
    write_identification(result, out, command=job.command)
    console.print(f"identified in {result.fit.seconds:.1f} s: {out}")
    (out / "spec.json").write_text(spec.as_json())  # written last: the identification is complete


def _sweep(job: Job) -> None:
    from sim2real.evaluation.batched import ObservationNormalizer
    from sim2real.evaluation.sweep import log_sweep, run_sweep, write_sweep
    from sim2real.models import load_policy

    spec = job.spec
    assert isinstance(spec, SweepSpec)
    models, inputs = [], []
    for label, folder in spec.models:
        run = RunFolder.open(Path(folder))
        own = run.config()
        model, model_file = load_policy(own, run.path)
        models.append((label, model, ObservationNormalizer.from_state(model_file.normalization)))
        inputs.append(own)  # each source sees the input it was trained on
    progress = Path(job.progress)
    result = run_sweep(
        models,
        job.config,
        list(spec.params),
        episodes=spec.episodes,
        seed=spec.seed,
        progress=lambda done, total: write_json(progress, {"step": done, "total": total}),
        inputs=inputs,
    )
    out = Path(job.folder)
    write_sweep(result, out)
    for index, (_, folder) in enumerate(spec.models):
        log_sweep(result, index, RunFolder(Path(folder)).tensorboard)
    (out / "spec.json").write_text(spec.as_json())  # written last: the sweep is complete


# ---------------------------------------------------------------------------------------------- backends


class Backend(Protocol):
    slots: int

    def submit(self, job: Job) -> Future[Outcome]: ...

    def interrupt(self) -> None: ...

    def close(self) -> None: ...


def machine_workers() -> int:
    """The CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class LocalPool:
    """A pool of ``workers`` processes on this machine (spawned: no forked torch or MuJoCo state)."""

    def __init__(self, workers: int) -> None:
        self.slots = workers
        self._executor = ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn"), initializer=_ignore_interrupts
        )

    def submit(self, job: Job) -> Future[Outcome]:
        return self._executor.submit(run_job, job)

    def interrupt(self) -> None:
        """Each worker gets a SIGINT: a running job checkpoints and returns, an idle one ignores it. A terminal's
        Ctrl-C reaches the workers itself, but a ``kill`` (SIGTERM or SIGINT) reaches only this process."""
        for pid in list(getattr(self._executor, "_processes", None) or {}):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def check_address(address: str, timeout: float = 5.0) -> None:
    """Fails in one line, at once, when nothing listens at a Ray address (``host:port`` or ``ray://host:port``)."""
    parts = urlsplit(address if "://" in address else f"tcp://{address}")
    try:
        host, port = parts.hostname, parts.port or (10001 if parts.scheme == "ray" else 6379)
    except ValueError:  # a port that is not a number
        host = None
    if not host:
        raise Sim2RealError("{address}: expected HOST:PORT or ray://HOST:PORT", address=address)
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        raise Sim2RealError(
            f"{{address}}: no Ray cluster answers there ({error.strerror or error}); "
            "start one with 'ray start --head' or give the head's address",
            address=address,
        ) from None


def _send_ray_token_if_present() -> None:
    """Authenticates to the cluster with this machine's Ray token, if it has one and RAY_AUTH_MODE is unset.

    `ray start --head` turns token authentication on whenever a token exists (``~/.ray/auth_token``, which
    any local ``ray.init()`` writes), but a driver given an explicit address never does, so joining a head
    started on this machine would fail to authenticate. A cluster without authentication ignores the token.
    Ray's own helper applies the rule, so the token is found wherever Ray looks for it.
    """
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:  # a Ray from before token authentication: there is nothing to send
        return
    setup.AuthenticationTokenLoader.instance().reset_cache()
    setup.maybe_enable_token_auth_if_token_available(warn_if_disabled=False)


class RayBackend:
    """Submits jobs to a Ray cluster (``address``) or, without one, to a Ray instance started here.

    Every node reads and writes the study folder, so on several machines it must be on storage they share.
    """

    def __init__(self, address: str | None, workers: int | None) -> None:
        try:
            import ray
        except ImportError:
            raise Sim2RealError("{backend}: Ray is not installed; pip install 'sim2real[ray]'", backend="ray") from None
        if address not in (None, "auto"):
            check_address(address)
        self._ray = ray
        if address not in (None, "auto"):
            _send_ray_token_if_present()
        try:
            if address is None:
                ray.init(num_cpus=workers or machine_workers(), include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, log_to_driver=False)
        except Exception as error:
            if address is None:
                raise Sim2RealError(f"{{backend}}: cannot start Ray on this machine ({error})", backend="ray") from None
            raise Sim2RealError(
                f"{{address}}: cannot join the Ray cluster ({error}); if it uses token authentication, "
                "set RAY_AUTH_MODE=token and RAY_AUTH_TOKEN to its token",
                address=address,
            ) from None
        cluster_cpus = int(ray.cluster_resources().get("CPU", 1))
        self.slots = workers or max(1, cluster_cpus)
        self._remote = ray.remote(num_cpus=1, max_retries=0)(run_job)
        self._running: list[Any] = []

    def submit(self, job: Job) -> Future[Outcome]:
        ref = self._remote.remote(job)
        self._running.append(ref)
        future: Future[Outcome] = ref.future()
        return future

    def interrupt(self) -> None:
        # Ray's workers are not in this terminal's process group: a cancel raises KeyboardInterrupt in each
        # running task, so it checkpoints like a local job.
        for ref in self._running:
            self._ray.cancel(ref)
        self._ray.wait(self._running, num_returns=len(self._running), timeout=60)

    def close(self) -> None:
        self._ray.shutdown()


def make_backend(name: str, workers: int | None, address: str | None) -> Backend:
    if name == "ray":
        return RayBackend(address, workers)
    if address is not None:
        raise Sim2RealError("{address}: only with {backend}", address=None, backend="ray")
    return LocalPool(workers or machine_workers())


# --------------------------------------------------------------------------------------------- scheduler


def _read_step(path: str) -> int | None:
    try:
        return int(json.loads(Path(path).read_text())["step"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@contextlib.contextmanager
def _restoring(signum: int, handler: Any) -> Iterator[None]:
    try:
        yield
    finally:
        if handler is not None:
            signal.signal(signum, handler)


@dataclass
class _Execution:
    """What :func:`execute` tracks while it runs a plan: the jobs waiting, running, finished and failed, and
    the progress bars that show them."""

    plan: Plan
    backend: Backend
    console: Console
    progress: Progress
    pending: list[Job]
    finished: set[str]
    running: dict[Future[Outcome], Job] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    bars: dict[str, Any] = field(default_factory=dict)

    def count(self) -> str:
        return f"[{len(self.finished) + len(self.failed)}/{len(self.plan.jobs)}]"

    def start_ready(self) -> None:
        """Starts the pending jobs whose needs are done, as many as the backend has slots for."""
        for job in list(self.pending):
            if len(self.running) >= self.backend.slots:
                break
            if any(need in self.failed for need in job.needs):
                self.pending.remove(job)
                self.failed[job.name] = f"not run: {next(n for n in job.needs if n in self.failed)} failed"
                continue
            if not all(need in self.finished for need in job.needs):
                continue
            self.pending.remove(job)
            if self.plan.status[job.name] == "restart":
                moved = set_aside(Path(job.folder), self.plan.folder)
                self.console.print(f"{job.folder} stopped before its first checkpoint: moved to {moved}")
            Path(job.progress).unlink(missing_ok=True)
            try:
                self.running[self.backend.submit(job)] = job
            except BrokenProcessPool:
                raise Sim2RealError(
                    f"a worker process died (killed, or out of memory); {len(self.finished)}/{len(self.plan.jobs)} "
                    "runs are done and the others keep their checkpoints: run the same command again to continue"
                ) from None
            step = self.plan.resume_step.get(job.name, 0) if job.resume else 0
            resumed = f" (resuming at step {step:,})" if job.resume else ""
            self.console.print(f"{self.count()} started {job.name}{resumed}", highlight=False)
            self.bars[job.name] = self.progress.add_task(f"  {job.name}", total=job.steps, completed=step)

    def collect(self, done: set[Future[Outcome]]) -> None:
        """Records the jobs that ended, finished or failed."""
        for future in done:
            job = self.running.pop(future)
            try:
                outcome = future.result()
            except Exception as error:
                outcome = Outcome(job.name, 0.0, f"{type(error).__name__}: {error}")
            self.progress.remove_task(self.bars.pop(job.name))
            if outcome.error is None:
                self.finished.add(job.name)
                self.console.print(f"{self.count()} finished {job.name} in {outcome.seconds:,.0f} s", highlight=False)
            else:
                self.failed[job.name] = outcome.error
                self.console.print(f"{self.count()} [red]failed[/red] {job.name}: {outcome.error}", highlight=False)

    def steps(self) -> dict[str, int | None]:
        """Each running job's steps so far, its bar brought up to date."""
        steps = {job.name: _read_step(job.progress) for job in self.running.values()}
        for name, done_steps in steps.items():
            if done_steps is not None:
                self.progress.update(self.bars[name], completed=done_steps)
        return steps


def execute(plan: Plan, backend: Backend, console: Console) -> dict[str, str]:
    """Runs the plan's pending jobs, each once its sources are done; returns the failed jobs' errors.

    Shows the whole study's progress (runs done / total) and each running run's steps.
    """
    progress = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    finished = {job.name for job in plan.jobs if plan.status[job.name] == "done"}
    run = _Execution(plan, backend, console, progress, plan.pending(), finished)
    overall = progress.add_task("study", total=len(plan.jobs), completed=len(finished))
    status_every, last_status = 60.0, time.monotonic()

    # A kill (SIGTERM) stops the study the way Ctrl-C does, its workers included (they would train on, orphaned).
    def on_terminate(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, on_terminate) if _main_thread() else None
    with progress, _restoring(signal.SIGTERM, previous):
        try:
            while run.pending or run.running:
                run.start_ready()
                done, _ = wait(run.running, timeout=0.5, return_when=FIRST_COMPLETED)
                run.collect(done)
                steps = run.steps()
                progress.update(overall, completed=len(run.finished) + len(run.failed))
                if not console.is_terminal and run.running and time.monotonic() - last_status >= status_every:
                    # No live bars in a log file: a line now and then says where each running job is.
                    last_status = time.monotonic()
                    states = [f"{job.name} {steps[job.name] or 0:,}/{job.steps:,}" for job in run.running.values()]
                    console.print(f"{run.count()} running: {'; '.join(states)}", highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            # Each running job saves a checkpoint before it stops; waiting for them keeps those whole.
            backend.interrupt()
            wait(run.running, timeout=120)
            raise Sim2RealError(
                f"interrupted; {len(run.finished)}/{len(plan.jobs)} runs are done and the others keep their "
                "checkpoints: run the same command again to continue"
            ) from None
    return run.failed
