"""TensorBoard through stable-baselines3's logger: one writer per run, resumable, with HPARAMS and text.

Everything goes through ``model.logger`` so every scalar lands in the run's one TensorBoard folder with
``num_timesteps`` as its step (see STYLE.md).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path

from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from tensorboard.plugins.hparams.plugin_data_pb2 import HParamsPluginData
from torch.utils.tensorboard import SummaryWriter
from torch.utils.tensorboard.summary import hparams as hparams_summary

from sim2real.config import Config
from sim2real.dynamics import parameter_name

# Text, histograms and HPARAMS are for TensorBoard only; stdout/csv writers would choke on them.
TB_ONLY = ("stdout", "log", "json", "csv")


class _ResumableTensorBoard(TensorBoardOutputFormat):
    """SB3's TensorBoard writer, opened with ``purge_step`` when a run resumes.

    A run killed after its last checkpoint has logged steps that the resumed run logs again; ``purge_step``
    tells TensorBoard to hide the stale events at and after that step, so the curve stays one line.
    """

    def __init__(self, folder: str, purge_step: int | None = None) -> None:
        self.writer = SummaryWriter(log_dir=folder, purge_step=purge_step)
        self._is_closed = False


def make_logger(tb_dir: Path, purge_step: int | None = None) -> Logger:
    """A logger writing only TensorBoard events into ``tb_dir``."""
    tb_dir.mkdir(parents=True, exist_ok=True)
    return Logger(str(tb_dir), [_ResumableTensorBoard(str(tb_dir), purge_step)])


def record_hparams(logger: Logger, hparams: Mapping[str, bool | int | float | str], name: str) -> None:
    """Adds the run to TensorBoard's HPARAMS dashboard as one row named ``name`` (:func:`write_session`)."""
    write_session(_tensorboard_writer(logger), hparams, name)


def _tensorboard_writer(logger: Logger) -> SummaryWriter:
    for output in logger.output_formats:
        if isinstance(output, TensorBoardOutputFormat):
            return output.writer
    raise ValueError("the logger has no TensorBoard output")


def write_session(writer: SummaryWriter, hparams: Mapping[str, bool | int | float | str], name: str) -> None:
    """One HPARAMS session (a row of the dashboard, named ``name``) in ``writer``'s run, and no experiment summary.

    No sim2real run declares the dashboard's columns (an experiment summary): TensorBoard takes one declared
    summary whole, from an arbitrary run, with every column's ``differs`` false, and a declaration goes stale
    when a run is added. Without one, its hparams plugin infers the experiment from the sessions of every run
    under the logdir, whatever mix of runs it holds: the union of their columns, ``differs`` computed over the
    values present (those columns come first), and the scalar tags of the session runs as metrics. ``name``
    becomes the row's name (its session group); rows with the same name would be averaged into one.
    """
    _, start, end = hparams_summary(dict(hparams), {})
    content = start.value[0].metadata.plugin_data
    data = HParamsPluginData.FromString(content.content)
    data.session_start_info.group_name = name
    data.session_start_info.start_time_secs = time.time()
    content.content = data.SerializeToString()
    file_writer = writer._get_file_writer()  # SummaryWriter.add_hparams writes its summaries the same way
    file_writer.add_summary(start)
    file_writer.add_summary(end)
    file_writer.flush()


def record_text(logger: Logger, tag: str, text: str) -> None:
    """Logs preformatted text (a config, a command), shown verbatim in TensorBoard's TEXT tab."""
    indented = "\n".join("    " + line for line in text.splitlines())
    logger.record(tag, indented, exclude=TB_ONLY)


def flat_hparams(config: Config) -> dict[str, bool | int | float | str]:
    """Scalar hyperparameters and source dynamics as flat ``section/key`` entries for TensorBoard's HPARAMS.

    A run without transfer has ``transfer/method`` ``none``, so that the column tells sources from transfers.
    Paths are shown as given: pass :meth:`Config.paths_relative_to` the run's folder first.
    """
    flat: dict[str, bool | int | float | str] = {"env": config.env}
    if config.transfer is None:
        flat["transfer/method"] = "none"
    sections = ("algo", "train", "transfer") if config.transfer is not None else ("algo", "train")
    for section in sections:
        for key, value in getattr(config, section).model_dump(mode="json").items():
            if isinstance(value, bool | int | float | str):
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                flat[f"{section}/{key}"] = value
            elif isinstance(value, list):
                flat[f"{section}/{key}"] = str(value)
            elif isinstance(value, dict):
                flat[f"{section}/{key}"] = ",".join(f"{k}={v}" for k, v in value.items())
    if config.privileged:
        flat["privileged"] = ",".join(parameter_name(t.quantity, t.select) for t in config.privileged)
    if config.student is not None:
        for key, value in config.student.model_dump(mode="json").items():
            if value is not None:
                flat[f"student/{key}"] = value
    for change in config.source.dynamics:
        value = getattr(change, change.op)
        flat[f"source/{parameter_name(change.quantity, change.select)}/{change.op}"] = (
            value if isinstance(value, float) else str(value)
        )
    return flat
