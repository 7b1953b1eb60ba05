"""Renders the figures of README.md, BENCHMARKS.md and the guides in docs/ from the JSONs under benchmarks/results/.

    python scripts/render_benchmarks.py           # rewrites every rendered block in place
    python scripts/render_benchmarks.py --check   # exits 1 naming each block that differs from its file

A rendered block sits between two comments that name what renders it and from which file::

    <!-- render transfer_table benchmarks/results/quick_study_5_seeds.json -->
    | method | transfer ratio | ...
    <!-- end render -->

A block may name a folder instead (``<!-- render summary benchmarks/results -->``): its renderer reads every
JSON there.

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
DOCUMENTS = ("README.md", "BENCHMARKS.md", *(f"docs/{p.name}" for p in sorted((REPO / "docs").glob("*.md"))))
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


def _figure(value: float | None, unit: str) -> str:
    """A goal's figure as its unit reads: ``1.05x``, ``0.68%``, ``12.7 s``, ``5 seeds``, ``21.04``."""
    if value is None:
        return "-"
    if unit == "x":
        return f"{value:.3g}x"
    if unit == "%":
        percent = 100 * value
        return f"{percent:.2g}%" if abs(percent) < 10 else f"{percent:,.0f}%"
    if unit == "s":
        return f"{value:.3g} s" if abs(value) < 100 else f"{value:,.0f} s"
    if unit:  # a count: seeds, runs
        return f"{value:.0f} {unit}"
    return f"{value:,.4g}"


def _bound(g: dict[str, Any]) -> str:
    if g.get("at_least") is not None:
        return ">= " + _figure(g["at_least"], g.get("unit", "x"))
    return "<= " + _figure(g["at_most"], g.get("unit", "x"))


def goal_table(data: dict[str, Any]) -> str:
    """Each goal of a benchmark, as its script judged it: what it measures, the figure, the goal, met or not."""
    rows = ["| goal | measured | goal | verdict |", "|---|---|---|---|"]
    for name, g in data["goals"].items():
        label = f"{name}: {g['what']}" if g.get("what") else name
        if g.get("best"):
            label += f" ({g['best']})"
        rows.append(f"| {label} | {_figure(g['measured'], g.get('unit', 'x'))} | {_bound(g)} | {_verdict(g['met'])} |")
    return "\n".join(rows) + "\n"


# The summary at the top of BENCHMARKS.md: the current results files, in the document's order, with what each
# measures (a file from before a change, kept for comparison, is not summarized).
SUMMARY = {
    "quick_study.json": "the quick study (README command), 3 seeds",
    "quick_study_5_seeds.json": "the quick study, 5 seeds: the guard",
    "hopper_guard.json": "Hopper heavy_slippery: the guard",
    "hopper_held_out.json": "Hopper, held-out target payload_worn",
    "hopper_held_out_targets.json": "Hopper, held-out targets heavy_boot_wet and geared_sagging",
    "adapt_idp.json": "the sim-to-real loop on the IDP stand-in robot",
    "hopper_study.json": "Hopper transfer study (before the guard)",
    "walker2d_study.json": "Walker2d transfer study (before the guard)",
    "idp_recipe_ablation.json": "IDP fine-tuning recipe ablation (before the guard)",
    "identification.json": "identification from recordings",
    "identification_effects_idp.json": "identification: motor lag, observations only, encoder offset (IDP)",
    "identification_coverage.json": "identification: interval coverage over 20 fits (IDP)",
    "sysid_comparison.json": "identification against mujoco.sysid (IDP)",
    "identified_source.json": "IDP source trained on the identified domain",
    "identified_source_hopper.json": "Hopper source trained on the identified domain",
    "identify_study.json": "identification as a study stage",
    "sampling_idp.json": "where training draws (sampling), IDP",
    "adaptive_idp.json": "adaptive sources, IDP",
    "adaptive_idp_500k.json": "adaptive sources, IDP, twice the budget",
    "adaptive_hopper.json": "adaptive sources, Hopper",
    "adaptive_hopper_recurrent.json": "adaptive sources, Hopper, recurrent",
    "study_scaling.json": "study scaling: workers and Ray",
    "train_overhead.json": "sim2real train vs plain SB3",
    "randomization.json": "randomization speed",
    "evaluator.json": "batched evaluator speed",
}


def summary(folder: dict[str, dict[str, Any]]) -> str:
    """One row per results file: what it measures, how many of its goals are met, and each one not met with
    its figure against the goal."""
    rows = ["| benchmark | file | goals met | not met (measured against the goal) |", "|---|---|---|---|"]
    for name, what in SUMMARY.items():
        if name not in folder:
            continue
        goals = folder[name].get("goals", {})
        judged = [g for g in goals.values() if g["met"] is not None]
        missed = [f"{key} {_figure(g['measured'], g.get('unit', 'x'))} ({_bound(g)})"
                  for key, g in goals.items() if g["met"] is False]  # fmt: skip
        unmeasured = len(goals) - len(judged)
        met = f"{sum(g['met'] for g in judged)} of {len(judged)}" + (
            f" ({unmeasured} not measured)" if unmeasured else ""
        )
        rows.append(f"| {what} | `{name}` | {met} | {'; '.join(missed) or '-'} |")
    return "\n".join(rows) + "\n"


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


def ratio_grid(data: dict[str, Any]) -> str:
    """The transfer ratio of every arm (method or variant) from every source: one row per source and base method
    (``finetune`` and its variants, ``freeze`` and the variants ending ``_freeze``), one column per arm; "the
    method" is the row's method with the study's own settings."""
    rows: dict[str, dict[str, str]] = {}
    for g in data["methods"]:
        if g.get("source") is None:
            continue
        method = g["method"]
        base = "freeze" if method == "freeze" or method.endswith("_freeze") else "finetune"
        arm = method.removesuffix("_freeze") if base == "freeze" and method != "freeze" else method
        arm = {"freeze": "the method", "finetune": "the method", "by_hand": "by hand (plain SB3)"}.get(arm, arm)
        rows.setdefault(f"{g['source']}, {base}", {})[arm] = _estimate(g.get("transfer_ratio"), 2)
    arms = list(dict.fromkeys(arm for cells in rows.values() for arm in cells))
    arms.sort(key=lambda a: (a != "by hand (plain SB3)", a != "the method", a != "auto"))
    table = ["| source, method | " + " | ".join(arms) + " |", "|---|" + "---|" * len(arms)]
    for name, cells in rows.items():
        table.append(f"| {name} | " + " | ".join(cells.get(a, "") for a in arms) + " |")
    return "\n".join(table) + "\n"


def identification_table(data: dict[str, Any]) -> str:
    """Per env and recording condition: the time per fit and each parameter's median and largest error over the
    seeds, and in how many seeds the report calls it identified and its 95% interval covers the truth."""
    rows = ["| env, recording | time per fit (median, max) | parameter: median / max error, identified, interval "
            "covers the truth |", "|---|---|---|"]  # fmt: skip
    for env, case in data["envs"].items():
        for condition, summary in case["conditions"].items():
            seconds = summary.get("seconds")
            time = f"{seconds['median']:.1f} s, {seconds['max']:.1f} s" if seconds else "-"
            params = "; ".join(
                f"{name}: {_figure(p['median_error'], '%')} / {_figure(p['max_error'], '%')}, {p['identified']}, "
                f"{p['interval_covers_truth']}"
                for name, p in summary.get("parameters", {}).items()
            )
            rows.append(f"| {env}, {condition} | {time} | {params} |")
    return "\n".join(rows) + "\n"


def identified_table(data: dict[str, Any]) -> str:
    """Each group's zero-shot return on the hidden target: IQM [95% CI] over seeds, per seed, and the share of
    the reference's IQM."""
    rows = [f"| source | return on `{data['domain']}` | per seed | of the reference |", "|---|---|---|---|"]
    for name, g in data["groups"].items():
        seeds = " / ".join(f"{v:,.0f}" for v in g["values"])
        rows.append(f"| {name} | {_estimate(g)} | {seeds} | {_figure(g['fraction_of_reference'], '%')} |")
    return "\n".join(rows) + "\n"


def source_table(data: dict[str, Any]) -> str:
    """Each source's zero-shot return on every target and as a share of the reference, and after the study's
    default transfer (the final return and the transfer ratio, IQM [95% CI])."""
    reference = data["reference"]
    rows = ["| source | target | zero-shot | of the reference | after transfer (finetune) | transfer ratio |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for name, returns in data["zero_shot"].items():
        for target, ref in reference["returns"].items():
            g = next((g for g in data["methods"] if g.get("source") == name and g["method"] == "finetune"
                      and g["target"] == target), {})  # fmt: skip
            zero = returns.get(target)
            rows.append(f"| {name} | {target} | {_estimate({'iqm': zero})} | {_figure(None if zero is None else zero / ref, '%')} | "
                        f"{_estimate(g.get('final_return'))} | {_estimate(g.get('transfer_ratio'), 2)} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def adaptive_table(data: dict[str, Any]) -> str:
    """Each source of the adaptive benchmark: grid IQM, the return at the nominal point (or on the nominal model
    where the grid does not hold it), on the target, its training and evaluation steps/s."""
    rows = ["| source | steps | grid IQM | at the nominal point | on the source's domain | on the target | "
            "training steps/s | evaluation steps/s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in data["sources"].items():
        rows.append(f"| {name} | {f['steps']:,} | {_estimate(f['grid_iqm'])} | {_estimate(f['nominal_point'])} | "
                    f"{_estimate(f['source_domain'])} | {_estimate(f['target'])} | {f['train_steps_per_s']:,.0f} | "
                    f"{f['eval_steps_per_s']:,.0f} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def sampling_table(data: dict[str, Any]) -> str:
    """Each source of the sampling benchmark over its grid (IQM [95% CI] over seeds): the grid's IQM, lowest
    decile and minimum, the nominal model, and its training steps/s."""
    rows = ["| source | grid IQM | lowest decile | minimum | on the nominal model | training steps/s |",
            "|---|---|---|---|---|---|"]  # fmt: skip
    for name, f in data["sources"].items():
        rows.append(f"| {name} | {_estimate(f['grid_iqm'])} | {_estimate(f['decile'])} | {_estimate(f['minimum'])} | "
                    f"{_estimate(f['nominal_point'])} | {f['train_steps_per_s']:,.0f} |")  # fmt: skip
    return "\n".join(rows) + "\n"


def latency_table(data: dict[str, Any]) -> str:
    """An exported policy's latency per call, median and p99, and the speed-up over ``model.predict``."""
    rows = ["| runtime | median per call | p99 | speed-up over predict |", "|---|---|---|---|"]
    for name, f in data["latency"].items():
        rows.append(f"| {name} | {f['median_us']:.1f} µs | {f['p99_us']:.1f} µs | {f['speedup_vs_predict']:.1f}x |")
    return "\n".join(rows) + "\n"


def sysid_table(data: dict[str, Any]) -> str:
    """Per recording condition and method: the time per fit and each parameter's median / largest error over
    the seeds, and in how many fits its 95% interval holds the truth."""
    rows = ["| recording | method | time per fit (median, max) | parameter: median / max error, interval covers the "
            "truth |", "|---|---|---|---|"]  # fmt: skip
    for condition, methods in data["conditions"].items():
        for method, m in methods.items():
            seconds = m["seconds"]
            params = "; ".join(f"{n}: {_figure(p['median_error'], '%')} / {_figure(p['max_error'], '%')}, "
                               f"{p['interval_covers_truth']}"
                               for n, p in m.items() if isinstance(p, dict) and "median_error" in p)  # fmt: skip
            rows.append(f"| {condition} | {method} | {seconds['median']:.1f} s, {seconds['max']:.1f} s | {params} |")
    return "\n".join(rows) + "\n"


def adapt_table(data: dict[str, Any]) -> str:
    """Each way to spend the stand-in's budget: its final return (IQM [95% CI] over seeds), as a share of the
    policy trained on the stand-in itself, and the most target steps a seed took; the zero-shot sources and the
    reference below."""
    reference = data["reference"]
    rows = ["| method | final return | of the reference | target steps (most) |", "|---|---|---|---|"]
    for name, m in data["methods"].items():
        rows.append(f"| {name} | {_estimate(m)} | {m['share_of_reference']:.0%} | {m['max_target_steps']:,} |")
    for name, value in data["zero_shot"].items():
        label = "the source" if name == "source" else f"{name} source"
        rows.append(f"| {label}, zero-shot | {value:,.0f} | {value / reference['iqm']:.0%} | 0 |")
    rows.append(f"| trained on the stand-in ({len(reference['returns'])} seeds) | {reference['iqm']:,.0f} | 100% | "
                f"{reference['steps']:,} |")  # fmt: skip
    return "\n".join(rows) + "\n"


RENDERERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "adapt_table": adapt_table,
    "sampling_table": sampling_table,
    "sysid_table": sysid_table,
    "curves_table": curves_table,
    "zero_shot_table": zero_shot_table,
    "sweep_table": sweep_table,
    "goal_table": goal_table,
    "transfer_table": transfer_table,
    "before_table": before_table,
    "summary": summary,
    "ratio_grid": ratio_grid,
    "identification_table": identification_table,
    "identified_table": identified_table,
    "source_table": source_table,
    "adaptive_table": adaptive_table,
    "latency_table": latency_table,
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
        if path.is_dir():  # the summary: every results file in the folder, by name
            data: dict[str, Any] = {f.name: json.loads(f.read_text()) for f in sorted(path.glob("*.json"))}
        elif path.is_file():
            data = json.loads(path.read_text())
        else:
            raise SystemExit(f"{where}: render {name} {file}: no such file")
        return match.group(1) + RENDERERS[name](data) + match.group(5)

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
