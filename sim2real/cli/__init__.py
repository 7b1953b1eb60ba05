"""The ``sim2real`` command: thin, it parses arguments and calls the library.

Every failure a user can cause ends in one line on stderr and exit code 2, never a traceback. Each verb's module
adds its parser and names the function that runs it; this one assembles the parser and runs the verb.
"""

from __future__ import annotations

import argparse
import warnings
from collections.abc import Sequence

from rich.console import Console

from sim2real.cli.evaluate import add_compare, add_evaluate, add_sweep
from sim2real.cli.identify import add_adapt, add_identify, add_record
from sim2real.cli.models import add_export, add_inspect
from sim2real.cli.options import DEFAULT_CONFIG, DEFAULT_STUDY, default_config
from sim2real.cli.study import add_study
from sim2real.cli.tensorboard import add_tensorboard
from sim2real.cli.train import add_train, add_transfer, train_script_parser
from sim2real.errors import NoEffectWarning, Sim2RealError, python_spelling

__all__ = ["DEFAULT_CONFIG", "DEFAULT_STUDY", "default_config", "flag_spelling", "main", "run_train_script"]

# Library arguments named in error messages, and the flag that sets each from the command line.
FLAGS = {
    "resume": "--resume",
    "trust_source": "--trust-source",
    "overrides": "--set",
    "source": "--source",
    "params": "--param",
    "config": "--config",
    "domain": "--domain",
    "address": "--address",
    "backend": "--backend",
    "reference": "--reference",
    "skip_unreadable": "--skip-unreadable",
    "horizon": "--horizon",
    "max_generations": "--max-generations",
    "out": "--out",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sim2real", description="Sim-to-real transfer for reinforcement learning on MuJoCo."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    add_train(commands)
    add_transfer(commands)
    add_evaluate(commands)
    add_sweep(commands)
    add_compare(commands)
    add_study(commands)
    add_inspect(commands)
    add_export(commands)
    add_record(commands)
    add_identify(commands)
    add_adapt(commands)
    add_tensorboard(commands)
    return parser


def flag_spelling(name: str, value: object) -> str:
    """How the command line passes a library argument that an error names: ``--resume RUN``, ``--trust-source``."""
    flag = FLAGS.get(name)
    if flag is None:
        return python_spelling(name, value)
    return flag if value is None or isinstance(value, bool) else f"{flag} {value}"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: ``sys.argv[1:]``) and returns the exit code."""
    return _execute(_parser().parse_args(argv))


def run_train_script(env_dir: str, argv: Sequence[str] | None = None) -> int:
    """``sim2real train`` as ``scripts/train_<env_dir>.py``: the same arguments in any order, the script's name in
    its usage, and ``configs/<env_dir>/nominal.yaml`` as the default config."""
    return _execute(train_script_parser(env_dir).parse_args(argv))


def _execute(args: argparse.Namespace) -> int:
    """Runs the verb that parsed ``args``, showing warnings that a setting has no effect on one line each."""
    console = Console()
    err = Console(stderr=True)

    default_show = warnings.showwarning

    def show_warning(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, NoEffectWarning):
            err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)
        else:
            default_show(message, category, filename, lineno, file, line)

    # catch_warnings restores the caller's filters and showwarning afterwards (main() may run in-process).
    with warnings.catch_warnings():
        warnings.showwarning = show_warning
        warnings.simplefilter("once", NoEffectWarning)
        return _run(args, console, err)


def _run(args: argparse.Namespace, console: Console, err: Console) -> int:
    try:
        code: int = args.run(args, console)
        return code
    except Sim2RealError as error:
        err.print(f"[red]error:[/red] {error.render(flag_spelling)}", highlight=False, soft_wrap=True)
        return 2
    except OSError as error:
        # Disk full, permissions, a file removed under us: the OS's words, on one line.
        where = f"{error.filename}: " if error.filename else ""
        err.print(f"[red]error:[/red] {where}{error.strerror or error}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err.print("[red]interrupted[/red]")
        return 130
