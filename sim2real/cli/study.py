"""``sim2real study``: a whole transfer study from one file, then its report."""

from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from rich.console import Console

from sim2real.cli.options import DEFAULT_STUDY, add_set, check_output, default_config, positive
from sim2real.errors import Sim2RealError


def add_study(commands: Any) -> None:
    study = commands.add_parser(
        "study",
        help="pretrain sources, transfer with every method to every target over seeds, and report",
        description="Run a whole transfer study from one file: pretrain the sources, train every method x target x "
        "seed (scratch included), evaluate zero-shot and after transfer, run the sweeps, and write "
        "<study>/report/ (study.md, study.json, scorecard, curves and heatmap PNGs; TensorBoard over the whole "
        "folder). Running it again skips finished runs and resumes interrupted ones.",
    )
    study.add_argument("config", nargs="?", default=None, help=f"study YAML (default: {DEFAULT_STUDY})")
    study.add_argument(
        "--workers", type=positive, help="runs at a time (default: the machine's cores, or the Ray cluster's CPUs)"
    )
    study.add_argument("--backend", choices=("local", "ray"), default="local", help="local process pool or Ray")
    study.add_argument("--address", metavar="HOST:PORT", help="Ray cluster to join (default: start one here)")
    study.add_argument("--output", type=Path, metavar="DIR", help="study folder (default: the file's output)")
    add_set(study, "budgets.transfer=20000", what="study")
    study.add_argument("--dry-run", action="store_true", help="print the plan (what runs, resumes, is skipped) only")
    study.set_defaults(run=run_study)


def run_study(args: argparse.Namespace, console: Console) -> int:
    from sim2real.config import load_study
    from sim2real.study import plan_study, study_lock
    from sim2real.study.backends import execute, make_backend
    from sim2real.study.report import write_report

    file = Path(args.config or default_config(DEFAULT_STUDY))
    check_output(args.output, "--output", folder=True)
    plan = plan_study(file, load_study(file, args.overrides), args.output)
    counts = Counter(plan.status.values())
    console.print(
        f"study {plan.folder}: {len(plan.jobs)} jobs; {counts['done']} done, {counts['resume']} to resume, "
        f"{counts['new'] + counts['restart']} to run",
        soft_wrap=True,
        highlight=False,
    )
    if args.dry_run:
        for job in plan.jobs:
            status = plan.status[job.name]
            step = f" from step {plan.resume_step[job.name]:,}" if status == "resume" else ""
            where = Path(job.folder).relative_to(plan.folder)
            console.print(f"  {status:>7}{step}: {job.name} -> {where}", soft_wrap=True, highlight=False)
        return 0
    failed: dict[str, str] = {}
    if plan.pending():
        backend = make_backend(args.backend, args.workers, args.address)
        try:
            with study_lock(plan.folder):
                # Planned before the lock, so a bad study fails without touching the folder; planned again
                # under it, so what another study process did meanwhile counts.
                plan = plan_study(file, load_study(file, args.overrides), args.output)
                started = time.perf_counter()
                failed = execute(plan, backend, console)
                console.print(
                    f"ran {len(plan.pending())} jobs in {time.perf_counter() - started:,.0f} s", highlight=False
                )
        finally:
            backend.close()
    paths = write_report(plan)
    console.print(f"report: {paths['md']} (sim2real tensorboard {plan.folder})", soft_wrap=True, highlight=False)
    if failed:
        first, error = next(iter(failed.items()))
        raise Sim2RealError(f"{len(failed)} of {len(plan.jobs)} jobs failed; first: {first}: {error}")
    return 0
