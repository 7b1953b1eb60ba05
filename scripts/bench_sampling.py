"""Randomization that keeps its whole range (issue 27): the randomized source trained with each way of drawing
its episodes, zero-shot over the study's robustness grid, against the nominal source.

    python scripts/bench_sampling.py idp --out studies/sampling_idp --json benchmarks/results/sampling_idp.json
    python scripts/bench_sampling.py hopper --out studies/sampling_hopper --json benchmarks/results/sampling_hopper.json

Sources (the same budget of environment steps, 5 seeds each): ``nominal``; ``randomized`` (uniform draws, one
per episode); ``randomized_steps`` and ``randomized_failures`` (the same distribution, drawn by
``source.sampling``: each region its share of the steps, or most where recent episodes returned least). Finished
runs are reused and unfinished ones resume, so an interrupted benchmark goes on where it stopped. Each source is
swept over its case's grid (the study's, as ``bench_adaptive.py`` sweeps it), 5 episodes a point; per seed the
grid's IQM over points, its lowest decile (the 10th percentile of the points' returns), its minimum and the
return at the nominal point; then their IQM over seeds with a bootstrap 95% CI. Training steps/s are measured
here, every source one after another on a short run (twice, the median), so their ratios compare like with like.

Goals (issue 27), judged on the best of the two sampled sources and reported for every source:
- IDP: the nominal point >= 90% of the nominal source's, grid IQM >= 1.1x and lowest decile >= 3x the nominal
  source's;
- Hopper: grid IQM >= 1.5x the nominal source's, the nominal model >= 60% of the nominal source's return there,
  and a lowest decile above the uniform randomized source's.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from bench_adaptive import CASES as ADAPTIVE
from bench_adaptive import _timing, _train
from results import best_goal, command_line, write_results

from sim2real.api import evaluate, sweep
from sim2real.config import SweepParam, load_config
from sim2real.evaluation.metrics import estimate, iqm

SAMPLED = ("randomized_steps", "randomized_failures")
CASES: dict[str, dict[str, Any]] = {
    "idp": {
        "sources": {
            "nominal": "configs/inverted_double_pendulum/nominal.yaml",
            "randomized": "configs/inverted_double_pendulum/randomized.yaml",
            "randomized_steps": "configs/inverted_double_pendulum/randomized_steps.yaml",
            "randomized_failures": "configs/inverted_double_pendulum/randomized_failures.yaml",
        },
        "steps": 250_000,
        "timing_steps": 20_480,
        "grid": ADAPTIVE["idp"]["grid"],
        "goals": {"nominal_point_vs_nominal": 0.9, "grid_vs_nominal": 1.1, "decile_vs_nominal": 3.0},
    },
    "hopper": {
        "sources": {
            "nominal": "configs/hopper/nominal.yaml",
            "randomized": "configs/hopper/randomized_mass_friction.yaml",
            "randomized_steps": "configs/hopper/randomized_steps.yaml",
            "randomized_failures": "configs/hopper/randomized_failures.yaml",
        },
        "steps": 600_000,
        "timing_steps": 10_240,
        "grid": ADAPTIVE["hopper"]["grid"],
        "goals": {"grid_vs_nominal": 1.5, "nominal_point_vs_nominal": 0.6, "decile_vs_randomized": 1.0},
    },
}
SEEDS = 5
EPISODES = 5


def _swept(folder: str, config_path: str, params: list[SweepParam]) -> dict[str, float]:
    """One run's grid figures and its return on the nominal model (the same episodes for every source)."""
    config = load_config(config_path)
    swept = sweep([folder], params, config, episodes=EPISODES, seed=0)
    returns = np.array([r.mean_reward for r in swept.models[0].results])
    nominal = evaluate(Path(folder), config.model_copy(update={"source": config.source.model_copy(update={
        "dynamics": [], "sampling": None})}), domains=["source"], episodes=EPISODES, seed=0)  # fmt: skip
    return {"grid_iqm": float(iqm(returns)), "decile": float(np.percentile(returns, 10)),
            "minimum": float(returns.min()), "nominal_point": float(nominal[0].mean_reward)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("--out", type=Path, required=True, help="where the source runs go")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seeds", type=int, default=SEEDS)
    parser.add_argument("--steps", type=int, help="each source's budget (default: the case's)")
    args = parser.parse_args()
    case = CASES[args.case]
    steps = args.steps or case["steps"]
    params = [SweepParam.model_validate(p) for p in case["grid"]]
    jobs = [(name, path, seed) for seed in range(args.seeds) for name, path in case["sources"].items()]
    with ProcessPoolExecutor(args.workers) as pool:
        trained = {(name, seed): pool.submit(_train, path, seed, steps, args.out) for name, path, seed in jobs}
        runs = {key: future.result() for key, future in trained.items()}
        swept = {(name, seed): pool.submit(_swept, runs[(name, seed)][0], path, params)
                 for name, path, seed in jobs}  # fmt: skip
        figures = {key: future.result() for key, future in swept.items()}
    timing = _timing(case, None)
    results: dict[str, Any] = {}
    for name in case["sources"]:
        per_seed = [figures[(name, seed)] for seed in range(args.seeds)]
        results[name] = {
            "runs": [runs[(name, seed)][0] for seed in range(args.seeds)],
            **{key: estimate([[row[key] for row in per_seed]]).as_dict() for key in per_seed[0]},
            "seeds": per_seed,
            "train_steps_per_s": timing[name],
        }
        print(f"{name}: " + ", ".join(f"{k} {results[name][k]['iqm']:,.0f}" for k in per_seed[0]), flush=True)
    ratios = {name: _ratios(results, name) for name in case["sources"] if name != "nominal"}
    data = {"command": command_line(), "case": args.case, "seeds": args.seeds, "steps": steps,
            "episodes_per_point": EPISODES, "grid": case["grid"], "sources": results, "ratios": ratios}  # fmt: skip
    write_results(args.json, {**data, "goals": goals(data)})
    print(f"wrote {args.json}")


def _ratios(results: dict[str, Any], name: str) -> dict[str, float]:
    mine, nominal, uniform = results[name], results["nominal"], results["randomized"]
    return {
        "grid_vs_nominal": mine["grid_iqm"]["iqm"] / nominal["grid_iqm"]["iqm"],
        "decile_vs_nominal": mine["decile"]["iqm"] / max(nominal["decile"]["iqm"], 1e-9),
        "decile_vs_randomized": mine["decile"]["iqm"] / max(uniform["decile"]["iqm"], 1e-9),
        "nominal_point_vs_nominal": mine["nominal_point"]["iqm"] / nominal["nominal_point"]["iqm"],
        "train_speed_vs_uniform": mine["train_steps_per_s"] / uniform["train_steps_per_s"],
    }


GOAL_TEXT = {
    "nominal_point_vs_nominal": "the sampled source's return on the nominal model over the nominal source's",
    "grid_vs_nominal": "the sampled source's grid IQM over the nominal source's",
    "decile_vs_nominal": "the sampled source's grid lowest decile over the nominal source's",
    "decile_vs_randomized": "the sampled source's grid lowest decile over the uniform randomized source's",
}


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """Each goal of the case, judged on the better sampled source (``python scripts/results.py FILE`` judges a
    file again); the uniform randomized source's figure is kept beside it."""
    verdicts: dict[str, Any] = {}
    for name, level in CASES[data["case"]]["goals"].items():
        measured = {source: data["ratios"][source][name] for source in SAMPLED if source in data["ratios"]}
        unit = "%" if name.startswith("nominal_point") else "x"
        uniform = round(data["ratios"]["randomized"][name], 4)
        verdicts[name] = best_goal(GOAL_TEXT[name], measured, at_least=level, unit=unit, uniform=uniform)
    return verdicts


if __name__ == "__main__":
    main()
