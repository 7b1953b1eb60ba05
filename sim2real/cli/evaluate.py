"""``sim2real evaluate``, ``sweep`` and ``compare``: saved models and runs scored, tables printed, results written."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from rich.console import Console

from sim2real.cli.options import check_output, evaluation_options, finite, non_negative, parse_sweep_param


def add_evaluate(commands: Any) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="zero-shot evaluation of a saved model on a config's domains",
        description="Evaluate a saved model (run folder or zip, read weights-only) on a config's source and targets: "
        "mean, std, interquartile mean and bootstrap 95% CI of the return per domain. Saved normalization "
        "statistics are applied in evaluation mode (not updated; returns are the env's own rewards).",
    )
    evaluate.add_argument("model", type=Path, metavar="MODEL", help="run folder or model zip")
    evaluation_options(
        evaluate, "run folder's config.yaml", None, "episodes per domain (default: the config's eval.episodes)"
    )
    evaluate.add_argument("--domain", action="append", metavar="NAME", help="only this domain (repeatable)")
    evaluate.add_argument("--stochastic", action="store_true", help="sample actions instead of the mean action")
    evaluate.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON")
    evaluate.add_argument("--csv", type=Path, metavar="PATH", help="also write one CSV row per domain")
    evaluate.set_defaults(run=run_evaluate)


def add_sweep(commands: Any) -> None:
    sweep = commands.add_parser(
        "sweep",
        help="evaluate saved models over a 1-D or 2-D grid of dynamics shifts",
        description="Evaluate one or more saved models over a grid of dynamics shifts (both ends of each range "
        "included) and write sweep.csv, sweep.json and sweep.png (a curve with a 95% CI band, or heatmaps); the "
        "figure and values also go to each model's TensorBoard run (or --logdir).",
    )
    sweep.add_argument("models", type=Path, nargs="+", metavar="MODEL", help="run folders or model zips")
    sweep.add_argument(
        "--param",
        action="append",
        required=True,
        metavar="SPEC",
        help="one axis as a YAML mapping, e.g. '{quantity: body_mass, select: torso, scale: [0.5, 2.0], points: 7}' "
        "(give one or two)",
    )
    evaluation_options(sweep, "first model's run config", 10, "episodes per grid point (default: 10)")
    sweep.add_argument(
        "--domain",
        metavar="NAME",
        help="apply the shifts on top of this domain of the config: source or a target "
        "(default: none, the unchanged model)",
    )
    sweep.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: <run>/sweeps/<params>)")
    sweep.add_argument("--logdir", type=Path, metavar="DIR", help="TensorBoard folder (default: each run's tb/)")
    sweep.set_defaults(run=run_sweep)


def add_compare(commands: Any) -> None:
    compare = commands.add_parser(
        "compare",
        help="score transfer runs against scratch: jumpstart, final return, time to threshold, transfer ratio",
        description="Read the learning curves of transfer runs (folders or glob patterns; a folder is searched "
        "for runs), group them by target and method, and score each method against the scratch runs of its "
        "target across seeds (interquartile mean, stratified bootstrap 95% CI). Writes scorecard.md, "
        "scorecard.json, curves.png and a TensorBoard folder for the HPARAMS dashboard.",
    )
    compare.add_argument("runs", nargs="+", metavar="RUN_DIR_OR_GLOB", help="transfer run folders or patterns")
    compare.add_argument(
        "--threshold", type=finite, help="return that counts as reached (default: a fraction of scratch)"
    )
    compare.add_argument(
        "--threshold-fraction",
        type=finite,
        default=0.9,
        help="threshold as a fraction of scratch's final return (default: 0.9)",
    )
    compare.add_argument(
        "--reference",
        type=Path,
        metavar="RUN_DIR",
        help="a run trained on the target itself: adds the return as a share of its and the steps to 95%% of it",
    )
    compare.add_argument(
        "--skip-unreadable",
        action="store_true",
        help="leave out transfer runs that cannot be read (listed on stderr) instead of stopping at the first",
    )
    compare.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: scorecard/ beside the runs)")
    compare.add_argument("--seed", type=non_negative, default=0, help="bootstrap seed (default: 0)")
    compare.set_defaults(run=run_compare)


def run_evaluate(args: argparse.Namespace, console: Console) -> int:
    from sim2real.api import evaluate, run_config
    from sim2real.evaluation import print_results, write_results

    check_output(args.json, "--json")
    check_output(args.csv, "--csv")
    config = run_config(args.model, args.config, args.overrides)
    results = evaluate(args.model, config, domains=args.domain, episodes=args.episodes, seed=args.seed,
                       deterministic=not args.stochastic, n_envs=args.n_envs, trust_source=args.trust_source)  # fmt: skip
    print_results(results, console)
    meta = {"model": str(_model_zip(args.model)), "seed": args.seed, "deterministic": not args.stochastic}
    write_results(results, meta, json_path=args.json, csv_path=args.csv)
    return 0


def _model_zip(path: Path) -> Path:
    from sim2real.runs import RunFolder

    return RunFolder.of_model(path)[0]


def run_sweep(args: argparse.Namespace, console: Console) -> int:
    from rich.progress import Progress

    from sim2real.api import model_labels, run_config, sweep
    from sim2real.evaluation.sweep import log_sweep, write_sweep
    from sim2real.runs import RunFolder

    params = [parse_sweep_param(text) for text in args.param]
    check_output(args.out, "--out", folder=True)
    check_output(args.logdir, "--logdir", folder=True)
    config = run_config(args.models[0], args.config, args.overrides)
    labels = model_labels(args.models)
    with Progress(console=console, transient=True) as progress:
        task = progress.add_task("sweeping", total=None)
        result = sweep(args.models, params, config, domain=args.domain, episodes=args.episodes, seed=args.seed,
                       n_envs=args.n_envs, trust_source=args.trust_source,
                       progress=lambda done, total: progress.update(task, completed=done, total=total))  # fmt: skip
    first = args.models[0]
    default_root = first if first.is_dir() and len(args.models) == 1 else Path("sweeps")
    out = args.out or (default_root / ("sweeps" if default_root is first else "") / result.tag())
    paths = write_sweep(result, out)
    for index, path in enumerate(args.models):
        if args.logdir is not None:
            log_sweep(result, index, args.logdir / labels[index].replace("/", "_"))
        elif path.is_dir():
            log_sweep(result, index, RunFolder(path).tensorboard)
    _print_sweep(result, console)
    console.print(f"wrote {paths['csv']}, {paths['json']} and {paths['png']}", soft_wrap=True)
    return 0


def _print_sweep(result: Any, console: Console) -> None:
    from rich.table import Table

    from sim2real.evaluation.metrics import grid_statistics

    if not console.is_terminal:
        console.width = max(console.width, 130)
    table = Table(title=f"Sweep: mean return ({result.episodes} episodes per point)")
    for param in result.params:
        table.add_column(param.label(), justify="right")
    for model in result.models:
        table.add_column(model.label, justify="right")
    for index, point in enumerate(result.points()):
        table.add_row(*(f"{v:g}" for v in point), *(f"{m.results[index].mean_reward:.1f}" for m in result.models))
    console.print(table)
    summary = Table(title="Over the grid: IQM and mean, and the worst points")
    for column in ("model", "grid IQM", "grid mean", "lowest decile", "minimum"):
        summary.add_column(column, justify="left" if column == "model" else "right")
    for model in result.models:
        stats = grid_statistics([r.mean_reward for r in model.results])
        summary.add_row(model.label, *(f"{stats[k]:.1f}" for k in ("iqm", "mean", "lowest_decile", "minimum")))
    console.print(summary)


def run_compare(args: argparse.Namespace, console: Console) -> int:
    from rich.table import Table

    from sim2real.api import compare
    from sim2real.evaluation.scorecard import header, rows, write_scorecard

    check_output(args.out, "--out", folder=True)

    card = compare(args.runs, threshold=args.threshold, threshold_fraction=args.threshold_fraction, seed=args.seed,
                   reference=args.reference, skip_unreadable=args.skip_unreadable)  # fmt: skip
    if not console.is_terminal:
        console.width = max(console.width, 160)
    table = Table(title="Transfer scorecard (IQM over seeds, [95% CI])")
    for column in header(card):
        table.add_column(column, justify="left" if column in ("target", "method") else "right")
    for row in rows(card):
        table.add_row(*row, style="red" if "negative transfer" in row[1] else None)
    console.print(table)
    err = Console(stderr=True)
    for note in card.notes:
        err.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    parents = [r.path.parent.parent for r in card.runs]
    out = args.out or Path(os.path.commonpath([str(p) for p in parents])) / "scorecard"
    paths = write_scorecard(card, out)
    console.print(
        f"wrote {paths['md']}, {paths['json']}, {paths['png']}; sim2real tensorboard {paths['tb']}", soft_wrap=True
    )
    return 0
