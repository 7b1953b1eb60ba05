"""Is a source trained on the identified domain ready for the real target, zero-shot? Against the nominal and
randomized sources, and as a share of a source trained on the target itself.

    python scripts/bench_identified_source.py --config configs/inverted_double_pendulum/identify.yaml \
        --group identified=RUN [RUN ...] --group nominal=RUN ... --group randomized=RUN ... \
        --reference RUN [RUN ...] [--episodes 10] [--json benchmarks/results/identified_source.json]

Each run (a trained source; 5 seeds per group) is evaluated on the config's ``hidden`` target (the target the
identification recorded on, whose values it was not told) over 10 episodes. Per group: the IQM of the runs'
mean returns with a bootstrap 95% CI over seeds, and that IQM as a share of the reference group's. The goal
(issue 15): the identified source at >= 90% of the reference.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from results import command_line, goal, write_results

from sim2real.api import evaluate
from sim2real.config import load_config
from sim2real.evaluation.metrics import estimate

GOAL = 0.90


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the config whose 'hidden' target to evaluate on")
    parser.add_argument("--group", action="append", nargs="+", default=[], metavar="LABEL=RUN",
                        help="a label and its runs (one per seed)")  # fmt: skip
    parser.add_argument("--reference", nargs="+", type=Path, required=True, help="runs trained on the target")
    parser.add_argument("--domain", default="hidden")
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/identified_source.json"))
    args = parser.parse_args()
    config = load_config(args.config)
    groups: dict[str, list[Path]] = {"reference": list(args.reference)}
    for items in args.group:
        label, first = items[0].split("=", 1)
        groups[label] = [Path(first), *(Path(item) for item in items[1:])]
    returns: dict[str, list[float]] = {}
    for label, runs in groups.items():
        returns[label] = []
        for run in runs:
            (result,) = evaluate(run, config, domains=[args.domain], episodes=args.episodes, seed=0)
            returns[label].append(float(result.mean_reward))
            print(f"{label:12s} {run}: {result.mean_reward:,.0f}", flush=True)
    reference = estimate([returns["reference"]]).iqm
    summary = {}
    for label, values in returns.items():
        score = estimate([values])
        summary[label] = {**score.as_dict(), "fraction_of_reference": score.iqm / reference,
                          "runs": [str(run) for run in groups[label]]}  # fmt: skip
    figures = {"command": command_line(), "config": str(args.config), "domain": args.domain,
               "episodes": args.episodes, "groups": summary}  # fmt: skip
    write_results(args.json, {**figures, "goals": goals(figures)})
    for label, row in summary.items():
        print(f"{label:12s} IQM {row['iqm']:8,.0f} [{row['ci_low'] or 0:,.0f}, {row['ci_high'] or 0:,.0f}]  "
              f"{100 * row['fraction_of_reference']:5.1f}% of the reference")  # fmt: skip
    print(f"wrote {args.json}")


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """The goal's verdict from the groups (``python scripts/results.py FILE`` judges a file again)."""
    identified = data["groups"].get("identified", {}).get("fraction_of_reference")
    return {
        "identified_vs_reference": goal(
            f"the source trained on the identified domain, zero-shot on "
            f"{data['domain']}, as a share of the target-trained reference's return",
            identified,
            at_least=GOAL,
            unit="%",
        )
    }


if __name__ == "__main__":
    main()
