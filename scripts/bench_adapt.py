"""The sim-to-real loop (``sim2real adapt``) on a stand-in robot, against every other way to spend the same
target steps, and against a policy trained on the stand-in itself (issue 28).

    python scripts/bench_adapt.py --config configs/inverted_double_pendulum/stand_in.yaml \\
        --reference configs/inverted_double_pendulum/stand_in_trained.yaml \\
        --source configs/inverted_double_pendulum/nominal.yaml \\
        --randomized configs/inverted_double_pendulum/randomized.yaml \\
        --seeds 5 --out studies/adapt_inverted_double_pendulum --json benchmarks/results/adapt_idp.json

For each seed, with the stand-in's ``adapt.budget`` of target steps: the loop from the source; scratch, sim2real's
default fine-tuning and plain stable-baselines3 by hand from the same source; and the randomized source
zero-shot. The reference is trained on the stand-in for the source's budget (one per seed). Every final policy
is evaluated on the stand-in with the same episodes. Sources are trained (seed 0) where the output folder does
not hold them finished; every run is resumable (a finished one is skipped).
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from bench_transfer_by_hand import by_hand
from results import command_line, goal, write_results
from rich.console import Console

from sim2real.adapt import adapt
from sim2real.api import evaluate, train_transfer
from sim2real.config import Config, load_config
from sim2real.evaluation.metrics import estimate, iqm
from sim2real.runs import RunFolder, run_dir
from sim2real.training import train

QUIET = Console(quiet=True)
EPISODES = 10


def trained(config: Config, root: Path, seed: int, console: Console) -> Path:
    """A source or reference run under ``root`` (trained, or finished already)."""
    config = config.model_copy(update={
        "run": config.run.model_copy(update={"root": str(root)}),
        "train": config.train.model_copy(update={"seed": seed, "torch_threads": 1}),
    })  # fmt: skip
    folder = run_dir(config)
    run = RunFolder(folder)
    if not run.finished():  # an interrupted run resumes from its last checkpoint, or starts again
        checkpoints = run.checkpoints() if folder.is_dir() else []
        if folder.is_dir() and not checkpoints:
            shutil.rmtree(folder)
        console.print(f"training {folder}")
        train(config, console=QUIET, resume=folder if checkpoints else None)
    return folder


def final_return(model: Path, config: Config, target: str) -> float:
    """The policy's return on the target: the same episodes for every method."""
    results = evaluate(model, config, domains=[target], episodes=EPISODES, seed=10_000)
    return float(results[0].mean_reward)


def used(folder: Path) -> int:
    """Target steps a transfer run took (its curve's last point)."""
    return int(RunFolder(folder).curve_points()[-1]["target_steps"])


def run_seed(config: Config, source: Path, target: str, seed: int, root: Path, console: Console) -> dict[str, Any]:
    assert config.adapt is not None
    budget = config.adapt.budget
    runs: dict[str, Any] = {}
    started = time.perf_counter()
    loop = adapt(config, source, seed=seed, out=root / "adapt" / f"seed_{seed}", console=QUIET)
    seconds = time.perf_counter() - started
    runs["adapt"] = {"return": final_return(loop.policy, config, target), "target_steps": loop.target_steps,
                     "simulation_steps": loop.simulation_steps, "seconds": round(seconds, 1),
                     "stages": {name: {k: v for k, v in stage.items() if k != "returns"}
                                for name, stage in loop.state["stages"].items()}}  # fmt: skip
    base = config.model_copy(update={
        "adapt": None, "run": config.run.model_copy(update={"root": str(root / "transfer")}),
        "train": config.train.model_copy(update={"seed": seed, "total_timesteps": budget, "torch_threads": 1}),
    })  # fmt: skip
    for method in ("scratch", "finetune"):
        folder = run_dir(base.model_copy(update={"transfer": None})).parent / target / method / f"seed_{seed}"
        if not RunFolder(folder).finished():
            train_transfer(base, None if method == "scratch" else source, method=method, target=target, console=QUIET)
        runs[method] = {"return": final_return(folder, config, target), "target_steps": used(folder)}
    [folder] = by_hand(base, target, source, [seed], budget, max(1, budget // 2), 3, root / "by_hand", console=QUIET)
    runs["by_hand"] = {"return": final_return(folder, config, target), "target_steps": used(folder)}
    console.print(
        f"seed {seed}: " + ", ".join(f"{m} {r['return']:,.0f} ({r['target_steps']:,})" for m, r in runs.items())
    )
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the stand-in's config (targets, adapt)")
    parser.add_argument("--reference", type=Path, required=True, help="the config that trains on the stand-in")
    parser.add_argument("--source", type=Path, required=True, help="the source's config (trained at seed 0)")
    parser.add_argument("--randomized", type=Path, help="a randomized source's config, evaluated zero-shot")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, required=True, help="where the runs go (resumable)")
    parser.add_argument("--json", type=Path, help="the results file (benchmarks/results/...)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    console = Console()
    config = load_config(args.config)
    assert config.adapt is not None and config.adapt.target is not None, "the stand-in's config names adapt.target"
    target = config.adapt.target
    sources = args.out / "sources"
    source = trained(load_config(args.source), sources, 0, console)
    randomized = trained(load_config(args.randomized), sources, 0, console) if args.randomized else None
    seeds = list(range(args.seeds))
    reference = [final_return(trained(load_config(args.reference), args.out / "reference", seed, console), config,
                              target) for seed in seeds]  # fmt: skip
    console.print(f"reference: {', '.join(f'{r:,.0f}' for r in reference)}")
    runs = [run_seed(config, source, target, seed, args.out / "runs", console) for seed in seeds]
    methods = {name: [r[name] for r in runs] for name in runs[0]}
    zero_shot = {"source": final_return(source, config, target)}
    if randomized is not None:
        zero_shot["randomized"] = final_return(randomized, config, target)
    reference_steps = load_config(args.reference).train.total_timesteps
    data = {
        "command": command_line(),
        "env": config.env,
        "target": target,
        "budget": config.adapt.budget,
        "reference": {"steps": reference_steps, "returns": reference, "iqm": float(iqm(reference))},
        "zero_shot": zero_shot,
        "episodes": EPISODES,
        "methods": {name: _summary(results) for name, results in methods.items()},
        "runs": runs,
    }
    for summary in data["methods"].values():
        summary["share_of_reference"] = summary["iqm"] / data["reference"]["iqm"]
    data["goals"] = goals(data)
    for name, summary in data["methods"].items():
        console.print(f"{name}: final {summary['iqm']:,.0f} [{summary['ci_low']:,.0f}, {summary['ci_high']:,.0f}], "
                      f"{summary['share_of_reference']:.0%} of the reference, at most {summary['max_target_steps']:,} "
                      f"target steps")  # fmt: skip
    for name, verdict in data["goals"].items():
        console.print(f"{name}: {verdict['measured']} ({'met' if verdict['met'] else 'not met'})")
    if args.json is not None:
        write_results(args.json, data)


def _summary(results: list[dict[str, Any]]) -> dict[str, Any]:
    returns = [r["return"] for r in results]
    summary = estimate([returns])
    low, high = summary.ci if summary.ci is not None else (summary.iqm, summary.iqm)
    return {"returns": returns, "iqm": summary.iqm, "ci_low": low, "ci_high": high,
            "max_target_steps": max(r["target_steps"] for r in results), "share_of_reference": None}  # fmt: skip


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """The issue's goals, from the figures: the loop >= 95% of the reference with <= 5% of its target steps, and
    above every other method at the same budget (its CI low above their IQMs, and above the zero-shot returns)."""
    reference = float(data["reference"]["iqm"])
    loop = data["methods"]["adapt"]
    others = {name: s["iqm"] for name, s in data["methods"].items() if name != "adapt"}
    others.update({f"{name} zero-shot": value for name, value in data["zero_shot"].items()})
    best_other = max(others, key=lambda name: others[name])
    steps_share = loop["max_target_steps"] / data["reference"]["steps"]
    return {
        "of the reference": goal("the loop's final return (IQM over seeds) as a share of the policy trained on the "
                                 "stand-in itself, with at most 5% of its target steps", loop["iqm"] / reference,
                                 at_least=0.95, unit="%", steps_share=round(steps_share, 4)),
        "steps": goal("the most target steps a loop took, as a share of the reference's", steps_share,
                      at_most=0.05, unit="%"),
        "above every other method": goal(f"the loop's CI low against the best other method's IQM ({best_other})",
                                         loop["ci_low"] - others[best_other], at_least=0.0, unit=""),
    }  # fmt: skip


if __name__ == "__main__":
    main()
