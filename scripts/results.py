"""Where the benchmark scripts write their figures: one small JSON under benchmarks/results/, with no path of
the machine that ran it (a committed file names paths relative to the repository).

    from results import command_line, write_results
    write_results(args.json, {"command": command_line(), ...})
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path
from typing import Any

from sim2real.io import write_json

REPO = Path(__file__).resolve().parent.parent


def portable(value: Any, root: Path = REPO) -> Any:
    """``value`` with every absolute path in it (a string, or a word of a command line) made relative to
    ``root``: the repository, so that a study folder beside it reads ``../studies/...``."""
    if isinstance(value, dict):
        return {key: portable(item, root) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [portable(item, root) for item in value]
    if isinstance(value, Path):
        value = str(value)
    if not isinstance(value, str):
        return value
    if os.path.isabs(value):
        return os.path.relpath(value, root)
    name, equals, path = value.partition("=")
    if equals and " " not in value and os.path.isabs(path):  # a NAME=PATH argument
        return f"{name}={os.path.relpath(path, root)}"
    if " " in value and "/" in value:  # a command line: each absolute word
        try:
            words = shlex.split(value)
        except ValueError:
            return value
        if any(portable(word, root) != word for word in words):
            return shlex.join(portable(words, root))
    return value


def command_line() -> str:
    """The command that is running, as a user in the repository would type it."""
    return shlex.join(["python", *portable(sys.argv)])


def write_results(path: Path, data: dict[str, Any]) -> None:
    """Writes ``data`` to ``path`` atomically, every absolute path in it made relative to the repository."""
    write_json(path, portable(data))


def goal(measured: float, at_least: float, what: str) -> dict[str, Any]:
    """A goal written once, as data beside its benchmark, and judged on the figure measured: met or not."""
    return {"what": what, "measured": round(float(measured), 4), "at_least": at_least, "met": measured >= at_least}
