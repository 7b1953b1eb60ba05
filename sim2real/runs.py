"""Run folders: the one module that knows their layout, and how to create, resume, checkpoint and read them back.

A run folder (``runs/<env>/<experiment>/seed_<n>/``; a transfer run's
``runs/<env>/<experiment>/<target>/<method>/seed_<n>/``) holds everything needed to reproduce or continue the run::

    config.yaml        the resolved config (every default written out)
    command.txt        the exact command lines that produced it (the first one and every resume)
    model.zip          the final model (a plain stable-baselines3 zip)
    vecnormalize.json  normalization statistics as plain numbers, when the config normalizes
    vecnormalize.pkl   the same as stable-baselines3's pickle, for plain stable-baselines3 users
    checkpoints/       step_<n>/ folders, each complete (written to a hidden folder, then renamed)
    monitor/           per-env episode logs (stable-baselines3 Monitor CSVs)
    tb/                TensorBoard events
    eval.json          returns of the final policy on the source and every target

A transfer run also holds ``source.pth`` (the source weights it started from, tensors only), ``transfer.json``
(each layer group's state), ``curve.json`` (the learning curve on its target, from step 0) and ``best/`` (the
guard's best policy so far: ``model.zip``, its statistics and ``guard.json``, what the guard measured).

Training, transfer, evaluation, the scorecard, the study and the CLI all reach these files through
:class:`RunFolder`; no other module spells a file name.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sim2real.config import Config, apply_overrides, dump_config, parse_config, read_yaml
from sim2real.errors import Sim2RealError
from sim2real.io import write_json, write_text

CONFIG = "config.yaml"
COMMAND = "command.txt"
MODEL = "model.zip"
VECNORMALIZE = "vecnormalize.pkl"
VECNORMALIZE_JSON = "vecnormalize.json"
CHECKPOINTS = "checkpoints"
MONITOR = "monitor"
TENSORBOARD = "tb"
EVAL = "eval.json"
SOURCE_WEIGHTS = "source.pth"
# The anchor's frozen source weights, rewritten for recalibrated statistics (transfer.anchor with recalibrate).
ANCHOR_WEIGHTS = "anchor.pth"
TRANSFER_STATE = "transfer.json"
CURVE = "curve.json"
REPLAY_BUFFER = "replay_buffer.npz"
REPLAY_BUFFER_PICKLE = "replay_buffer.pkl"  # what earlier versions wrote: read only on trust
ADR_STATE = "adr.json"
# The negative-transfer guard's best policy so far: a folder like a checkpoint's, with what the guard measured.
BEST = "best"
GUARD_STATE = "guard.json"
# sim2real adapt's folder: its state and report, the recording, and one folder per stage.
ADAPT_STATE = "adapt.json"
RECORDING = "recording.npz"
IDENTIFIED = "identified"
SIMULATION = "simulation"
TARGET_RUN = "target"

# Fields a resumed run may change: everything else must match the run it continues. A study also compares its
# planned configs with existing runs on every field but these (and where its folder lives).
RESUMABLE_FIELDS = (
    "train.total_timesteps",
    "train.checkpoint_every",
    "train.progress_bar",
    "train.device",
    "train.torch_threads",
)

_CHECKPOINT_PREFIX = "step_"


def _env_folder(env_id: str) -> str:
    """``Sim2Real/BlockPush-v0`` -> ``sim2real_block_push_v0``."""
    namespace, _, name = env_id.rpartition("/")
    snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
    return re.sub(r"[^A-Za-z0-9]+", "_", f"{namespace}_{snake}" if namespace else snake).strip("_").lower()


def run_dir(config: Config) -> Path:
    """``<root>/<env>/<experiment>/seed_<n>``; a transfer run: ``<root>/<env>/<experiment>/<target>/<method or variant>/seed_<n>``;
    ``run.folder`` where a config names it."""
    if config.run.folder is not None:
        return Path(config.run.folder)
    folder = Path(config.run.root) / _env_folder(config.env) / config.run.experiment
    if config.transfer is not None:
        folder = folder / config.training_domain_name() / config.transfer.label
    return folder / f"seed_{config.train.seed}"


def run_label(config: Config) -> str:
    """A run's name in TensorBoard: its HPARAMS row and, with ``sim2real tensorboard``, its run in the sidebar.

    The parts of its folder that tell runs apart come first, since TensorBoard cuts names to about 30
    characters: ``nominal s0 (inverted_double_pendulum_v5)``, ``finetune heavy_weak s0 (transfer,
    inverted_double_pendulum_v5)`` (method or variant, target, seed, then experiment and env). Different run
    folders under one root get different labels (names hold no spaces).
    """
    env = _env_folder(config.env)
    seed = f"s{config.train.seed}"
    if config.transfer is None:
        return f"{config.run.experiment} {seed} ({env})"
    return f"{config.transfer.label} {config.training_domain_name()} {seed} ({config.run.experiment}, {env})"


class _File:
    """A file of a run or checkpoint folder by its name: ``run.model`` is ``run.path / "model.zip"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, folder: _ModelFiles | AdaptFolder, owner: type | None = None) -> Path:
        return folder.path / self.name


@dataclass(frozen=True)
class _ModelFiles:
    """A folder holding a model with its normalization statistics and transfer state: a run or a checkpoint."""

    path: Path

    model = _File(MODEL)
    vecnormalize = _File(VECNORMALIZE)
    vecnormalize_json = _File(VECNORMALIZE_JSON)
    transfer_state = _File(TRANSFER_STATE)


@dataclass(frozen=True)
class Checkpoint(_ModelFiles):
    """One complete ``checkpoints/step_<n>/`` folder (incomplete ones never carry that name)."""

    replay_buffer = _File(REPLAY_BUFFER)
    replay_buffer_pickle = _File(REPLAY_BUFFER_PICKLE)
    adr_file = _File(ADR_STATE)

    @property
    def step(self) -> int:
        return int(self.path.name.removeprefix(_CHECKPOINT_PREFIX))

    def adr_state(self) -> dict[str, Any] | None:
        """The ADR curriculum's state at this checkpoint, if the run had one."""
        return json.loads(self.adr_file.read_text()) if self.adr_file.is_file() else None


@dataclass(frozen=True)
class BestPolicy(_ModelFiles):
    """A transfer run's ``best/`` folder: the guard's best policy so far, replaced whole (never half-written)."""

    guard_file = _File(GUARD_STATE)

    @contextmanager
    def replacing(self) -> Iterator[Path]:
        """Yields a hidden folder to fill with the new best policy; it takes the place of ``best/`` when the block
        ends (the old one is moved aside first and removed last, so one of the two is always whole)."""
        partial, old = self.path.with_name(f".{BEST}.partial"), self.path.with_name(f".{BEST}.old")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        try:
            yield partial
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        shutil.rmtree(old, ignore_errors=True)
        if self.path.exists():
            self.path.rename(old)
        partial.rename(self.path)
        shutil.rmtree(old, ignore_errors=True)

    def recover(self) -> None:
        """Puts back a best policy moved aside by a run killed between the two renames of :meth:`replacing`."""
        old = self.path.with_name(f".{BEST}.old")
        if not self.path.exists() and old.is_dir():
            old.rename(self.path)


@dataclass(frozen=True)
class RunFolder(_ModelFiles):
    """A run folder: file paths, creation, checkpoints and read-back.

    Build one with :meth:`create` (a new run), :meth:`open` (an existing one) or ``RunFolder(path)``.
    """

    # ----------------------------------------------------------------------------------- files
    config_file = _File(CONFIG)
    command_file = _File(COMMAND)
    monitor = _File(MONITOR)
    tensorboard = _File(TENSORBOARD)
    eval_file = _File(EVAL)
    curve_file = _File(CURVE)
    source_weights = _File(SOURCE_WEIGHTS)
    anchor_weights = _File(ANCHOR_WEIGHTS)

    @property
    def best(self) -> BestPolicy:
        return BestPolicy(self.path / BEST)

    # ----------------------------------------------------------------------------------- creating
    @classmethod
    @contextmanager
    def create(cls, config: Config, command: str = "") -> Iterator[RunFolder]:
        """A new run folder for ``config``, staged: the block builds the run in a hidden folder beside the
        final one, which is renamed into place only when the block succeeds (a failed setup leaves nothing)."""
        final = run_dir(config)
        if final.exists() and (not final.is_dir() or any(final.iterdir())):
            raise Sim2RealError(
                f"run folder {final} already holds a run; continue it with {{resume}}, or start another with "
                "another run.experiment or train.seed",
                resume=final,
            )
        staging = final.parent / f".{final.name}.creating"
        made = [folder for folder in (*reversed(staging.parents), staging) if not folder.exists()]
        succeeded = False
        try:
            try:
                staging.mkdir(parents=True, exist_ok=True)
                write_text(staging / CONFIG, dump_config(config))
                write_text(staging / COMMAND, command + "\n")
            except OSError as error:
                raise Sim2RealError(f"cannot write run folder {final}: {error.strerror or error}") from None
            yield cls(staging)
            if final.is_dir():
                final.rmdir()  # checked empty above
            staging.rename(final)
            succeeded = True
        finally:
            if not succeeded:
                # Nothing half-written: the staged run and every folder made for it go.
                shutil.rmtree(staging, ignore_errors=True)
                for folder in reversed(made):
                    with contextlib.suppress(OSError):
                        folder.rmdir()

    @property
    def staged(self) -> bool:
        return self.path.name.startswith(".") and self.path.name.endswith(".creating")

    def final(self) -> RunFolder:
        """Where a staged folder lands (itself for a folder already in place)."""
        if not self.staged:
            return self
        return RunFolder(self.path.with_name(self.path.name.removeprefix(".").removesuffix(".creating")))

    @classmethod
    def open(cls, path: Path) -> RunFolder:
        """An existing run folder (one with a ``config.yaml``)."""
        if not path.is_dir():
            raise Sim2RealError(f"{path}: no such run folder")
        if not (path / CONFIG).is_file():
            raise Sim2RealError(f"{path}: not a run folder (no {CONFIG})")
        return cls(path)

    @classmethod
    def of_model(cls, path: Path) -> tuple[Path, RunFolder | None]:
        """The model zip of ``path`` (a zip, or a run folder holding ``model.zip``) and its run folder, if any."""
        if path.is_dir():
            zip_path = path / MODEL
            if not zip_path.is_file():
                raise Sim2RealError(f"{path}: not a run folder (no {MODEL})")
            return zip_path, cls(path)
        if not path.exists():
            raise Sim2RealError(f"{path}: no such file or folder")
        holder = path.parent if path.name == MODEL and (path.parent / CONFIG).is_file() else None
        return path, cls(holder) if holder is not None else None

    @staticmethod
    def is_run(path: Path) -> bool:
        return (path / CONFIG).is_file()

    @staticmethod
    def find(folder: Path) -> list[Path]:
        """Run folders below ``folder`` that hold a model or a learning curve; not the stages' runs inside a
        ``sim2real adapt`` folder (the loop's folder is the run: its stages would count twice)."""
        return sorted(
            p.parent
            for p in folder.rglob(CONFIG)
            if ((p.parent / MODEL).exists() or (p.parent / CURVE).exists())
            and not (p.parent.parent / ADAPT_STATE).is_file()
        )

    # ----------------------------------------------------------------------------------- config
    def saved_config(self) -> Any:
        """The run's ``config.yaml`` as plain data (None when it is missing or unreadable)."""
        try:
            return read_yaml(self.config_file)
        except Sim2RealError:
            return None

    def config(self, overrides: list[str] | None = None) -> Config:
        """The run's resolved config, with the fields a resume may change (:data:`RESUMABLE_FIELDS`) overridden."""
        saved = read_yaml(self.config_file)
        for item in overrides or []:
            key = item.partition("=")[0]
            if key not in RESUMABLE_FIELDS:
                raise Sim2RealError(
                    f"{{overrides}}: a resumed run keeps its config; only "
                    f"{', '.join(sorted(RESUMABLE_FIELDS))} may change",
                    overrides=key,
                )
        if overrides and isinstance(saved, dict):
            saved = apply_overrides(saved, list(overrides))
        return parse_config(saved, str(self.config_file), overrides or ())

    def append_command(self, command: str) -> None:
        history = self.command_file
        try:
            write_text(history, (history.read_text() if history.is_file() else "") + command + "\n")
        except OSError as error:
            raise Sim2RealError(f"cannot write run folder {self.path}: {error.strerror or error}") from None

    # ----------------------------------------------------------------------------------- checkpoints
    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first."""
        root = self.path / CHECKPOINTS
        if not root.is_dir():
            return []
        return [Checkpoint(p) for p in sorted(root.iterdir()) if p.is_dir() and p.name.startswith(_CHECKPOINT_PREFIX)]

    def latest_checkpoint(self) -> Checkpoint:
        checkpoints = self.checkpoints()
        if not checkpoints:
            raise Sim2RealError(
                f"{self.path}: no checkpoint to resume from ({CHECKPOINTS}/{_CHECKPOINT_PREFIX}* is missing)"
            )
        return checkpoints[-1]

    @contextmanager
    def new_checkpoint(self, step: int, keep: int = 2) -> Iterator[Path | None]:
        """Yields a hidden folder to fill with checkpoint ``step``; renamed to ``step_<n>`` when the block ends,
        then all but the ``keep`` newest checkpoints are removed. Yields None when the step is already saved."""
        root = self.path / CHECKPOINTS
        final = root / f"{_CHECKPOINT_PREFIX}{step:012d}"
        if final.exists():
            yield None
            return
        partial = root / f".partial_{final.name}"
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        yield partial
        partial.rename(final)
        for old in self.checkpoints()[:-keep]:
            shutil.rmtree(old.path, ignore_errors=True)

    # ----------------------------------------------------------------------------------- results
    def write_eval(self, num_timesteps: int, domains: dict[str, dict[str, Any]]) -> None:
        write_json(self.eval_file, {"num_timesteps": num_timesteps, "domains": domains})

    def read_eval(self) -> dict[str, dict[str, Any]]:
        """Each domain's final evaluation (``eval.json``); empty when the run has not finished."""
        try:
            return dict(json.loads(self.eval_file.read_text())["domains"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}

    def finished(self) -> bool:
        return self.eval_file.is_file()

    def curve_points(self, until: int | None = None) -> list[dict[str, Any]]:
        """The learning curve's points (``curve.json``), those up to step ``until`` when given."""
        if not self.curve_file.is_file():
            return []
        points = json.loads(self.curve_file.read_text()).get("points", [])
        return [p for p in points if until is None or p["step"] <= until]


@dataclass(frozen=True)
class AdaptFolder:
    """``sim2real adapt``'s folder: ``adapt.json`` (settings, each stage's steps and returns, the curve), the
    recording, the identification, the simulation's run folder and the target's (the guarded fine-tuning), and
    ``tb/`` (return against target steps, across the stages)."""

    path: Path

    state = _File(ADAPT_STATE)
    recording = _File(RECORDING)
    identified = _File(IDENTIFIED)
    simulation = _File(SIMULATION)
    target = _File(TARGET_RUN)
    tensorboard = _File(TENSORBOARD)
    curve_file = _File(CURVE)

    @staticmethod
    def default(config: Config, target: str, seed: int) -> Path:
        """``<root>/<env>/<experiment>/<target>/adapt/seed_<n>``: beside the transfer runs to that target."""
        return (
            Path(config.run.root) / _env_folder(config.env) / config.run.experiment / target / "adapt" / f"seed_{seed}"
        )


def read_curve_points(path: Path) -> list[dict[str, Any]]:
    """The points of a learning curve given as a run folder or as its ``curve.json``."""
    file = path / CURVE if path.is_dir() else path
    return list(json.loads(file.read_text())["points"])


def own_inputs(model: Path, config: Config) -> Config:
    """``config`` with the policy inputs a saved model was trained with (its observation history, a teacher's
    privileged inputs), when its run folder says; else ``config`` as it is."""
    run = RunFolder(model if model.is_dir() else model.parent)
    if not run.config_file.is_file():
        return config
    own = run.config()
    if own.history == config.history and own.privileged == config.privileged:
        return config
    return config.model_copy(update={"history": own.history, "privileged": own.privileged})
