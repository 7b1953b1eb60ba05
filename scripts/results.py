"""Where the benchmark scripts write their figures: one small JSON under benchmarks/results/, with no path of
the machine that ran it (a committed file names paths relative to the repository).

    from results import command_line, write_results
    write_results(args.json, {"command": command_line(), ...})

Each script computes its goals' verdicts from its figures (its ``goals`` function), so a file's verdicts can be
computed again, and checked, from the file alone:

    python scripts/results.py benchmarks/results/*.json
"""

from __future__ import annotations

import argparse
import importlib
import json
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


def goal(
    what: str,
    measured: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    unit: str = "x",
    **detail: Any,
) -> dict[str, Any]:
    """A goal written once, as data beside its benchmark, and judged on the figure measured: met or not (``None``
    where nothing was measured). ``unit`` says how the figures read: ``x`` a ratio, ``%`` a share, ``s`` seconds,
    ``seeds`` a count of seeds, ``""`` a plain number; ``detail`` is kept beside them (the seeds that missed...)."""
    if (at_least is None) == (at_most is None):
        raise ValueError("a goal is at_least or at_most a figure")
    met = None
    if measured is not None:
        measured = round(float(measured), 4)
        met = measured >= at_least if at_least is not None else measured <= float(at_most or 0)
    bound = {"at_least": at_least} if at_least is not None else {"at_most": at_most}
    return {"what": what, "measured": measured, **bound, "unit": unit, "met": met, **detail}


def best_goal(
    what: str, measured: dict[str, float], *, at_least: float, unit: str = "x", **detail: Any
) -> dict[str, Any]:
    """A goal judged on the best of several candidates' figures (``measured``: candidate -> figure), naming it
    and keeping the others' figures beside it."""
    best = max(measured, key=measured.__getitem__) if measured else None
    others = {k: round(v, 4) for k, v in measured.items() if k != best}
    return goal(what, measured.get(best) if best else None, at_least=at_least, unit=unit, best=best, others=others,
                **detail)  # fmt: skip


def judge(paths: list[Path]) -> None:
    """Computes each file's ``goals`` again from its figures, by the ``goals`` function of the script that wrote
    it (named in its ``command``), and rewrites the file where they differ: a verdict is never typed."""
    for path in paths:
        data = json.loads(path.read_text())
        computed = goals_of(data, path)
        if computed != data.get("goals", {}):
            write_results(path, {**data, "goals": computed})
            print(f"judged {path}")


def goals_of(data: dict[str, Any], where: Path | str) -> dict[str, Any]:
    """The goals the script named in ``data['command']`` computes from ``data``; ``{}`` for a file no script
    judges (one with several commands)."""
    words = shlex.split(data.get("command", ""))
    script = next((w for w in words if w.startswith("scripts/bench_") and w.endswith(".py")), None)
    if script is None:
        return {}
    module = importlib.import_module(Path(script).stem)
    if not hasattr(module, "goals"):
        raise SystemExit(f"{where}: {script} has no goals function")
    result: dict[str, Any] = module.goals(data)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    parser = argparse.ArgumentParser(description="Judges benchmark results: recomputes every file's goals from "
                                     "its figures by the script that wrote it.")  # fmt: skip
    parser.add_argument("files", nargs="+", type=Path, help="results JSONs (benchmarks/results/*.json)")
    judge(parser.parse_args().files)
