"""The transfer scorecard: learning curves of transfer runs grouped by method, scored against scratch.

Runs are transfer run folders (``sim2real transfer``). Each one's learning curve on its target comes from
its curve file (evaluations with the same seeds at every point, from step 0) or, failing that, its monitor files
(training episodes, averaged in windows). A curve is what the run would hand over (the guard's best policy with
``keep: best``) by every target step it took, evaluations and recalibration included (:func:`curve_of`), so a
method is charged all the target data it used. Per target and method, across seeds:

- **jumpstart**: the return at step 0 minus scratch's (IQM over scratch's seeds);
- **final return** (asymptotic performance): the last evaluation of the policy the run hands over;
- **time to threshold**: the first step reaching the threshold (default: scratch's final IQM less 10% of its
  size, which is 90% of it for positive returns); a seed that never reaches it counts as the budget, and the
  number that did is reported;
- **area**: the mean return over the budget (area under the curve / steps);
- **transfer ratio**: area / scratch's area (IQM over its seeds), both measured from ``min(0, the lowest return
  of the target's runs)`` so the ratio keeps its meaning when returns are negative; below 1 the source cost
  more than it gave.

All of them are measured over the budget: the steps every run of the target reached (longer curves are cut
there, so runs of unequal length compare on equal terms).

Each is an interquartile mean over seeds with a stratified bootstrap 95% CI (resampling seeds within each
target). A method whose transfer-ratio interval lies wholly below 1 is flagged as negative transfer.
"""

from __future__ import annotations

import csv
import glob
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sim2real.errors import Sim2RealError
from sim2real.evaluation.metrics import (
    Curve,
    Estimate,
    area,
    common_end,
    estimate,
    final_return,
    iqm,
    time_to_threshold,
)
from sim2real.io import atomic_path, write_json, write_text
from sim2real.logging import write_session
from sim2real.runs import RunFolder

METRICS = ("jumpstart", "final_return", "time_to_threshold", "area", "transfer_ratio")
# With a target-trained reference: the final return as its share, and the target steps to 95% of its return.
REFERENCE_METRICS = ("fraction_of_reference", "steps_to_reference")
REFERENCE_FRACTION = 0.95
_LABELS = {
    "jumpstart": "jumpstart",
    "final_return": "final return",
    "time_to_threshold": "steps to threshold",
    "area": "area (mean return)",
    "transfer_ratio": "transfer ratio",
    "fraction_of_reference": "return / reference",
    "steps_to_reference": "steps to 95% of reference",
}


@dataclass
class Run:
    path: Path
    target: str
    method: str
    source: str  # the experiment name, which tells sources apart (nominal, randomized)
    seed: int
    curve: Curve


def _monitor_curve(run_dir: Path, window: int = 20) -> Curve | None:
    """Training episode returns from the Monitor files, merged by time and averaged ``window`` at a time."""
    episodes: list[tuple[float, float, int]] = []  # (wall time, return, length)
    for path in sorted(RunFolder(run_dir).monitor.glob("*.monitor.csv")):
        with path.open() as handle:
            handle.readline()  # the JSON header line
            episodes += [(float(r["t"]), float(r["r"]), int(r["l"])) for r in csv.DictReader(handle)]
    if len(episodes) < window:
        return None
    episodes.sort()
    steps = np.cumsum([e[2] for e in episodes])
    returns = np.array([e[1] for e in episodes])
    ends = range(window, len(episodes) + 1, window)
    return Curve.of(
        [float(steps[end - 1]) for end in ends], [float(returns[end - window : end].mean()) for end in ends]
    )


class NotATransferRun(Sim2RealError):
    """A run folder that trained a source (no ``transfer`` section): a pattern over a runs tree meets them."""


def curve_of(points: list[dict[str, Any]]) -> Curve:
    """What a run delivered against what it cost: at each point, the return of the policy the run would hand
    over then (``kept_reward``: the guard's best with ``keep: best``) by every target step taken so far
    (``target_steps``: training, recalibration and every evaluation). Curves of earlier versions hold neither:
    their returns by training step."""
    return Curve.of([p.get("target_steps", p["step"]) for p in points],
                    [p.get("kept_reward", p["mean_reward"]) for p in points])  # fmt: skip


def read_run(run_dir: Path) -> Run:
    """One transfer run's identity (target, method, source experiment, seed) and learning curve."""
    run = RunFolder(run_dir)
    config = run.saved_config()
    if config is None and not run.config_file.is_file():
        raise Sim2RealError(f"{run_dir}: unreadable {run.config_file.name} (no such file)")
    transfer = config.get("transfer") if isinstance(config, dict) else None
    if not isinstance(transfer, dict):
        raise NotATransferRun(f"{run_dir}: not a transfer run (its config has no transfer section)")
    curve = None
    if run.curve_file.is_file():
        try:
            curve = curve_of(run.curve_points())
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise Sim2RealError(f"{run.curve_file}: unreadable learning curve ({error})") from None
    else:
        curve = _monitor_curve(run_dir)
    if curve is None:
        raise Sim2RealError(f"{run_dir}: no learning curve (no {run.curve_file.name} and too few monitored episodes)")
    return Run(
        path=run_dir,
        target=str(transfer.get("target")),
        method=str(transfer.get("variant") or transfer.get("method")),
        source=str(config.get("run", {}).get("experiment", "default")),
        seed=int(config.get("train", {}).get("seed", 0)),
        curve=curve,
    )


def find_runs(patterns: list[str], skipped: list[str] | None = None) -> list[Run]:
    """Transfer runs under the given folders or glob patterns (a folder is searched for ``seed_*`` runs).

    Source runs among them are passed over. A transfer run that cannot be read (a corrupt curve, no config)
    is an error naming its file, since scoring without it would change the result unseen; with ``skipped``
    (a list), it is left out and its error is appended there instead.
    """
    folders: list[Path] = []
    for pattern in patterns:
        matches = [Path(m) for m in sorted(glob.glob(pattern))] if any(c in pattern for c in "*?[") else [Path(pattern)]
        if not matches or not any(m.exists() for m in matches):
            raise Sim2RealError(f"{pattern}: no such run folder")
        for match in matches:
            if RunFolder.is_run(match):
                folders.append(match)
            elif match.is_dir():
                folders += RunFolder.find(match)
    runs = []
    for folder in dict.fromkeys(folders):
        try:
            runs.append(read_run(folder))
        except NotATransferRun:
            if len(patterns) == 1 and folder == Path(patterns[0]):
                raise
        except Sim2RealError as error:
            if skipped is None:
                raise
            skipped.append(str(error))
    if not runs:
        raise Sim2RealError(f"{', '.join(patterns)}: no transfer runs with a learning curve found")
    return runs


@dataclass(frozen=True)
class Group:
    """The runs scored together: one method from one source (none for scratch) on one target, over seeds."""

    target: str
    method: str
    source: str | None
    label: str  # "freeze", or "randomized/freeze" when several sources are compared


def group_runs(runs: list[Run]) -> dict[Group, list[Run]]:
    """Runs grouped by target, source and method (scratch first within a target), seeds in order."""
    several_sources = len({r.source for r in runs if r.method != "scratch"}) > 1
    groups: dict[Group, list[Run]] = defaultdict(list)
    for run in sorted(runs, key=lambda r: (r.target, r.method != "scratch", r.method, r.source, r.seed)):
        scratch = run.method == "scratch"
        label = f"{run.source}/{run.method}" if several_sources and not scratch else run.method
        groups[Group(run.target, run.method, None if scratch else run.source, label)].append(run)
    return groups


@dataclass
class MethodScore:
    target: str
    method: str  # the group's label: "freeze", or "randomized/freeze" when several sources are compared
    seeds: int
    estimates: dict[str, Estimate | None] = field(default_factory=dict)
    reached: int = 0  # seeds that reached the threshold
    negative_transfer: bool = False
    group: Group | None = None
    reached_reference: int | None = None  # seeds that reached 95% of the reference's return (with a reference)

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "method": self.method,
            "source": self.group.source if self.group else None,
            "seeds": self.seeds,
            "reached_threshold": self.reached,
            "reached_reference": self.reached_reference,
            "negative_transfer": self.negative_transfer,
            **{name: (e.as_dict() if e else None) for name, e in self.estimates.items()},
        }


@dataclass
class Scorecard:
    scores: list[MethodScore]
    thresholds: dict[str, float | None]  # per target
    budgets: dict[str, float]  # per target: the steps every run reached
    curves: dict[tuple[str, str], list[Curve]]
    notes: list[str]
    runs: list[Run] = field(default_factory=list)
    references: dict[str, float] = field(default_factory=dict)  # per target: the target-trained policy's return

    def as_dict(self) -> dict[str, Any]:
        return {
            "thresholds": self.thresholds,
            "budgets": self.budgets,
            "references": self.references,
            "methods": [s.as_dict() for s in self.scores],
            "notes": self.notes,
        }


def score(
    runs: list[Run],
    threshold: float | None = None,
    threshold_fraction: float = 0.9,
    seed: int = 0,
    references: dict[str, float] | None = None,
) -> Scorecard:
    """Scores every (target, method) group of ``runs`` against the scratch runs of the same target.

    ``references`` (per target, the final return of a policy trained on the target itself) adds each method's
    final return as a share of it and the target steps until the curve first reached 95% of it (a seed that
    never does counts as the budget; how many did is reported).
    """
    references = dict(references or {})
    groups = group_runs(runs)
    notes: list[str] = []
    thresholds: dict[str, float | None] = {}
    budgets: dict[str, float] = {}
    scores = []
    for target in dict.fromkeys(g.target for g in groups):
        target_runs = [r for r in runs if r.target == target]
        budget = common_end([r.curve for r in target_runs])
        budgets[target] = budget
        cut = {id(r): r.curve.until(budget) for r in target_runs}
        floor = min(0.0, min(float(cut[id(r)].returns.min()) for r in target_runs))
        scratch = next((members for g, members in groups.items() if g.target == target and g.method == "scratch"), [])
        if scratch:
            scratch_start = float(iqm([cut[id(r)].start for r in scratch]))
            scratch_final = float(iqm([final_return(cut[id(r)]) for r in scratch]))
            scratch_area = float(iqm([area(cut[id(r)], budget) for r in scratch])) - floor
        else:
            notes.append(f"{target}: no scratch runs, so no jumpstart, default threshold or transfer ratio")
            scratch_start = scratch_final = scratch_area = float("nan")
        level = threshold
        if level is None and scratch:
            level = scratch_final - (1 - threshold_fraction) * abs(scratch_final)
        thresholds[target] = level
        for group, members in groups.items():
            if group.target != target:
                continue
            method = group.label
            values: dict[str, list[float]] = defaultdict(list)
            reached = 0
            reference = references.get(target)
            reached_reference = 0 if reference is not None else None
            for run in members:
                curve = cut[id(run)]
                values["final_return"].append(final_return(curve))
                values["area"].append(area(curve, budget))
                if scratch:
                    values["jumpstart"].append(curve.start - scratch_start)
                    ratio = (area(curve, budget) - floor) / scratch_area if scratch_area > 0 else np.nan
                    values["transfer_ratio"].append(ratio)
                if level is not None:
                    hit = time_to_threshold(curve, level)
                    reached += hit is not None
                    values["time_to_threshold"].append(hit if hit is not None else budget)
                if reference is not None and reached_reference is not None and reference != 0:
                    values["fraction_of_reference"].append(final_return(curve) / reference)
                    hit = time_to_threshold(curve, reference - (1 - REFERENCE_FRACTION) * abs(reference))
                    reached_reference += hit is not None
                    values["steps_to_reference"].append(hit if hit is not None else budget)
            if len(members) < 2:
                notes.append(f"{target}/{method}: {len(members)} seed, so no confidence interval (needs 2)")
            result = MethodScore(target, method, len(members), reached=reached, group=group,
                                 reached_reference=reached_reference)  # fmt: skip
            for name in (*METRICS, *(REFERENCE_METRICS if reference is not None else ())):
                result.estimates[name] = estimate([values[name]], seed) if values.get(name) else None
            ratio_estimate = result.estimates.get("transfer_ratio")
            result.negative_transfer = (
                group.method != "scratch" and ratio_estimate is not None and ratio_estimate.below(1.0)
            )
            scores.append(result)
    curves = {(s.target, s.method): [r.curve for r in groups[s.group]] for s in scores if s.group is not None}
    return Scorecard(scores, thresholds, budgets, curves, notes, runs, references)


# --------------------------------------------------------------------------------------------- outputs


def cell(e: Estimate | None, digits: int = 0) -> str:
    """An estimate as a table cell: ``IQM [low, high]``."""
    if e is None:
        return "-"
    text = f"{e.iqm:,.{digits}f}"
    return text + (f" [{e.ci[0]:,.{digits}f}, {e.ci[1]:,.{digits}f}]" if e.ci else "")


def header(card: Scorecard) -> list[str]:
    """The table's columns: the two reference columns only when the card has a reference."""
    extra = [_LABELS[m] for m in REFERENCE_METRICS] if card.references else []
    return [*HEADER, *extra]


def rows(card: Scorecard) -> list[list[str]]:
    out = []
    for s in card.scores:
        e = s.estimates
        ttt = cell(e.get("time_to_threshold"))
        if e.get("time_to_threshold") is not None:
            ttt += f" ({s.reached}/{s.seeds} reached)"
        row = [
            s.target,
            s.method + (" (negative transfer)" if s.negative_transfer else ""),
            str(s.seeds),
            cell(e.get("jumpstart")),
            cell(e.get("final_return")),
            ttt,
            cell(e.get("area")),
            cell(e.get("transfer_ratio"), 2),
        ]
        if card.references:
            steps = cell(e.get("steps_to_reference"))
            if s.reached_reference is not None:
                steps += f" ({s.reached_reference}/{s.seeds} reached)"
            row += [cell(e.get("fraction_of_reference"), 2), steps]
        out.append(row)
    return out


HEADER = ["target", "method", "seeds", *(_LABELS[m] for m in ("jumpstart", "final_return", "time_to_threshold",
          "area", "transfer_ratio"))]  # fmt: skip


def markdown(card: Scorecard) -> str:
    lines = ["# Transfer scorecard", ""]
    lines.append("Interquartile mean over seeds, [stratified bootstrap 95% CI]. Threshold per target: " + ", ".join(
        f"{t} {v:,.0f}" if v is not None else f"{t} none" for t, v in card.thresholds.items()) + "; shared budget: "
        + ", ".join(f"{t} {b:,.0f} steps" for t, b in card.budgets.items()) + ".")  # fmt: skip
    columns = header(card)
    if card.references:
        lines.append("Reference (trained on the target itself), final return per target: "
                     + ", ".join(f"{t} {v:,.0f}" for t, v in card.references.items()) + ".")  # fmt: skip
    lines += ["", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(row) + " |" for row in rows(card)]
    if card.notes:
        lines += ["", *(f"- {note}" for note in card.notes)]
    return "\n".join(lines) + "\n"


def curve_grid(curves: list[Curve]) -> tuple[np.ndarray, np.ndarray]:
    """The seeds' curves on one grid of target steps, up to where every seed got: (steps, values per seed)."""
    end = common_end(curves)
    grid = np.unique(np.concatenate([c.steps[c.steps <= end] for c in curves]))
    return grid, np.array([c.at(grid) for c in curves])


def curves_figure(card: Scorecard) -> Any:
    """Learning curves per target: each method's IQM over seeds with a bootstrap 95% band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sim2real.evaluation.metrics import stratified_ci

    targets = list(dict.fromkeys(s.target for s in card.scores))
    figure, axes_list = plt.subplots(1, len(targets), figsize=(6.4 * len(targets), 4.4), squeeze=False,
                                     layout="constrained")  # fmt: skip
    for axes, target in zip(axes_list[0], targets, strict=True):
        for s in (s for s in card.scores if s.target == target):
            curves = card.curves[(target, s.method)]
            grid, values = curve_grid(curves)
            centre = np.asarray(iqm(values, axis=0))
            axes.plot(grid, centre, label=s.method)
            if len(curves) >= 2:
                bands = [stratified_ci([values[:, i].tolist()], resamples=500) for i in range(grid.size)]
                low = [b[0] if b else np.nan for b in bands]
                high = [b[1] if b else np.nan for b in bands]
                axes.fill_between(grid, low, high, alpha=0.2)
        level = card.thresholds.get(target)
        if level is not None:
            axes.axhline(level, color="grey", linestyle="--", linewidth=1, label="threshold")
        axes.set_title(target)
        axes.set_xlabel("target steps")
        axes.set_ylabel("return on target (IQM over seeds, 95% CI)")
        axes.grid(alpha=0.3)
        axes.legend()
    return figure


def write_scorecard(card: Scorecard, folder: Path, tensorboard: bool = True) -> dict[str, Path]:
    """``scorecard.md``, ``scorecard.json``, ``curves.png`` and a TensorBoard folder ``tb/<target>/<method>``
    (the metrics as scalars with each method's HPARAMS, so the dashboard sorts methods by them; a study
    writes its own, ``tensorboard=False``)."""
    import matplotlib.pyplot as plt
    from torch.utils.tensorboard import SummaryWriter

    folder.mkdir(parents=True, exist_ok=True)
    paths = {"md": folder / "scorecard.md", "json": folder / "scorecard.json", "png": folder / "curves.png",
             "tb": folder / "tb"}  # fmt: skip
    write_text(paths["md"], markdown(card))
    write_json(paths["json"], card.as_dict())
    figure = curves_figure(card)
    with atomic_path(paths["png"]) as tmp:
        figure.savefig(tmp, dpi=120, format="png")
    plt.close(figure)
    if not tensorboard:
        del paths["tb"]
        return paths
    for s in card.scores:
        run = paths["tb"] / s.target / s.method.replace("/", "_")
        metrics = {f"scorecard/{name}": e.iqm for name, e in s.estimates.items() if e is not None}
        writer = SummaryWriter(log_dir=str(run))
        try:
            for tag, number in metrics.items():
                writer.add_scalar(tag, number, 0)
            hparams: dict[str, bool | int | float | str] = {"method": s.method, "target": s.target, "seeds": s.seeds}
            write_session(writer, hparams, f"scorecard {s.method} {s.target}")
        finally:
            writer.close()
    return paths
