"""What the verbs of the ``sim2real`` command share: number types, the built-in defaults, the options that mean the
same in every verb, output paths checked before any work, and ``--param`` mappings."""

from __future__ import annotations

import argparse
import errno
import math
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from sim2real.errors import Sim2RealError

if TYPE_CHECKING:
    from pydantic import BaseModel

    from sim2real.config import SweepParam

# One flag, one meaning, in every command that reads files: nothing is unpickled without it.
TRUST_HELP = (
    "allow reading pickled files (a vecnormalize.pkl, an old checkpoint's replay buffer); a pickle can run code"
)

DEFAULT_CONFIG = "configs/inverted_double_pendulum/nominal.yaml"
DEFAULT_STUDY = "configs/inverted_double_pendulum/study.yaml"

# The checkout this package sits in (sim2real/cli/options.py -> the folder holding configs/).
CHECKOUT = Path(__file__).resolve().parents[2]


def default_config(default: str = DEFAULT_CONFIG) -> str:
    """A built-in default (the InvertedDoublePendulum config or quick study), from the working folder or the checkout."""
    here = Path(default)
    if here.is_file():
        return str(here)
    checkout = CHECKOUT / default
    return str(checkout if checkout.is_file() else here)


def command_line() -> str:
    """The command that is running, as a shell line that repeats it (for a run folder's command history)."""
    program = sys.argv[0]
    launcher = ["sim2real"] if Path(program).name == "sim2real" else ["python", program]
    return f"cd {shlex.quote(os.getcwd())} && " + shlex.join([*launcher, *sys.argv[1:]])


def add_trust_source(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-source", action="store_true", help=TRUST_HELP)


# Said of --set in the commands that read a config without training: the run's own config.yaml keeps its settings.
FOR_THIS_COMMAND = "for this command only (a run's config.yaml is left as it is)"


def add_set(parser: argparse.ArgumentParser, example: str, what: str = "config", note: str = "") -> None:
    """``--set FIELD=VALUE`` (repeatable): one field of the config (or study) the command reads."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=f"override one {what} field{' ' + note if note else ''}, e.g. --set {example} (repeatable)",
    )


def evaluation_options(
    parser: argparse.ArgumentParser, config_default: str, episodes_default: int | None, episodes_help: str
) -> None:
    """The options evaluate and sweep share: which config and its overrides, how many episodes, seed, copies,
    trust."""
    parser.add_argument("--config", type=Path, help=f"config YAML (default: the {config_default})")
    add_set(parser, "train.normalize=null", note=FOR_THIS_COMMAND)
    parser.add_argument("--episodes", type=positive, default=episodes_default, help=episodes_help)
    parser.add_argument("--seed", type=non_negative, default=0, help="evaluation seed (default: 0)")
    parser.add_argument("--n-envs", type=positive, default=16, help="env copies stepped together (default: 16)")
    add_trust_source(parser)


def check_output(path: Path | None, flag: str, folder: bool = False) -> None:
    """Refuses an output path that cannot be written before any work starts (not after an evaluation ran).

    It must not be a file where a folder goes or a folder where a file goes, each name must fit the file
    system, and the nearest folder on it that exists must be one this user can write in: a file is made and
    removed there, since permission bits do not tell (root may "write" in /proc, where nothing can be made).
    """
    if path is None:
        return
    where = f"{flag} {path}"
    for part in path.parts:
        if len(part.encode()) > 255:
            raise Sim2RealError(f"{where}: the name '{part[:20]}...' is longer than a file name can be (255 bytes)")
    if path.exists() and path.is_dir() != folder:
        raise Sim2RealError(f"{where}: is a {'file' if folder else 'folder'}; give a {'folder' if folder else 'file'}")
    existing = path.absolute()
    while not existing.exists():
        existing = existing.parent
    if existing != path.absolute() and not existing.is_dir():
        raise Sim2RealError(f"{where}: {existing} is a file, so nothing can be written under it")
    folder_on_disk = existing if existing.is_dir() else existing.parent
    if not os.access(folder_on_disk, os.W_OK | os.X_OK):
        raise Sim2RealError(f"{where}: cannot write in {folder_on_disk}")
    try:
        with tempfile.TemporaryFile(dir=folder_on_disk):
            pass
    except OSError as error:
        # ENOENT for a file that cannot be made says nothing the user can act on (/proc answers so).
        reason = "" if error.errno == errno.ENOENT else f" ({error.strerror or error})"
        raise Sim2RealError(f"{where}: cannot write in {folder_on_disk}{reason}") from None


def parse_sweep_param(text: str) -> SweepParam:
    """A ``--param`` value: a YAML mapping such as ``{quantity: body_mass, select: torso, scale: [0.5, 2], points: 7}``."""
    from sim2real.config import SweepParam

    return parse_param(text, SweepParam, "{quantity: body_mass, select: all, scale: [0.5, 2.0], points: 5}")


ParamT = TypeVar("ParamT", bound="BaseModel")


def parse_param(text: str, kind: type[ParamT], example: str) -> ParamT:
    """A ``--param`` value: a YAML mapping validated as ``kind`` (errors name the key and what is allowed)."""
    import yaml
    from pydantic import ValidationError

    from sim2real.config import parse_yaml

    try:
        data = parse_yaml(text)
    except yaml.YAMLError:
        raise Sim2RealError(f"--param {text!r}: not a YAML mapping") from None
    if not isinstance(data, dict):
        raise Sim2RealError(f"--param {text!r}: expected a mapping like {example}")
    try:
        return kind.model_validate(data)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item["loc"])
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = f"unknown key (allowed: {', '.join(kind.model_fields)})"
            problems.append(f"{where}: {message}" if where else message)
        raise Sim2RealError(f"--param {text!r}: " + "; ".join(problems)) from None


# ------------------------------------------------------------------------------------------- number options


def positive(text: str) -> int:
    value = integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def non_negative(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text}")
    return value


def finite(text: str) -> float:
    """A number option: no nan or inf (float() takes both, and neither means anything as a setting)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = finite(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {text}")
    return value


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
