"""Renders the figures of README.md and BENCHMARKS.md from the JSONs under benchmarks/results/.

    python scripts/render_benchmarks.py           # rewrites every rendered block in place
    python scripts/render_benchmarks.py --check   # exits 1 naming each block that differs from its file

A rendered block sits between two comments that name what renders it and from which file::

    <!-- render transfer_table benchmarks/results/quick_study_5_seeds.json -->
    | method | transfer ratio | ...
    <!-- end render -->

The tables and the goal verdicts come from the files as the benchmark scripts wrote them (the verdicts are the
scripts' own ``goals``), so a figure in a rendered block always has a file behind it; a test runs ``--check``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sim2real.io import write_text

REPO = Path(__file__).resolve().parent.parent
DOCUMENTS = ("README.md", "BENCHMARKS.md")
BLOCK = re.compile(r"(<!-- render (\S+) (\S+) -->\n)(.*?)(<!-- end render -->)", re.DOTALL)


def _estimate(e: dict[str, Any] | None, digits: int = 0) -> str:
    """``IQM [low, high]`` with thousands separators; ``-`` for a figure the file does not hold."""
    if not e or e.get("iqm") is None:
        return "-"
    text = f"{e['iqm']:,.{digits}f}"
    if e.get("ci_low") is not None:
        text += f" [{e['ci_low']:,.{digits}f}, {e['ci_high']:,.{digits}f}]"
    return text


def _label(group: dict[str, Any]) -> str:
    if group.get("source") is None:
        return group["method"]
    label = f"{group['source']}/{group['method']}"
    return label + " (plain SB3)" if group["method"] == "by_hand" else label


def _ordered(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Scratch, then plain SB3 by hand, then each source's methods in the study's order."""
    methods = list(dict.fromkeys(g["method"] for g in groups))
    rank = {"scratch": 0, "by_hand": 1}
    return sorted(groups, key=lambda g: (g["target"], rank.get(g["method"], 2), g.get("source") or "",
                                         methods.index(g["method"])))  # fmt: skip


def _share(runs: list[dict[str, Any]], key: str) -> str:
    total = sum(r["target_steps"] for r in runs)
    return f"{sum(r.get(key, 0) for r in runs) / total:.0%}" if total else "-"


def transfer_table(data: dict[str, Any]) -> str:
    """Per method: transfer ratio, the kept policy's final return and 10-episode evaluation, the share of the
    reference's return, the target steps that went to evaluation and to the recalibration with its checks,
    and the rollbacks over every seed."""
    reference = bool(data.get("reference", {}).get("returns"))
    header = ["method", "transfer ratio", "final (kept)", "final evaluation"] + (["of reference"] if reference else [])
    header += ["evaluation", "recalibration + check", "rollbacks"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in _ordered(data["methods"]):
        runs = g.get("runs", [])
        cells = [_label(g), _estimate(g.get("transfer_ratio"), 2), _estimate(g.get("final_return")),
                 _estimate(g.get("final_evaluation"))]  # fmt: skip
        if reference:
            fraction = (g.get("fraction_of_reference") or {}).get("iqm")
            cells.append("-" if fraction is None else f"{fraction:.2f}")
        cells += [_share(runs, "evaluation_steps"), _share(runs, "recalibration_steps"),
                  str(sum(r.get("rollbacks", 0) for r in runs))]  # fmt: skip
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def before_table(data: dict[str, Any]) -> str:
    """Per method: transfer ratio, final return and final evaluation (a file from before the guard)."""
    rows = ["| method | transfer ratio | final | final evaluation |", "|---|---|---|---|"]
    for g in _ordered(data["methods"]):
        rows.append(f"| {_label(g)} | {_estimate(g.get('transfer_ratio'), 2)} | {_estimate(g.get('final_return'))} "
                    f"| {_estimate(g.get('final_evaluation'))} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**not met**")


def goals(data: dict[str, Any]) -> str:
    """The benchmark script's own verdicts, one line per case and goal."""
    lines = []
    for case in data["goals"]["cases"]:
        where = f"{case['target']} from {case['source']}"
        below = case["no_run_below_start"]
        seeds = ", ".join(map(str, below["seeds_below"])) or "none"
        scratch, hand = case["beats_scratch"], case["beats_by_hand"]
        low = "-" if scratch["ci_low"] is None else f"{scratch['ci_low']:.2f}"
        hand_iqm = "-" if hand["by_hand_iqm"] is None else f"{hand['by_hand_iqm']:.2f}"
        lines += [
            f"- {where}: no run below its start {_verdict(below['met'])} (seeds below: {seeds}); "
            f"above scratch {_verdict(scratch['met'])} (ratio CI low {low} against 1); "
            f"above plain SB3 by hand {_verdict(hand['met'])} (ratio CI low {low} against by hand's {hand_iqm})"
        ]
    return "\n".join(lines) + "\n"


def scorecard(data: dict[str, Any]) -> str:
    """The scorecard of ``sim2real compare`` for the study's own methods (scratch and every source's)."""
    return _scorecard([g for g in data["methods"] if g["method"] != "by_hand"])


def scorecard_with_by_hand(data: dict[str, Any]) -> str:
    """The scorecard with plain stable-baselines3 by hand beside the study's methods."""
    return _scorecard(data["methods"])


def _scorecard(groups: list[dict[str, Any]]) -> str:
    rows = ["| method | jumpstart | final return | steps to threshold | transfer ratio (area vs scratch) | "
            "return / reference |", "|---|---|---|---|---|---|"]  # fmt: skip
    for g in _ordered(groups):
        seeds = len(g["seeds"])
        reached = g.get("reached_threshold")
        steps = _estimate(g.get("time_to_threshold"))
        if reached is not None and reached < seeds:
            steps += f" ({reached}/{seeds} reached)"
        rows.append(f"| {_label(g)} | {_estimate(g.get('jumpstart'))} | {_estimate(g.get('final_return'))} | {steps} | "
                    f"{_estimate(g.get('transfer_ratio'), 2)} | {_estimate(g.get('fraction_of_reference'), 2)} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def goal_table(data: dict[str, Any]) -> str:
    """Each goal of a throughput benchmark: what it measures, the figure, the goal, met or not."""
    rows = ["| goal | measured | at least | verdict |", "|---|---|---|---|"]
    for name, g in data["goals"].items():
        label = f"{name}: {g['what']}" if g.get("what") else name
        rows.append(f"| {label} | {g['measured']:.3g}x | {g['at_least']:g}x | {_verdict(g['met'])} |")
    return "\n".join(rows) + "\n"


def zero_shot_table(data: dict[str, Any]) -> str:
    """Each source's final evaluation on every domain (mean return over the evaluation's episodes)."""
    domains = list(dict.fromkeys(d for returns in data["zero_shot"].values() for d in returns))
    rows = ["| source | " + " | ".join(domains) + " |", "|---|" + "---|" * len(domains)]
    for name, returns in data["zero_shot"].items():
        rows.append(f"| {name} | " + " | ".join(f"{returns[d]:,.0f}" if d in returns else "-" for d in domains) + " |")
    return "\n".join(rows) + "\n"


def sweep_table(data: dict[str, Any]) -> str:
    """Each sweep's grid statistics per source: IQM (and its ratio to the first source's), mean, the worst
    points (lowest decile, minimum) and the return at the nominal model."""
    rows = []
    for sweep in data.get("sweeps", []):
        rows += [f"{' x '.join(sweep['params'])}, {sweep['episodes']} episodes per point:", "",
                 "| source | grid IQM | ratio to the first | grid mean | lowest decile | minimum | at the nominal model |",
                 "|---|---|---|---|---|---|---|"]  # fmt: skip
        first = next(iter(sweep["sources"].values()))["grid_iqm"]
        for name, f in sweep["sources"].items():
            nominal = "-" if f["at_nominal"] is None else f"{f['at_nominal']:,.0f}"
            rows.append(f"| {name} | {f['grid_iqm']:,.0f} | {f['grid_iqm'] / first:.2f}x | {f['grid_mean']:,.0f} | "
                        f"{f['lowest_decile']:,.0f} | {f['minimum']:,.0f} | {nominal} |")  # fmt: skip
        rows.append("")
    return "\n".join(rows).rstrip("\n") + "\n"


def curves_table(data: dict[str, Any]) -> str:
    """Each method's learning curve: the IQM over seeds at the curve's common points (target steps)."""
    groups = _ordered(data["methods"])
    steps = groups[0]["curve"]["steps"]
    header = ["method", *(f"{x / 1000:.0f}k" if x else "0" for x in steps)]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for g in groups:
        rows.append(f"| {_label(g)} | " + " | ".join(f"{v:,.0f}" for v in g["curve"]["iqm"]) + " |")
    return "\n".join(rows) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "curves_table": curves_table,
    "zero_shot_table": zero_shot_table,
    "sweep_table": sweep_table,
    "goal_table": goal_table,
    "transfer_table": transfer_table,
    "before_table": before_table,
    "goals": goals,
    "scorecard": scorecard,
    "scorecard_with_by_hand": scorecard_with_by_hand,
}


def render(text: str, where: str, root: Path = REPO) -> str:
    """``text`` with every rendered block made again from its file; a block naming an unknown renderer or a
    missing file is an error naming the document."""

    def block(match: re.Match[str]) -> str:
        name, file = match.group(2), match.group(3)
        if name not in RENDERERS:
            raise SystemExit(f"{where}: render {name}: no such renderer (renderers: {', '.join(RENDERERS)})")
        path = root / file
        if not path.is_file():
            raise SystemExit(f"{where}: render {name} {file}: no such file")
        return match.group(1) + RENDERERS[name](json.loads(path.read_text())) + match.group(5)

    return BLOCK.sub(block, text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a document is stale")
    args = parser.parse_args()
    stale = []
    for name in DOCUMENTS:
        path = REPO / name
        text = path.read_text()
        rendered = render(text, name)
        if rendered == text:
            continue
        if args.check:
            blocks = [f"{m.group(2)} {m.group(3)}" for m, r in zip(BLOCK.finditer(text), BLOCK.finditer(rendered),
                                                                     strict=True) if m.group(4) != r.group(4)]  # fmt: skip
            stale.append(f"{name}: stale ({'; '.join(blocks)}): run python scripts/render_benchmarks.py")
        else:
            write_text(path, rendered)
            print(f"rendered {name}")
    if stale:
        print("\n".join(stale), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
