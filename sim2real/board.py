"""``sim2real tensorboard``: TensorBoard over any logdir, each run named by what tells it apart.

TensorBoard names a run by the path of its events folder under the logdir and cuts names to about 30
characters in its sidebar; a run folder's path starts with the env and the experiment
(``inverted_double_pendulum_v5/transfer/heavy_weak/finetune/seed_0/tb``), so every transfer run looked the
same there. The run folders keep their layout (:mod:`sim2real.runs` owns it); TensorBoard reads a *view*
instead: a folder with one subfolder per TensorBoard run, holding symbolic links to that run's events files.
A sim2real run is named by its :func:`~sim2real.runs.run_label` (``finetune heavy_weak s0 (transfer,
inverted_double_pendulum_v5)``, the name its HPARAMS row has too); any other events folder (another tool's run,
a study's summary rows) keeps its path under the logdir. Both of TensorBoard's loaders follow the links, nothing
under the logdir is written, and the view is refreshed while TensorBoard runs, so a run added later shows up.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from sim2real.runs import TENSORBOARD, RunFolder, run_label

EVENTS = "events.out.tfevents."  # TensorBoard reads the files whose names hold this


def event_folders(logdir: Path, skip: Path | None = None) -> Iterator[tuple[Path, list[str]]]:
    """Each folder under ``logdir`` that holds TensorBoard events, with their file names, in a stable order.
    Hidden folders (a run still being created, a checkpoint being written) and ``skip`` are left out."""
    skipped = skip.resolve() if skip is not None else None
    for folder, subfolders, files in os.walk(logdir):
        subfolders[:] = sorted(
            name for name in subfolders if not name.startswith(".") and (Path(folder) / name).resolve() != skipped
        )
        events = sorted(name for name in files if EVENTS in name)
        if events:
            yield Path(folder), events


@cache
def _label(folder: Path) -> str | None:
    """The run label of a sim2real run's events folder (a study's summary row: its row's name); None for any
    other folder (or an unreadable config). Cached: what a label says is where the run lives."""
    from sim2real.study.report import summary_label

    if folder.name != TENSORBOARD or not RunFolder.is_run(folder.parent):
        return summary_label(folder)
    try:
        return run_label(RunFolder(folder.parent).config())
    except Exception:  # a damaged config.yaml: the run is still shown, under its path
        return None


def view_names(logdir: Path, view: Path | None = None) -> dict[str, tuple[Path, list[str]]]:
    """The view's runs: name -> (events folder, events file names). A name two runs would share (the same
    run label under two roots in one logdir) goes to the first; the others keep their paths."""
    names: dict[str, tuple[Path, list[str]]] = {}
    for folder, events in event_folders(logdir, skip=view):
        path = folder.relative_to(logdir).as_posix()
        label = _label(folder)
        name = label if label is not None and label not in names else path
        names[name] = (folder, events)
    return names


def refresh_view(logdir: Path, view: Path) -> dict[str, Path]:
    """Brings ``view`` up to date with ``logdir``: a folder per run holding links to its events files (new
    ones added, links whose file went removed). Returns each run's name and events folder."""
    names = view_names(logdir, view)
    for name, (folder, events) in names.items():
        target = view / name
        target.mkdir(parents=True, exist_ok=True)
        for event in events:
            link = target / event
            if not link.is_symlink():
                link.symlink_to(folder.resolve() / event)
    for link in view.rglob(f"*{EVENTS}*"):
        if link.is_symlink() and not link.exists():
            link.unlink()
    return {name: folder for name, (folder, _) in names.items()}


def serve(view: Path, host: str, port: int) -> str:
    """Starts TensorBoard over ``view`` in this process (a background thread); returns its address."""
    from tensorboard import program

    board = program.TensorBoard()
    board.configure(argv=[None, "--logdir", str(view), "--host", host, "--port", str(port)])
    return str(board.launch())
