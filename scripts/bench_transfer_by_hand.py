"""The by-hand baseline of the transfer benchmark: what a stable-baselines3 user does without sim2real.

    python scripts/bench_transfer_by_hand.py --config configs/hopper/nominal.yaml --target heavy_slippery \\
        --source studies/hopper/runs/hopper_v5/nominal/seed_0 --seeds 5 --steps 120000 --out studies/hopper/runs

For each seed: ``VecNormalize.load(source's vecnormalize.pkl)`` around the target env, ``PPO.load(source's
model.zip)``, ``learn()`` on the target. The procedure is plain stable-baselines3. sim2real supplies only the
target env (its domain), so that the baseline trains on exactly the dynamics the transfer runs train on.

The learning curve is measured the way sim2real measures a transfer run's: the same episodes, seeds and points,
at step 0 and every ``--eval-every`` steps, and its evaluations are charged the same way (``--steps`` is a budget
of target steps, evaluations included). Each seed is written as a run folder (``config.yaml``, ``curve.json``,
``eval.json``, ``model.zip``) beside sim2real's runs from the same source,
``<out>/<env>/<source's experiment>/<target>/by_hand/seed_<n>``, so ``sim2real compare`` scores it as
``<source>/by_hand``. The source's pickle is read because this is the user's own file, which is what a user
without sim2real does.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from rich.console import Console
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sim2real.config import Config, TransferConfig, dump_config, load_config
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.evaluation import evaluate_config, evaluate_domain, evaluation_seed, print_results
from sim2real.io import save_with, write_json, write_text
from sim2real.modelfile import normalization_state
from sim2real.runs import RunFolder, run_dir
from sim2real.transfer.callbacks import EvalCurveCallback


def by_hand(
    base: Config,
    target: str,
    source: Path,
    seeds: Sequence[int],
    steps: int,
    eval_every: int = 20_000,
    eval_episodes: int = 3,
    out: Path = Path("runs"),
    console: Console | None = None,
) -> list[Path]:
    """Trains the by-hand baseline from ``source`` for each seed (a finished seed is skipped); its run folders."""
    console = console or Console()
    # The runs sit beside sim2real's runs from the same source: its experiment name tells sources apart.
    saved = RunFolder(source).saved_config()
    experiment = str(saved.get("run", {}).get("experiment", "default")) if isinstance(saved, dict) else "default"
    folders = []
    for seed in seeds:
        settings = TransferConfig(method="finetune", recipe="plain", variant="by_hand", target=target,
                                  source=str(source.resolve()), eval_every=eval_every,
                                  eval_episodes=eval_episodes)  # fmt: skip
        config = base.model_copy(update={
            "transfer": settings,
            "run": base.run.model_copy(update={"root": str(out), "experiment": experiment}),
            "train": base.train.model_copy(update={"seed": seed, "total_timesteps": steps}),
        })  # fmt: skip
        folder = run_dir(config)
        folders.append(folder)
        if RunFolder(folder).finished():
            console.print(f"seed {seed}: {folder} is done")
            continue
        folder.mkdir(parents=True, exist_ok=True)
        run = RunFolder(folder)
        write_text(run.config_file, dump_config(config))

        # What the user writes: load the source's statistics and model onto the target env, then learn.
        spec = DomainSpec.from_config(config.targets[target])
        env = DummyVecEnv([partial(make_domain_env, config.env, spec, seed=(seed, 0), **config.env_kwargs)])
        env.seed(seed)
        normalized = VecNormalize.load(str(source / "vecnormalize.pkl"), env)
        model = PPO.load(source / "model.zip", env=normalized, device="cpu")
        model.set_random_seed(seed)

        evaluate = partial(evaluate_domain, model, config.env, spec, env_kwargs=config.env_kwargs,
                           episodes=eval_episodes, deterministic=True, seed=evaluation_seed(seed),
                           normalization=normalized, name=target)  # fmt: skip
        # Charged like sim2real's runs: the evaluations are target steps, and the budget is one of target steps.
        curve = EvalCurveCallback(evaluate, target, eval_every, run.curve_file, budget=steps,
                                  point_episodes=(eval_episodes, 0))  # fmt: skip
        model.learn(total_timesteps=steps, callback=curve, reset_num_timesteps=True)
        save_with(run.model, model.save)
        # The statistics as plain numbers too, so that sim2real evaluates the policy without reading a pickle.
        write_json(run.vecnormalize_json, normalization_state(normalized))
        results = evaluate_config(model, config, normalized)
        run.write_eval(model.num_timesteps, {r.domain: r.as_dict() for r in results})
        normalized.close()
        console.print(f"seed {seed}: {folder}")
        print_results([r for r in results if r.domain == target], console)
    return folders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, required=True, help="the config naming the env and the target")
    parser.add_argument("--target", required=True, help="the target domain")
    parser.add_argument(
        "--source", type=Path, required=True, help="the source run folder (model.zip, vecnormalize.pkl)"
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=120_000, help="target steps per seed")
    parser.add_argument("--eval-every", type=int, default=20_000)
    parser.add_argument("--eval-episodes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("runs"), help="runs root (default: runs)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: one run per core)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    by_hand(load_config(args.config), args.target, args.source, range(args.seeds), args.steps, args.eval_every,
            args.eval_episodes, args.out)  # fmt: skip


if __name__ == "__main__":
    main()
