"""The transfer benchmark of BENCHMARKS.md: a study (its methods and ablation variants), the by-hand baseline
from every source the study transfers from, and one small JSON of what they measured.

    python scripts/bench_transfer.py configs/hopper/study.yaml --output studies/hopper \\
        --json benchmarks/results/hopper_study.json

1. Runs the study, or resumes it (finished runs are skipped): ``sim2real study FILE --output DIR``.
2. Trains the by-hand baseline (plain stable-baselines3: ``VecNormalize.load`` + ``PPO.load`` + ``learn``; see
   ``bench_transfer_by_hand.py``) from each source, with the study's seeds, budget and learning-curve points.
3. Scores every run against the study's scratch runs and its target-trained reference (``sim2real compare``)
   and writes, per target, source and method: the transfer ratio and the final return (IQM with a bootstrap
   95% CI over seeds), the final return as a share of the reference's and the target steps to 95% of it, the
   jumpstart, the IQM learning curve, and the final 10-episode evaluation, with the command and the seeds.

``--score-only`` skips steps 1 and 2: it scores what is finished (each group says how many seeds it has).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from bench_transfer_by_hand import by_hand
from results import command_line, goal, write_results
from rich.console import Console

from sim2real.cli import main as sim2real
from sim2real.config import load_study
from sim2real.evaluation.metrics import estimate, grid_statistics, iqm
from sim2real.evaluation.scorecard import Run, find_runs, group_runs, score
from sim2real.runs import RunFolder
from sim2real.study import plan_study


def _curve(runs: list[Run], steps: list[float]) -> list[float]:
    """The IQM over seeds of the learning curve at ``steps``, each run's curve interpolated linearly there (a
    resumed run's points can fall between the others')."""
    return [float(iqm([float(np.interp(step, r.curve.steps, r.curve.returns)) for r in runs])) for step in steps]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("study", type=Path, help="the study file (configs/<env>/study.yaml)")
    parser.add_argument("--output", type=Path, help="the study folder (default: the study file's)")
    parser.add_argument("--workers", type=int, default=2, help="study runs at a time (default 2)")
    parser.add_argument("--json", type=Path, required=True, help="where to write the figures")
    parser.add_argument("--reference-from", type=Path, metavar="JSON",
                        help="for a study with no reference of its own: the target-trained reference's returns and "
                             "budget from this results file (another study's, on the same targets)")  # fmt: skip
    parser.add_argument("--score-only", action="store_true", help="score the finished runs; train nothing")
    args = parser.parse_args()
    console = Console()

    study = load_study(args.study)
    plan = plan_study(args.study, study, args.output)
    if not args.score_only:
        code = sim2real(["study", str(args.study), "--output", str(plan.folder), "--workers", str(args.workers)])
        if code != 0:
            sys.exit(code)
    by_hand_runs: list[Path] = []
    for target in study.targets:
        for name in study.sources_to_transfer_from():
            source = plan.sources[name]
            if args.score_only:  # beside the source's other runs: <env>/<source>/<target>/by_hand/seed_<n>
                folder = source.parent / target / "by_hand"
                by_hand_runs += [
                    folder / f"seed_{seed}" for seed in study.seed_list() if (folder / f"seed_{seed}").is_dir()
                ]
                continue
            console.print(f"by hand from {name} on {target}")
            by_hand_runs += by_hand(plan.base, target, source, study.seed_list(), study.budgets.transfer,
                                    study.transfer.eval_every, study.transfer.eval_episodes, plan.folder / "runs",
                                    console)  # fmt: skip

    folders = [p for p in [*plan.transfers, *by_hand_runs] if RunFolder(p).finished()]
    runs = find_runs([str(p) for p in folders])
    reference_name = study.reference
    reference = RunFolder(plan.sources[reference_name]).read_eval() if reference_name else {}
    references = {t: float(reference[t]["mean_reward"]) for t in study.targets if t in reference}
    reference_steps = study.source_steps(reference_name) if reference_name else None
    if args.reference_from is not None and not reference_name:
        other = json.loads(args.reference_from.read_text())
        references = {t: float(v) for t, v in other["reference"]["returns"].items() if t in study.targets}
        reference_steps = other["budgets"]["reference"]
        reference_name = f"{other['reference']['name']} ({args.reference_from})"
    card = score(runs, references=references)
    zero_shot = {name: RunFolder(folder).read_eval() for name, folder in plan.sources.items()}

    # Curves are by target steps, which differ run by run (evaluations of a good policy take longer): a common grid.
    budget = max(card.budgets.values())
    every = study.transfer.eval_every
    steps = [float(s) for s in np.linspace(0.0, budget, int(budget // every) + 1 if every else 2)]
    grouped = group_runs(runs)
    groups = []
    for s in card.scores:
        members = grouped[s.group] if s.group is not None else []
        finals = [RunFolder(r.path).read_eval().get(s.target, {}).get("mean_reward") for r in members]
        evaluated = [float(f) for f in finals if f is not None]
        groups.append({
            **s.as_dict(),
            "label": s.method,
            "method": s.group.method if s.group else s.method,
            "seeds": sorted(r.seed for r in members),
            "final_evaluation": estimate([evaluated]).as_dict() if evaluated else None,
            "runs": [_run_figures(r.path, s.target) for r in members],
            "curve": {"steps": steps, "iqm": _curve(members, steps)},
        })  # fmt: skip
    command = command_line()
    result: dict[str, Any] = {
        "command": command,
        "study": str(args.study),
        "env": study.env,
        "budgets": {
            "source": study.budgets.source,
            "transfer": study.budgets.transfer,
            "reference": reference_steps,
        },
        "eval": {
            "curve_every": study.transfer.eval_every,
            "curve_episodes": study.transfer.eval_episodes,
            "final_episodes": plan.base.eval.episodes,
        },
        "reference": {"name": reference_name, "returns": references},
        # Every source on every domain its final evaluation holds (the source's own and every target).
        "zero_shot": {name: {d: res[d]["mean_reward"] for d in res} for name, res in zero_shot.items()},
        "methods": groups,
        "notes": card.notes,
    }
    # Identified sources: what the study's identification found (its report, as the study summarized it).
    report = plan.folder / "report" / "study.json"
    summary = json.loads(report.read_text()) if report.is_file() else {}
    if summary.get("identified"):
        result["identified"] = summary["identified"]
    if summary.get("sweeps"):
        result["sweeps"] = [_sweep_figures(sweep) for sweep in summary["sweeps"]]
    result = _rounded(result)
    write_results(args.json, {**result, "goals": goals(result)})
    console.print(f"wrote {args.json}")
    for g in groups:
        ratio, final, fraction = g.get("transfer_ratio"), g.get("final_return"), g.get("fraction_of_reference")
        console.print(
            f"{g['target']} {g['label']:<28} seeds {len(g['seeds'])}  ratio {_text(ratio, 2)}  "
            f"final {_text(final, 0)}  of reference {_text(fraction, 2)}"
        )


def _run_figures(path: Path, target: str) -> dict[str, Any]:
    """One run's start and end on its target and what it spent: the step-0 return and the return of the policy
    it hands over, each over the same curve and confirmation episodes (the curve's alone for plain SB3, which
    has no guard); its 10-episode final evaluation; its target steps, of which
    evaluation (the curve's points, the guard's confirmations) and the recalibration with its checks; and the
    guard's rollbacks and the falls it did not act on; and ``recipe: auto``'s check, where it ran."""
    run = RunFolder(path)
    points = run.curve_points()
    last = points[-1]
    state = json.loads(run.transfer_state.read_text()) if run.transfer_state.is_file() else {}
    guard = state.get("guard") or {}
    evaluation = sum(int(p.get("eval_steps", 0)) for p in points) + int(guard.get("confirmation_steps", 0))
    target_steps = int(last.get("target_steps", last["step"]))
    final = run.read_eval().get(target, {}).get("mean_reward")
    return {
        "seed": int((run.saved_config() or {}).get("train", {}).get("seed", 0)),
        "start": points[0].get("kept_reward", points[0]["mean_reward"]),
        "end": last.get("kept_reward", last["mean_reward"]),
        "final_evaluation": final,
        "target_steps": target_steps,
        "training_steps": int(last["step"]),
        "evaluation_steps": evaluation,
        "recalibration_steps": target_steps - int(last["step"]) - evaluation,
        "rollbacks": int(guard.get("rollbacks", 0)),
        "averted": int(guard.get("averted", 0)),
        # recipe auto's decisions and the returns they were made on (transfer.json's recipe_check)
        "recipe_check": state.get("recipe_check"),
    }


# Issue 24's goals, as data: the script decides met or not met from what it measured, per target and source.
NO_RUN_BELOW = 0.95  # of a run's own step-0 return
OF_REFERENCE = 0.95  # of the target-trained reference's return ...
REFERENCE_SAMPLES = 0.20  # ... with at most this share of its samples


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the default transfer from each source on each target (``python scripts/results.py FILE``
    judges a file again): no run below its start, above scratch and above plain SB3 by hand (the default's
    transfer-ratio CI over 1 and over by hand's IQM), and the share of the reference's return reached with at
    most a fifth of its samples. The default is ``finetune``, or the variant ``auto`` in a study that set
    another recipe for its methods. A goal the file has no runs for is "not measured"."""
    groups = data["methods"]
    default = "auto" if any(g["method"] == "auto" for g in groups) else "finetune"
    budgets = data.get("budgets", {})
    share = budgets["transfer"] / budgets["reference"] if budgets.get("reference") else None
    verdicts: dict[str, Any] = {}
    for g in groups:
        if g["method"] != default or g.get("source") is None:
            continue
        case = f"{g['target']} from {g['source']}"
        runs = [r for r in g.get("runs", []) if r.get("start") is not None]
        below = [r["seed"] for r in runs if r["end"] < NO_RUN_BELOW * r["start"]]
        verdicts[f"{case}: no run below its start"] = goal(
            f"seeds whose kept policy returns at least {NO_RUN_BELOW:.0%} of its own step-0 return",
            len(runs) - len(below) if runs else None,
            at_least=len(g["seeds"]),
            unit="seeds",
            seeds_below=below,
        )
        low = (g.get("transfer_ratio") or {}).get("ci_low")
        verdicts[f"{case}: above scratch"] = goal(
            f"{default}'s transfer-ratio CI low, against scratch's 1", low, at_least=1.0, unit=""
        )
        hand = next((h for h in groups if h["target"] == g["target"] and h.get("source") == g["source"]
                     and h["method"] == "by_hand"), None)  # fmt: skip
        hand_iqm = ((hand or {}).get("transfer_ratio") or {}).get("iqm")
        if hand_iqm is not None:
            verdicts[f"{case}: above plain SB3 by hand"] = goal(
                f"{default}'s transfer-ratio CI low, against plain stable-baselines3's IQM (by hand)",
                low,
                at_least=round(hand_iqm, 4),
                unit="",
            )
        fraction = (g.get("fraction_of_reference") or {}).get("iqm")
        if fraction is not None and share is not None:
            verdict = goal(
                f"{default}'s final return as a share of the target-trained reference's, with "
                f"{share:.0%} of its samples (at most {REFERENCE_SAMPLES:.0%})",
                fraction,
                at_least=OF_REFERENCE,
                unit="%",
                samples_share=round(share, 4),
            )
            verdict["met"] = verdict["met"] and share <= REFERENCE_SAMPLES
            verdicts[f"{case}: of the reference"] = verdict
    return verdicts


def _sweep_figures(sweep: dict[str, Any]) -> dict[str, Any]:
    """A robustness sweep's grid statistics per source: IQM and mean over the grid's points, its worst points
    (the lowest decile and the minimum), the return at the nominal model where the grid holds it (every
    parameter a scale with 1 among its values), and the grid itself."""
    values = sweep["values"]
    nominal_at = [v.index(1.0) if p.endswith(" scale") and 1.0 in v else None for p, v in zip(sweep["params"], values,
                                                                                             strict=True)]  # fmt: skip
    sources = {}
    for name, grid in sweep["grid"].items():
        points = np.asarray(grid, dtype=float)
        worst = grid_statistics(points)  # the same worst points the study report and sim2real sweep show
        nominal = None
        if all(i is not None for i in nominal_at):
            nominal = float(points.reshape([len(v) for v in values])[tuple(nominal_at)])
        sources[name] = {"grid_iqm": sweep["grid_iqm"][name], "grid_mean": sweep["grid_mean"][name],
                         "lowest_decile": worst["lowest_decile"], "minimum": worst["minimum"],
                         "at_nominal": nominal, "grid": list(points)}  # fmt: skip
    return {"name": sweep["name"], "params": sweep["params"], "values": values, "episodes": sweep["episodes"],
            "sources": sources}  # fmt: skip


def _text(e: dict[str, Any] | None, digits: int) -> str:
    if not e:
        return "-"
    ci = f" [{e['ci_low']:.{digits}f}, {e['ci_high']:.{digits}f}]" if e.get("ci_low") is not None else ""
    return f"{e['iqm']:.{digits}f}{ci}"


def _rounded(value: Any) -> Any:
    """Floats to 6 significant digits, and to the unit at 1,000 and above (a step count or a return is shown
    whole): the file stays a few KB, is read by people, and renders as the study's report prints it."""
    if isinstance(value, float | np.floating):
        return float(round(float(value))) if abs(value) >= 1000 else float(f"{float(value):.6g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


if __name__ == "__main__":
    main()
