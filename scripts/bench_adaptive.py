"""Adaptive sources against memoryless ones (issue 16), zero-shot over the study's robustness grid.

    python scripts/bench_adaptive.py idp --out studies/adaptive_idp --json benchmarks/results/adaptive_idp.json
    python scripts/bench_adaptive.py hopper --out studies/adaptive_hopper --json benchmarks/results/adaptive_hopper.json

Sources: nominal, the memoryless randomized one, and the same randomization with a 4-step observation history,
as a recurrent policy (RecurrentPPO), and as a privileged teacher with its student (history only, distilled from
the teacher's actions). Trains every source of the case with the same budget of environment steps, 5 seeds (the
teacher and its student share it: the student's distillation steps, 20% of it, come off the teacher's;
finished runs are reused and unfinished ones resume from their last checkpoint, so an interrupted benchmark goes
on where it stopped), then sweeps each over the grid of the env's study with the batched evaluator. The teacher
is swept too, on its privileged inputs, as what the student could reach; it is not an adaptive source.
Per source: the grid IQM of each seed (the IQM over grid points of their mean returns) and their IQM with a
bootstrap 95% CI, the return at the nominal point and on the study's target, the training steps per second
(measured here for every source one after another, twice, on a short run each, so that the ratios compare
like with like) and the sweep's evaluation steps per second, and the ratios the issue's goals name:
- IDP: the best adaptive source's grid IQM >= 1.25x the nominal's and the memoryless randomized source's, and
  >= 95% of the nominal source's return at the nominal point;
- Hopper: its grid IQM >= 1.3x the memoryless randomized source's, and on heavy_slippery >= half the
  target-trained reference's return (2,786, benchmarks/results/hopper_study.json).

    python scripts/bench_adaptive.py idp --corner --out studies/adaptive_idp --json benchmarks/results/adaptive_idp_corner.json

sweeps the finished sources instead over the hinge friction and damping they were randomized over, at the nominal
mass and gear (the grid keeps the model's: no friction loss, damping 0.05): where the nominal point is lost.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from results import best_goal, command_line, write_results

from sim2real.api import sweep
from sim2real.config import SweepParam, load_config
from sim2real.evaluation.metrics import estimate, iqm
from sim2real.io import write_text
from sim2real.runs import RunFolder, run_dir

CASES: dict[str, dict[str, Any]] = {
    "idp": {
        "sources": {
            "nominal": "configs/inverted_double_pendulum/nominal.yaml",
            "randomized": "configs/inverted_double_pendulum/randomized.yaml",
            "randomized_history": "configs/inverted_double_pendulum/randomized_history.yaml",
            "randomized_recurrent": "configs/inverted_double_pendulum/randomized_recurrent.yaml",
            "teacher": "configs/inverted_double_pendulum/teacher.yaml",
            "student": "configs/inverted_double_pendulum/student.yaml",
        },
        "adaptive": ["randomized_history", "randomized_recurrent", "student"],
        "steps": 250_000,
        "grid": [
            {"quantity": "body_mass", "select": "all", "scale": [1.0, 2.0], "points": 5},
            {"quantity": "actuator_gear", "select": "all", "scale": [0.5, 1.0], "points": 5},
        ],
        "nominal_point": [1.0, 1.0],
        # --corner: the nominal mass and gear, with the hinge friction and damping the sources are randomized over
        # (the grid above keeps the model's: no friction loss, damping 0.05)
        "corner": [
            {"quantity": "joint_frictionloss", "select": ["hinge", "hinge2"], "set": [0.0, 0.55], "points": 4},
            {"quantity": "joint_damping", "select": ["hinge", "hinge2"], "set": [0.0, 0.55], "points": 4},
        ],
        "timing_steps": 20_480,
        "target": "heavy_weak",
        "goals": {"grid_vs_nominal": 1.25, "grid_vs_randomized": 1.25, "nominal_point_vs_nominal": 0.95},
    },
    "hopper": {
        "sources": {
            "nominal": "configs/hopper/nominal.yaml",
            "randomized": "configs/hopper/randomized_mass_friction.yaml",
            "randomized_history": "configs/hopper/randomized_history.yaml",
            "randomized_recurrent": "configs/hopper/randomized_recurrent.yaml",
            "teacher": "configs/hopper/teacher.yaml",
            "student": "configs/hopper/student.yaml",
        },
        "adaptive": ["randomized_history", "randomized_recurrent", "student"],
        "steps": 600_000,
        "grid": [
            {"quantity": "body_mass", "select": "torso", "scale": [0.5, 2.5], "points": 5},
            {"quantity": "geom_friction", "select": "all", "set": [0.2, 2.0], "points": 5},
        ],
        "nominal_point": None,  # friction 1.0 is not a grid point; the nominal domain is evaluated on its own
        "corner": None,
        "timing_steps": 10_240,
        "target": "heavy_slippery",
        "reference": 2786.0,
        "goals": {"grid_vs_randomized": 1.3, "target_vs_reference": 0.5},
    },
}
SEEDS = 5
TIMING_ROUNDS = 2
STUDENT_SHARE = 0.2  # of the budget: the student's distillation steps, which the teacher trains fewer
EPISODES = 5


def _train(config_path: str, seed: int, steps: int, root: Path, teacher: str | None = None) -> tuple[str, float | None]:
    """One source run (reused when finished, resumed when a checkpoint exists); returns its folder and its
    training steps per second (None when no part of it was timed here). ``teacher``: a student's teacher run."""
    from rich.console import Console

    from sim2real.training import train

    config = load_config(config_path)
    config = config.model_copy(update={
        "run": config.run.model_copy(update={"root": str(root)}),
        "train": config.train.model_copy(update={"seed": seed, "total_timesteps": steps, "torch_threads": 1,
                                                 "progress_bar": False}),
    })  # fmt: skip
    if teacher is not None and config.student is not None:
        config = config.model_copy(update={"student": config.student.model_copy(update={"teacher": teacher})})
    folder = run_dir(config)
    timing = folder / "bench_timing.txt"
    run = RunFolder(folder)
    if run.finished():
        return str(folder), float(timing.read_text()) if timing.is_file() else None
    checkpoints = run.checkpoints() if folder.is_dir() else []
    if folder.is_dir() and not checkpoints:  # stopped before its first checkpoint: kept aside, started again
        aside = root / "interrupted" / f"{folder.relative_to(root).as_posix().replace('/', '__')}_{time.time():.0f}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(folder), str(aside))
    start = checkpoints[-1].step if checkpoints else 0
    result = train(config, console=Console(quiet=True), resume=folder if checkpoints else None)
    rate = (result.num_timesteps - start) / result.learn_seconds if result.num_timesteps > start else None
    if rate is not None and start == 0:  # a rate of the whole run; a resumed part's is too noisy to keep
        write_text(timing, f"{rate}\n")
    return str(result.run_dir), rate


def _timing(case: dict[str, Any], teacher: str | None) -> dict[str, float]:
    """Training steps per second of each source, measured here one after another (``TIMING_ROUNDS`` rounds,
    interleaved, the median), so that the ratios compare runs under the same load; the runs' own rates are from
    whatever else ran beside them."""
    from rich.console import Console

    from sim2real.training import train

    rates: dict[str, list[float]] = {name: [] for name in case["sources"]}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(TIMING_ROUNDS):
            for name, path in case["sources"].items():
                config = load_config(path)
                config = config.model_copy(update={
                    "run": config.run.model_copy(update={"root": str(Path(tmp) / str(round_))}),
                    "train": config.train.model_copy(update={
                        "seed": round_, "total_timesteps": case["timing_steps"], "torch_threads": 1,
                        "progress_bar": False, "checkpoint_every": 10 * case["timing_steps"]}),
                    "eval": config.eval.model_copy(update={"episodes": 1}),
                })  # fmt: skip
                if config.student is not None:
                    config = config.model_copy(
                        update={"student": config.student.model_copy(update={"teacher": teacher})}
                    )
                result = train(config, console=Console(quiet=True))
                rates[name].append(result.num_timesteps / result.learn_seconds)
    return {name: float(np.median(values)) for name, values in rates.items()}


def _corner(case: dict[str, Any], trained: dict[tuple[str, int], tuple[str, float | None]],
            args: argparse.Namespace) -> None:  # fmt: skip
    """Where the randomized sources lose the nominal point: each source's return at the nominal mass and gear
    over the hinge friction and damping of its randomization, IQM over seeds at every point."""
    params = [SweepParam.model_validate(p) for p in case["corner"]]
    results: dict[str, Any] = {}
    for name, path in case["sources"].items():
        folders = [trained[(name, seed)][0] for seed in range(args.seeds)]
        swept = sweep(folders, params, load_config(path), episodes=EPISODES, seed=0)
        per_seed = [[r.mean_reward for r in model.results] for model in swept.models]
        points = [dict(zip(("joint_frictionloss", "joint_damping"), point, strict=True)) for point in swept.points()]
        results[name] = [{**point, "iqm": float(iqm(values)), "seeds": [float(v) for v in values]}
                         for point, values in zip(points, zip(*per_seed, strict=True), strict=True)]  # fmt: skip
        print(f"{name}: " + ", ".join(f"{p['joint_frictionloss']:.2f}/{p['joint_damping']:.2f} {p['iqm']:,.0f}"
                                      for p in results[name]), flush=True)  # fmt: skip
    write_results(args.json, {"command": command_line(), "case": args.case, "seeds": args.seeds,
                           "steps": case["steps"], "episodes_per_point": EPISODES, "grid": case["corner"],
                           "at": "the nominal mass and motor gear", "sources": results})  # fmt: skip
    print(f"wrote {args.json}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, required=True, help="where the source runs go")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--steps", type=int, help="each source's budget (default: the case's)")
    parser.add_argument("--sources", nargs="+", help="train and compare only these of the case's sources")
    parser.add_argument("--corner", action="store_true",
                        help="instead of the grid: sweep each source's finished runs over hinge friction x damping "
                             "at the nominal mass and gear (idp)")  # fmt: skip
    args = parser.parse_args()
    case = CASES[args.case]
    if args.corner and case["corner"] is None:
        parser.error(f"--corner: the {args.case} case has no corner sweep (idp has)")
    if args.steps:
        case["steps"] = args.steps
    if args.sources:
        unknown = sorted(set(args.sources) - set(case["sources"]))
        if unknown:
            parser.error(
                f"--sources: unknown {', '.join(unknown)}; the {args.case} case has {', '.join(case['sources'])}"
            )
        case["sources"] = {name: path for name, path in case["sources"].items() if name in args.sources}
        case["adaptive"] = [name for name in case["adaptive"] if name in args.sources]
    if "student" in case["sources"] and "teacher" not in case["sources"]:
        parser.error("--sources: the student needs its teacher")
    budget = {name: case["steps"] for name in case["sources"]}
    if "teacher" in budget:  # the teacher and its student share the budget
        budget["student"] = int(STUDENT_SHARE * case["steps"])
        budget["teacher"] = case["steps"] - budget["student"]
    jobs = [(name, path, seed) for seed in range(args.seeds) for name, path in case["sources"].items()]
    with ProcessPoolExecutor(args.workers) as pool:
        futures = {(name, seed): pool.submit(_train, path, seed, budget[name], args.out)
                   for name, path, seed in jobs if name != "student"}  # fmt: skip
        trained = {key: future.result() for key, future in futures.items()}
        students = {("student", seed): pool.submit(_train, case["sources"]["student"], seed, budget["student"],
                                                   args.out, trained[("teacher", seed)][0])
                    for name, _, seed in jobs if name == "student"}  # fmt: skip
        trained |= {key: future.result() for key, future in students.items()}
    if args.corner:
        _corner(case, trained, args)
        return
    timing = _timing(case, trained[("teacher", 0)][0] if "teacher" in case["sources"] else None)
    params = [SweepParam.model_validate(p) for p in case["grid"]]
    results: dict[str, Any] = {}
    for name, path in case["sources"].items():
        config = load_config(path)
        runs = [trained[(name, seed)] for seed in range(args.seeds)]
        grid_iqms, nominal_point, on_target, source_domain, eval_rates = [], [], [], [], []
        for folder, _ in runs:
            began = time.perf_counter()
            swept = sweep([folder], params, config, episodes=EPISODES, seed=0)
            seconds = time.perf_counter() - began
            returns = [r.mean_reward for r in swept.models[0].results]
            steps = sum(r.mean_ep_length * r.episodes for r in swept.models[0].results)
            eval_rates.append(steps / seconds)
            grid_iqms.append(float(iqm(returns)))
            if case["nominal_point"] is not None:
                index = swept.points().index(tuple(case["nominal_point"]))
                nominal_point.append(float(returns[index]))
            eval_json = RunFolder(Path(folder)).read_eval()
            on_target.append(float(eval_json[case["target"]]["mean_reward"]))
            source_domain.append(float(eval_json["source"]["mean_reward"]))
            print(f"{name} {folder}: grid IQM {grid_iqms[-1]:,.0f}, {case['target']} {on_target[-1]:,.0f}", flush=True)
        results[name] = {
            "runs": [folder for folder, _ in runs],
            "grid_iqm": estimate([grid_iqms]).as_dict(),
            "nominal_point": estimate([nominal_point]).as_dict() if nominal_point else None,
            "target": estimate([on_target]).as_dict(),
            "source_domain": estimate([source_domain]).as_dict(),
            "steps": budget[name],
            "train_steps_per_s": timing[name],
            "runs_train_steps_per_s": float(np.mean([rate for _, rate in runs if rate is not None] or [np.nan])),
            "eval_steps_per_s": float(np.mean(eval_rates)),
        }
    ratios: dict[str, Any] = {}
    for name in case["adaptive"]:
        mine = results[name]
        row: dict[str, Any] = {}
        if "nominal" in results:
            row["grid_vs_nominal"] = mine["grid_iqm"]["iqm"] / results["nominal"]["grid_iqm"]["iqm"]
            if mine["nominal_point"] is not None:
                row["nominal_point_vs_nominal"] = (mine["nominal_point"]["iqm"]
                                                   / results["nominal"]["nominal_point"]["iqm"])  # fmt: skip
        if "randomized" in results:
            row["grid_vs_randomized"] = mine["grid_iqm"]["iqm"] / results["randomized"]["grid_iqm"]["iqm"]
            row["train_speed_vs_randomized"] = mine["train_steps_per_s"] / results["randomized"]["train_steps_per_s"]
            if name == "student":  # the teacher's training and the distillation, the budget over both times
                teacher = results["teacher"]
                seconds = teacher["steps"] / teacher["train_steps_per_s"] + mine["steps"] / mine["train_steps_per_s"]
                row["teacher_and_student_speed_vs_randomized"] = (
                    case["steps"] / seconds / results["randomized"]["train_steps_per_s"]
                )
            row["eval_speed_vs_randomized"] = mine["eval_steps_per_s"] / results["randomized"]["eval_steps_per_s"]
        if "reference" in case:
            row["target_vs_reference"] = mine["target"]["iqm"] / case["reference"]
        ratios[name] = row
        print(f"{name}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items() if isinstance(v, float)), flush=True)
    figures = {"command": command_line(), "case": args.case, "seeds": args.seeds, "steps": case["steps"],
               "episodes_per_point": EPISODES, "grid": case["grid"], "sources": results, "adaptive": ratios}  # fmt: skip
    write_results(args.json, {**figures, "goals": goals(figures)})
    print(f"wrote {args.json}")


GOAL_TEXT = {
    "grid_vs_nominal": "the best adaptive source's grid IQM over the nominal source's",
    "grid_vs_randomized": "the best adaptive source's grid IQM over the memoryless randomized source's",
    "nominal_point_vs_nominal": "the best adaptive source's return at the nominal point over the nominal source's",
    "target_vs_reference": "the best adaptive source's return on the target over the target-trained reference's",
}


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the case, judged on the best adaptive source measured (``python scripts/results.py FILE``
    judges a file again); none for a file of ``--corner``, which measures no adaptive ratios."""
    verdicts: dict[str, Any] = {}
    for name, level in CASES[data["case"]]["goals"].items():
        measured = {source: row[name] for source, row in data.get("adaptive", {}).items() if row.get(name) is not None}
        if not measured and "adaptive" not in data:
            continue
        unit = "%" if name.endswith("vs_reference") or name.startswith("nominal_point") else "x"
        verdicts[name] = best_goal(GOAL_TEXT[name], measured, at_least=level, unit=unit)
    return verdicts


if __name__ == "__main__":
    main()
