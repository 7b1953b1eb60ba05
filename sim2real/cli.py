"""The ``sim2real`` command: thin, it parses arguments and calls the library.

Every failure a user can cause ends in one line on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from sim2real.errors import FrictionDominatedWarning, Sim2RealError

DEFAULT_CONFIG = "configs/inverted_double_pendulum/nominal.yaml"


def _default_config() -> str:
    """The built-in default: the InvertedDoublePendulum config, from the working folder or the checkout."""
    here = Path(DEFAULT_CONFIG)
    if here.is_file():
        return str(here)
    checkout = Path(__file__).resolve().parents[1] / DEFAULT_CONFIG
    return str(checkout if checkout.is_file() else here)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim2real", description="Sim-to-real transfer for reinforcement learning on MuJoCo."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train",
        help="train a source policy and evaluate it on the source and every target",
        description="Train a policy on a config's source domain, then evaluate it on the source and every target.",
    )
    train.add_argument("config", nargs="?", default=None, help=f"config YAML (default: {DEFAULT_CONFIG})")
    train.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override one config field, e.g. --set train.total_timesteps=20000 (repeatable)",
    )
    train.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue a run from its last checkpoint")
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _train(args: argparse.Namespace, console: Console) -> int:
    from sim2real.config import load_config
    from sim2real.training import load_run_config, train

    overrides = list(args.overrides)
    if args.no_progress:
        overrides.append("train.progress_bar=false")
    if args.resume is not None:
        if args.config is not None:
            raise Sim2RealError("give either a CONFIG or --resume RUN_DIR (a resumed run uses its own config)")
        config = load_run_config(args.resume, overrides)
    else:
        config = load_config(args.config or _default_config(), overrides)
    program = sys.argv[0]
    launcher = ["sim2real"] if Path(program).name == "sim2real" else ["python", program]
    command = f"cd {shlex.quote(os.getcwd())} && " + shlex.join([*launcher, *sys.argv[1:]])
    result = train(config, command=command, resume=args.resume, console=console)
    console.print(
        f"trained {result.num_timesteps:,} steps in {result.seconds:.0f} s; run folder: {result.run_dir}\n"
        f"inspect it with: tensorboard --logdir {result.run_dir}",
        soft_wrap=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: ``sys.argv[1:]``) and returns the exit code."""
    args = _parser().parse_args(argv)
    console = Console()
    err = Console(stderr=True)

    default_show = warnings.showwarning

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, FrictionDominatedWarning):
            err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
        else:
            default_show(message, category, filename, lineno, file, line)

    warnings.showwarning = show_warning
    warnings.simplefilter("once", FrictionDominatedWarning)
    try:
        if args.command == "train":
            return _train(args, console)
    except Sim2RealError as error:
        err.print(f"[red]error:[/red] {error}", highlight=False, soft_wrap=True)
        return 2
    except OSError as error:
        # Disk full, permissions, a file removed under us: the OS's words, on one line.
        where = f"{error.filename}: " if error.filename else ""
        err.print(f"[red]error:[/red] {where}{error.strerror or error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130
    return 2


def run_train_script(env_dir: str, argv: Sequence[str] | None = None) -> int:
    """``sim2real train`` with ``configs/<env_dir>/nominal.yaml`` as the default config (for scripts/)."""
    args = list(sys.argv[1:] if argv is None else argv)
    config_given = bool(args) and not args[0].startswith("-")
    default = Path(__file__).resolve().parents[1] / "configs" / env_dir / "nominal.yaml"
    if not default.is_file():
        default = Path("configs") / env_dir / "nominal.yaml"
    return main(["train", *([] if config_given or "--resume" in args else [str(default)]), *args])


if __name__ == "__main__":
    raise SystemExit(main())
