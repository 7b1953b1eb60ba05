"""TensorBoard through stable-baselines3's logger: one writer per run, resumable, with HPARAMS and text.

Everything goes through ``model.logger`` so every scalar lands in the run's one TensorBoard folder with
``num_timesteps`` as its step (see STYLE.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from stable_baselines3.common.logger import HParam, Logger, TensorBoardOutputFormat
from torch.utils.tensorboard import SummaryWriter

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


def record_hparams(
    logger: Logger, hparams: Mapping[str, bool | int | float | str], metrics: Mapping[str, float]
) -> None:
    """Adds the run to TensorBoard's HPARAMS dashboard with ``metrics`` (scalar tags logged in this run)."""
    logger.record("hparams", HParam(dict(hparams), dict(metrics)), exclude=TB_ONLY)


def record_text(logger: Logger, tag: str, text: str) -> None:
    """Logs preformatted text (a config, a command), shown verbatim in TensorBoard's TEXT tab."""
    indented = "\n".join("    " + line for line in text.splitlines())
    logger.record(tag, indented, exclude=TB_ONLY)
