"""``sim2real tensorboard``: TensorBoard over a logdir, each run named by what tells it apart (see
:mod:`sim2real.board`)."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from sim2real import board
from sim2real.errors import Sim2RealError


def add_tensorboard(commands: Any) -> None:
    """The ``tensorboard`` subcommand's arguments."""
    parser = commands.add_parser(
        "tensorboard",
        help="TensorBoard over a logdir, each run named by what tells it apart",
        description="Start TensorBoard over LOGDIR (runs/, a study folder, ...). Each sim2real run appears under "
        "its label (method, target, seed, then experiment and env), any other run under its path; runs added "
        "later show up. Nothing under LOGDIR is written.",
    )
    parser.add_argument("logdir", type=Path, help="the folder to show (as tensorboard --logdir)")
    parser.add_argument("--port", type=int, default=6006, help="the port to serve on (default: 6006)")
    parser.add_argument("--host", default="localhost", help="the address to serve on (default: localhost)")
    parser.add_argument(
        "--view",
        type=Path,
        help="keep the view (the folder of links TensorBoard reads) here, not in a temporary folder",
    )
    parser.set_defaults(run=run_tensorboard)


def run_tensorboard(args: argparse.Namespace, console: Console) -> int:
    """``sim2real tensorboard LOGDIR``: serves until interrupted, refreshing the view every few seconds."""
    if not args.logdir.is_dir():
        raise Sim2RealError(f"{args.logdir}: no such folder")
    with tempfile.TemporaryDirectory(prefix="sim2real-tensorboard-") as temporary:
        view = args.view or Path(temporary)
        names = board.refresh_view(args.logdir, view)
        url = board.serve(view, args.host, args.port)
        console.print(f"TensorBoard at {url} ({len(names)} runs of {args.logdir}); Ctrl+C stops it", soft_wrap=True)
        try:
            while True:
                time.sleep(5)
                board.refresh_view(args.logdir, view)
        except KeyboardInterrupt:
            return 0
