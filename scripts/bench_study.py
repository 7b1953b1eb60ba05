"""Wall-clock time of one study on 1 local worker, on 2, and on Ray with 2, measured in one run.

Prints the speed-up of 2 local workers over 1 (goal >= 1.8x on 2 cores) and the Ray backend's speed against
the local pool with the same workers (goal >= 0.9x), and checks that all three measured the same numbers.

    python scripts/bench_study.py                          # the quick study (about 35 minutes on 2 cores)
    python scripts/bench_study.py --set budgets.source=60000 --set budgets.transfer=20000   # a shorter check
    python scripts/bench_study.py --keep /tmp/bench     # keeps the three studies and their reports
    python scripts/bench_study.py --json benchmarks/results/study_scaling.json   # the figures and verdicts
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from results import command_line, goal, write_results

ROOT = Path(__file__).resolve().parents[1]


def run(config: Path, out: Path, overrides: list[str], *backend: str) -> float:
    command = [sys.executable, "-m", "sim2real", "study", str(config), "--output", str(out), *backend]
    command += [item for override in overrides for item in ("--set", override)]
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def numbers(out: Path) -> dict:
    report = json.loads((out / "report" / "study.json").read_text())
    return {key: report[key] for key in ("zero_shot", "after_transfer", "scorecard", "sweeps")}


WALL_TIME_GOAL = 600.0  # seconds: the README's command on 2 cores, with 2 workers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, default=ROOT / "configs/inverted_double_pendulum/study.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="FIELD=VALUE")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray backend")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="keep the studies in DIR/study_<n> (default: deleted)")
    parser.add_argument("--json", type=Path, help="also write the figures and the goals' verdicts here")
    args = parser.parse_args()
    if args.keep is not None and args.keep.exists() and any(args.keep.iterdir()):
        sys.exit(f"error: --keep {args.keep}: not empty; give a new folder (a study there would be skipped, not timed)")

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        variants = {"local, 1 worker": ["--workers", "1"], "local, 2 workers": ["--workers", "2"]}
        if not args.no_ray:
            variants["ray, 2 workers"] = ["--backend", "ray", "--workers", "2"]
        seconds: dict[str, float] = {}
        results: dict[str, dict] = {}
        for index, (name, backend) in enumerate(variants.items()):
            out = folder / f"study_{index}"
            seconds[name] = run(args.config, out, args.overrides, *backend)
            results[name] = numbers(out)
            print(f"{name:>18}: {seconds[name]:7.1f} s", flush=True)
        print(f"speed-up, 2 local workers over 1: {seconds['local, 1 worker'] / seconds['local, 2 workers']:.2f}x "
              "(goal >= 1.8x)")  # fmt: skip
        if "ray, 2 workers" in seconds:
            print(f"Ray vs the local pool, 2 workers each: {seconds['local, 2 workers'] / seconds['ray, 2 workers']:.2f}x "
                  "(goal >= 0.9x; above 1 is faster)")  # fmt: skip
        reference = results["local, 1 worker"]
        same = all(r == reference for r in results.values())
        print(f"same numbers from every backend and worker count: {'yes' if same else 'NO'}")
    if args.json is not None:
        figures = {
            "command": command_line(),
            "config": str(args.config),
            "overrides": args.overrides,
            "seconds": {k: round(v, 1) for k, v in seconds.items()},
            "same_numbers": same,
        }
        write_results(args.json, {**figures, "goals": goals(figures)})


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """The goals' verdicts from the timings (``python scripts/results.py FILE`` judges a file again)."""
    seconds = data["seconds"]
    verdicts = {
        "local_scaling": goal(
            "the study's wall time on 1 local worker over 2 (2 cores)",
            seconds["local, 1 worker"] / seconds["local, 2 workers"],
            at_least=1.8,
        ),
        "wall_time": goal(
            "the study's wall time on 2 local workers (2 cores), seconds",
            seconds["local, 2 workers"],
            at_most=WALL_TIME_GOAL,
            unit="s",
        ),
        "same_numbers": goal(
            "backends and worker counts whose reports are equal, field by field",
            len(seconds) if data["same_numbers"] else 0,
            at_least=len(seconds),
            unit="runs",
        ),
    }
    if "ray, 2 workers" in seconds:
        verdicts["ray_vs_local"] = goal(
            "the local pool's wall time over Ray's, 2 workers each",
            seconds["local, 2 workers"] / seconds["ray, 2 workers"],
            at_least=0.9,
        )
    return verdicts


if __name__ == "__main__":
    main()
