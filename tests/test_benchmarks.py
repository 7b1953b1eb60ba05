"""The committed benchmark results: figures a reader can trace, with no path of the machine that made them."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

sys.path.insert(0, str(ROOT / "scripts"))
from render_benchmarks import BLOCK, DOCUMENTS, SUMMARY, render, summary
from results import command_line, goal, goals_of, portable


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for key, item in value.items() for s in (key, *_strings(item))]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def _absolute(text: str) -> bool:
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    return any(
        os.path.isabs(part.strip("'\",;()")) for word in [text, *words] for part in (word, word.partition("=")[2])
    )


def test_no_committed_result_names_a_path_of_the_machine_that_ran_it() -> None:
    tracked = subprocess.run(["git", "ls-files", "benchmarks"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    found = [
        f"{path}: {text[:80]}"
        for path in tracked
        if path.endswith(".json")
        for text in _strings(json.loads((ROOT / path).read_text()))
        if _absolute(text)
    ]
    assert tracked and not found, found


def test_paths_in_results_are_made_relative_to_the_repository(tmp_path: Path) -> None:
    data = {
        "run": str(ROOT / "studies" / "x" / "seed_0"),
        "command": f"python scripts/bench_transfer.py c.yaml --output {ROOT.parent / 'studies' / 'h'} --json 'a b.json'",
        "runs": [str(ROOT / "runs" / "a")],
        "group": f"python x.py --group identified={ROOT.parent / 'studies' / 'id'} other",
        "ratio": 1.5,
        "note": "m/s and 3/5 seeds stay as they are",
    }
    made = portable(data)
    assert made["run"] == "studies/x/seed_0"
    assert made["command"] == "python scripts/bench_transfer.py c.yaml --output ../studies/h --json 'a b.json'"
    assert made["runs"] == ["runs/a"]
    assert made["group"] == "python x.py --group identified=../studies/id other"
    assert made["ratio"] == 1.5 and made["note"] == data["note"]
    assert not any(_absolute(text) for text in _strings(made))


def test_the_recorded_command_is_relative(monkeypatch: Any) -> None:
    monkeypatch.setattr(sys, "argv", [str(ROOT / "scripts" / "bench_export.py"), "--json", str(ROOT / "r.json")])
    assert command_line() == "python scripts/bench_export.py --json r.json"


def test_the_committed_documents_hold_what_their_files_render() -> None:
    """Every rendered block of README.md and BENCHMARKS.md is what scripts/render_benchmarks.py makes of its
    file today: a figure changed by hand, or a result file re-run without re-rendering, fails here."""
    blocks = 0
    for name in DOCUMENTS:
        text = (ROOT / name).read_text()
        blocks += len(BLOCK.findall(text))
        assert render(text, name) == text, f"{name} is stale: run python scripts/render_benchmarks.py"
    assert blocks >= 5


def test_a_block_that_names_no_file_is_an_error_naming_the_document() -> None:
    text = "<!-- render goal_table benchmarks/results/nope.json -->\n<!-- end render -->\n"
    match = r"^BENCHMARKS.md: render goal_table benchmarks/results/nope.json: no such file$"
    with pytest.raises(SystemExit, match=match):
        render(text, "BENCHMARKS.md")


def _results() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "benchmarks/results"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    return [ROOT / path for path in tracked if path.endswith(".json")]


def test_every_verdict_is_what_its_script_computes_from_the_file() -> None:
    """A file's goals are its script's ``goals`` of its figures: a verdict typed or edited by hand, or a goal
    changed in a script without judging its files again (python scripts/results.py FILE), fails here."""
    judged = 0
    for path in _results():
        data = json.loads(path.read_text())
        computed = goals_of(data, path)
        assert computed == data.get("goals", {}), f"{path.name}: run python scripts/results.py {path.name}"
        judged += bool(computed)
    assert judged >= 15


def test_the_summary_names_every_judged_file() -> None:
    """Every results file with goals is summarized at the top of BENCHMARKS.md, or named as kept for comparison."""
    summarized = {name for name in SUMMARY}
    kept = {"quick_study_before_guard.json", "quick_study_5_seeds_before_guard.json",
            "identification_before_smoothing.json"}  # fmt: skip
    missing = [p.name for p in _results() if json.loads(p.read_text()).get("goals") and p.name not in summarized | kept]
    assert not missing, f"add to SUMMARY in scripts/render_benchmarks.py: {missing}"


def test_a_goal_is_judged_on_its_figure() -> None:
    assert goal("speed", 1.2, at_least=1.0)["met"] is True
    assert goal("error", 0.07, at_most=0.05, unit="%")["met"] is False
    assert goal("not run", None, at_least=1.0)["met"] is None
    with pytest.raises(ValueError):
        goal("both", 1.0, at_least=1.0, at_most=2.0)


def test_the_summary_lists_each_goal_not_met_with_its_figure() -> None:
    folder = {
        "evaluator.json": {"goals": {
            "fast": goal("speed", 3.8, at_least=4.0),
            "ok": goal("other", 6.2, at_least=4.0),
            "error": goal("error", 0.2115, at_most=0.05, unit="%"),
            "later": goal("not run", None, at_least=1.0),
        }},
    }  # fmt: skip
    row = summary(folder).splitlines()[2]
    assert row == ("| batched evaluator speed | `evaluator.json` | 1 of 3 (1 not measured) | fast 3.8x (>= 4x); "
                   "error 21% (<= 5%) |")  # fmt: skip
