"""A study's report folder: what each source does zero-shot, what each method does after transfer, the
scorecard of the learning curves, the comparison with a target-trained reference, the robustness sweeps,
and the TensorBoard HPARAMS columns for the whole study.

Everything is read back from the run folders, so the report of a study that was resumed, or run on a
cluster, is the same as that of one run straight through.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.evaluation.metrics import estimate, grid_statistics, iqm, time_to_threshold
from sim2real.evaluation.scorecard import (
    REFERENCE_FRACTION,
    Group,
    Run,
    Scorecard,
    cell,
    curve_grid,
    group_runs,
    markdown,
    read_run,
    score,
    write_scorecard,
)
from sim2real.io import write_json, write_text
from sim2real.logging import write_session
from sim2real.runs import RunFolder
from sim2real.study import IdentifySpec, Plan, spec_complete


def _mean_cell(result: dict[str, Any] | None) -> str:
    if not result:
        return "-"
    text = f"{result['mean_reward']:,.0f}"
    if result.get("ci_low") is not None:
        text += f" [{result['ci_low']:,.0f}, {result['ci_high']:,.0f}]"
    return text


def _after_transfer(plan: Plan, groups: dict[Group, list[Run]], zero_shot: dict) -> list[dict[str, Any]]:
    rows = []
    for group, members in groups.items():
        target = group.target
        returns = [RunFolder(r.path).read_eval().get(target, {}).get("mean_reward") for r in members]
        values = [float(v) for v in returns if v is not None]
        rows.append({
            "target": target,
            "method": group.label,
            "source": group.source,
            "seeds": len(values),
            "zero_shot": zero_shot.get(members[0].source, {}).get(target, {}).get("mean_reward"),
            "after_transfer": estimate([values]) if values else None,
        })  # fmt: skip
    return rows


def _against_reference(plan: Plan, groups: dict[Group, list[Run]], zero_shot: dict) -> list[dict[str, Any]]:
    """Each method's return as a share of the target-trained reference's, and the steps to 95% of it."""
    reference = plan.study.reference
    if reference is None:
        return []
    rows = []
    for group, members in groups.items():
        target, label = group.target, group.label
        ref = zero_shot.get(reference, {}).get(target, {}).get("mean_reward")
        if ref is None:
            continue
        level = ref - (1 - REFERENCE_FRACTION) * abs(ref)
        finals = [RunFolder(r.path).read_eval().get(target, {}).get("mean_reward") for r in members]
        fractions = [float(f) / ref for f in finals if f is not None and ref != 0]
        hits = [time_to_threshold(r.curve, level) for r in members]
        budget = float(plan.study.budgets.transfer)
        steps = [h if h is not None else budget for h in hits]
        rows.append({
            "target": target,
            "method": label,
            "reference_return": ref,
            "reference_steps": plan.study.source_steps(reference),
            "return_fraction": estimate([fractions]) if fractions else None,
            "reached": sum(h is not None for h in hits),
            "seeds": len(members),
            "steps_to_level": estimate([steps]),
            "sample_fraction": float(iqm(steps)) / plan.study.source_steps(reference),
        })  # fmt: skip
    return rows


def _sweeps(plan: Plan, report: Path) -> list[dict[str, Any]]:
    rows = []
    for folder in plan.sweeps:
        try:
            data = json.loads((folder / "sweep.json").read_text())
        except (OSError, ValueError):
            continue
        image = report / f"sweep_{folder.name}.png"
        if (folder / "sweep.png").is_file():
            shutil.copyfile(folder / "sweep.png", image)
        grid = {label: [p["mean_reward"] for p in points] for label, points in data["models"].items()}
        first = next(iter(grid.values()))
        axes = [p["values"] for p in data["params"]]
        rows.append({
            "name": folder.name,
            "params": [p["label"] for p in data["params"]],
            "values": axes,
            "grid": grid,
            "episodes": data["episodes"],
            "image": image.name,
            "grid_iqm": {label: float(iqm(v)) for label, v in grid.items()},
            "grid_mean": {label: float(np.mean(v)) for label, v in grid.items()},
            "lowest_decile": {label: grid_statistics(v)["lowest_decile"] for label, v in grid.items()},
            "minimum": {label: grid_statistics(v)["minimum"] for label, v in grid.items()},
            "ratio_to_first": {label: float(iqm(v) / iqm(first)) if iqm(first) > 0 else None
                               for label, v in grid.items()},
        })  # fmt: skip
    return rows


def _tensorboard(card: Scorecard, after: list[dict[str, Any]], tb: Path, images: list[Path]) -> None:
    """One HPARAMS row per method and target with the scorecard's IQMs (``summary <method> <target>``), beside the
    rows of the runs: no experiment summary, so TensorBoard shows the union of every run's columns (see
    :func:`sim2real.logging.write_session`). Each row's run also holds its method's IQM learning curve as
    ``scorecard/target_return/<target>``; ``tb/`` itself holds one CUSTOM SCALARS chart per target that
    overlays its methods' curves, and the report's images (``curves.png``, the sweeps' heatmaps)."""
    from torch.utils.tensorboard import SummaryWriter

    finals = {(row["target"], row["method"]): row["after_transfer"] for row in after}
    for s in card.scores:
        assert s.group is not None
        hparams: dict[str, bool | int | float | str] = {
            "study/role": "summary",
            "study/source": s.group.source or "none",
            "study/method": s.group.method,
            "study/target": s.target,
        }
        metrics = {f"scorecard/{name}": e.iqm for name, e in s.estimates.items() if e is not None}
        final = finals.get((s.target, s.method))
        if final is not None:
            metrics[f"eval/{s.target}/mean_reward"] = final.iqm
        folder = tb / s.target / s.method.replace("/", "_")
        shutil.rmtree(folder, ignore_errors=True)  # a re-run rewrites the summary, not appends a second one
        writer = SummaryWriter(log_dir=str(folder))
        try:
            for tag, number in metrics.items():
                writer.add_scalar(tag, number, 0)
            steps, values = curve_grid(card.curves[(s.target, s.method)])
            for step, value in zip(steps, np.asarray(iqm(values, axis=0)), strict=True):
                writer.add_scalar(f"{CURVE_TAG}/{s.target}", float(value), int(step))
            write_session(writer, hparams, summary_label(folder) or s.method)
        finally:
            writer.close()
    _overview(tb, list(dict.fromkeys(s.target for s in card.scores)), images)


CURVE_TAG = "scorecard/target_return"
_SUMMARIES = ("report", "tb")  # a summary row's run: <study>/report/tb/<target>/<method>


def summary_label(events: Path) -> str | None:
    """A study's summary row as its HPARAMS row names it (``summary <method> <target>``), from the folder of its
    events; None for any other folder. ``sim2real tensorboard`` names the run so."""
    parts = events.parts
    return f"summary {parts[-1]} {parts[-2]}" if len(parts) >= 4 and parts[-4:-2] == _SUMMARIES else None


def _overview(tb: Path, targets: list[str], images: list[Path]) -> None:
    """``tb/``'s own events: the custom scalars layout (a chart per target) and the report's images."""
    import matplotlib.image
    from torch.utils.tensorboard import SummaryWriter

    for old in tb.glob("events.out.tfevents.*"):
        old.unlink()  # one of each, however often the report is written (and no earlier experiment summary)
    charts = {target: ["Multiline", [f"^{re.escape(f'{CURVE_TAG}/{target}')}$"]] for target in targets}
    writer = SummaryWriter(log_dir=str(tb))
    try:
        writer.add_custom_scalars({"target return by method (IQM over seeds)": charts})
        for image in images:
            pixels = matplotlib.image.imread(image)[..., :3]  # RGB: TensorBoard shows no alpha
            writer.add_image(f"report/{image.stem}", pixels, 0, dataformats="HWC")
    finally:
        writer.close()


def write_report(plan: Plan) -> dict[str, Path]:
    """Writes ``report/`` (``study.md``, ``study.json``, ``scorecard.*``, ``curves.png``, ``sweep_*.png``, ``tb/``)."""
    report = plan.folder / "report"
    report.mkdir(parents=True, exist_ok=True)
    zero_shot = {name: RunFolder(folder).read_eval() for name, folder in plan.sources.items()}
    runs = [read_run(p) for p in plan.transfers if RunFolder(p).finished()]
    reference = zero_shot.get(plan.study.reference or "", {})
    references = {t: float(reference[t]["mean_reward"]) for t in plan.study.targets if t in reference}
    card = score(runs, references=references) if runs else None
    groups = group_runs(runs)
    after = _after_transfer(plan, groups, zero_shot)
    versus = _against_reference(plan, groups, zero_shot)
    sweeps = _sweeps(plan, report)
    identified = _identifications(plan)
    paths = {"md": report / "study.md", "json": report / "study.json"}
    if card is not None:
        written = write_scorecard(card, report, tensorboard=False)
        paths.update({"scorecard_" + key: path for key, path in written.items()})
        images = [paths["scorecard_png"], *(report / row["image"] for row in sweeps)]
        _tensorboard(card, after, report / "tb", [image for image in images if image.is_file()])
        paths["tb"] = report / "tb"
    write_text(paths["md"], _markdown(plan, zero_shot, after, card, versus, sweeps, identified))
    write_json(paths["json"], {
        "study": plan.study.model_dump(mode="json"),
        "folder": str(plan.folder),
        "zero_shot": zero_shot and {s: {d: {k: r[k] for k in ("mean_reward", "ci_low", "ci_high", "iqm_reward",
                                                          "episodes")} for d, r in res.items()}
                                    for s, res in zero_shot.items()},
        "after_transfer": [{**row, "after_transfer": row["after_transfer"] and row["after_transfer"].as_dict()}
                           for row in after],
        "scorecard": card.as_dict() if card else None,
        "reference": [{**row, "return_fraction": row["return_fraction"] and row["return_fraction"].as_dict(),
                       "steps_to_level": row["steps_to_level"].as_dict()} for row in versus],
        "sweeps": sweeps,
        "identified": identified,
    })  # fmt: skip
    return paths


def _identifications(plan: Plan) -> dict[str, dict[str, Any]]:
    """Each identified source's finished identification: what was recorded and what the fit found."""
    found: dict[str, dict[str, Any]] = {}
    for job in plan.jobs:
        if isinstance(job.spec, IdentifySpec) and spec_complete(job):
            report = json.loads((Path(job.folder) / "report.json").read_text())
            found[job.spec.source] = {"folder": job.folder, "record": job.spec.settings.record.model_dump(mode="json"),
                                      "use": job.spec.settings.use,
                                      **{k: report[k] for k in ("parameters", "combinations", "latency", "seconds")}}  # fmt: skip
    return found


def _grid_table(label: str, params: list[str], axes: list[list[float]], values: list[float]) -> list[str]:
    """A sweep's mean returns as a table: one row per value of the first axis (and a column per value of the
    second), the heatmap in text."""
    if len(axes) == 1:
        return [f"| {label}: {params[0]} | mean return |", "|---|---|",
                *(f"| {x:g} | {v:,.0f} |" for x, v in zip(axes[0], values, strict=True))]  # fmt: skip
    columns = len(axes[1])
    lines = [f"| {label}: {params[0]} (rows), {params[1]} (columns) | " + " | ".join(f"{y:g}" for y in axes[1]) + " |",
             "|---|" + "---|" * columns]  # fmt: skip
    for row, x in enumerate(axes[0]):
        cells = values[row * columns : (row + 1) * columns]
        lines.append(f"| {x:g} | " + " | ".join(f"{v:,.0f}" for v in cells) + " |")
    return lines


def _markdown(
    plan: Plan,
    zero_shot: dict[str, dict[str, dict[str, Any]]],
    after: list[dict[str, Any]],
    card: Scorecard | None,
    versus: list[dict[str, Any]],
    sweeps: list[dict[str, Any]],
    identified: dict[str, dict[str, Any]],
) -> str:
    study = plan.study
    domains = list(plan.base.domains())
    lines = [
        f"# Study: {plan.file}",
        "",
        f"{study.env}; sources {', '.join(f'{name} ({study.source_steps(name):,} steps)' for name in study.sources)}; methods "
        f"{', '.join(study.methods)} on {', '.join(study.targets)} ({study.budgets.transfer:,} target steps each, "
        f"seeds {', '.join(map(str, study.seed_list()))}). Runs in `{plan.folder / 'runs'}`.",
        "",
        "## Zero-shot: each source on every domain",
        "",
        f"Mean return over {plan.base.eval.episodes} episodes per domain [bootstrap 95% CI].",
        "",
        "| source | " + " | ".join(domains) + " |",
        "|---|" + "---|" * len(domains),
    ]
    for name in study.sources:
        lines.append(f"| {name} | " + " | ".join(_mean_cell(zero_shot[name].get(d)) for d in domains) + " |")
    for name, found in identified.items():
        lines += _identified_section(name, found)
    lines += [
        "",
        "## After transfer: return on the target",
        "",
        f"Each run's final policy, {plan.base.eval.episodes} episodes; IQM over seeds [stratified bootstrap 95% CI]. "
        "Zero-shot: the source's return on the target before any target training.",
        "",
        "| target | method | seeds | zero-shot | after transfer |",
        "|---|---|---|---|---|",
    ]
    for row in after:
        zs = "-" if row["zero_shot"] is None or row["source"] is None else f"{row['zero_shot']:,.0f}"
        lines.append(f"| {row['target']} | {row['method']} | {row['seeds']} | {zs} | {cell(row['after_transfer'])} |")
    if card is not None:
        body = markdown(card).split("\n", 2)[2]  # without its own title
        lines += ["", "## Scorecard: learning curves on the target", "", body.strip(), "", "![curves](curves.png)"]
    if versus and study.reference is not None:
        ref = study.reference
        lines += [
            "",
            f"## Against the target-trained reference ({ref})",
            "",
            f"`{ref}` trained on the target itself for {study.source_steps(ref):,} steps. Share of its return after "
            f"transfer, and the target steps until the learning curve first reached "
            f"{REFERENCE_FRACTION:.0%} of it (unreached seeds count as the budget, {study.budgets.transfer:,}).",
            "",
            "| target | method | reference return | return / reference | reached 95% | steps to 95% | share of reference's samples |",
            "|---|---|---|---|---|---|---|",
        ]  # fmt: skip
        for row in versus:
            lines.append(
                f"| {row['target']} | {row['method']} | {row['reference_return']:,.0f} | "
                f"{cell(row['return_fraction'], 2)} | {row['reached']}/{row['seeds']} | "
                f"{cell(row['steps_to_level'])} | {row['sample_fraction']:.1%} |"
            )
    for sweep in sweeps:
        lines += _sweep_section(sweep)
    lines += ["", f"TensorBoard: `sim2real tensorboard {plan.folder}` (HPARAMS compares every run and method)."]
    return "\n".join(lines) + "\n"


def _identified_section(name: str, found: dict[str, Any]) -> list[str]:
    record = found["record"]
    policy = "random actions" if record["policy"] == "random" else f"the {record['policy']} source"
    latency = f"; latency {found['latency']} steps" if found["latency"] else ""
    lines = ["", f"## Identified source: {name}", "",
             f"{record['episodes']} episodes of {policy} on {record['target']}, fitted in "
             f"{found['seconds']:.1f} s{latency}; {name} trains on the {found['use']} "
             f"(`{found['folder']}`, report.md there).", "",
             "| parameter | op | estimate | 95% interval | identified |", "|---|---|---|---|---|"]  # fmt: skip
    for param in found["parameters"]:
        low, high = param["interval"]
        lines.append(f"| {param['name']} | {param['op']} | {param['value']:.4g} | [{low:.4g}, {high:.4g}] | "
                     f"{'yes' if param['identified'] else param['note']} |")  # fmt: skip
    return lines


def _sweep_section(sweep: dict[str, Any]) -> list[str]:
    lines = [
        "",
        f"## Robustness sweep: {' x '.join(sweep['params'])}",
        "",
        f"Zero-shot, {sweep['episodes']} episodes per point. Grid IQM: interquartile mean of the points' mean returns.",
        "",
        f"![sweep]({sweep['image']})",
        "",
        "| source | grid IQM | grid mean | IQM ratio to the first | lowest decile | minimum |",
        "|---|---|---|---|---|---|",
    ]  # fmt: skip
    for label, value in sweep["grid_iqm"].items():
        ratio = sweep["ratio_to_first"][label]
        worst = (
            f"{sweep['lowest_decile'][label]:,.0f} | {sweep['minimum'][label]:,.0f}" if "minimum" in sweep else "- | -"
        )
        lines.append(f"| {label} | {value:,.0f} | {sweep['grid_mean'][label]:,.0f} | "
                     f"{'-' if ratio is None else f'{ratio:.2f}x'} | {worst} |")  # fmt: skip
    for label, values in sweep["grid"].items():
        lines += ["", *_grid_table(label, sweep["params"], sweep["values"], values)]
    return lines
