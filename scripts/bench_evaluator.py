"""Throughput of the batched evaluator, measured in one run on each env (the machines are noisy: compare ratios).

For each env it times the same number of episodes three ways and prints steps per second and two ratios:

- sim2real's batched evaluator (``--n-envs`` copies, one policy forward pass per step for all of them);
- stable-baselines3's ``evaluate_policy`` on one env (one forward pass per env step);
- the plain env's ``step`` with a fixed action and no policy at all (the ceiling).

Goals: batched / evaluate_policy >= 4, batched / plain env >= 0.8. The policy is a freshly initialised PPO
MLP (64, 64), the default size: what is timed is the evaluation machinery, not what the policy has learnt.

    python scripts/bench_evaluator.py [--episodes 256] [--n-envs 16] [--envs InvertedDoublePendulum-v5 Hopper-v5] \\
        [--json benchmarks/results/evaluator.json]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from results import command_line, goal, write_results
from stable_baselines3 import PPO
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sim2real.evaluation.batched import episode_seeds, run_episodes


def plain_steps(env_id: str, episodes: int, seed: int) -> tuple[int, float]:
    """Steps the env with a zero action through ``episodes`` episodes: the cost of the simulation alone."""
    env = gym.make(env_id)
    action = np.zeros(env.action_space.shape, dtype=env.action_space.dtype)
    steps = 0
    started = time.perf_counter()
    for episode_seed in episode_seeds(seed, episodes):
        env.reset(seed=episode_seed)
        done = False
        while not done:
            _, _, terminated, truncated, _ = env.step(action)
            done = terminated or truncated
            steps += 1
    return steps, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=256)
    parser.add_argument("--n-envs", type=int, default=16)
    parser.add_argument("--envs", nargs="+", default=["InvertedDoublePendulum-v5", "Hopper-v5"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the figures and the goals' verdicts here")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    torch.set_num_threads(1)  # the evaluators run in one process; one thread is what a worker gets
    print(f"{'env':<28}{'batched':>12}{'evaluate_policy':>17}{'plain env':>12}{'vs SB3':>9}{'vs env':>9}")
    for env_id in args.envs:
        model = PPO("MlpPolicy", gym.make(env_id), seed=args.seed, device="cpu")

        started = time.perf_counter()
        _, lengths = run_episodes(model, lambda env_id=env_id: gym.make(env_id), args.episodes, seed=args.seed,
                                  n_envs=args.n_envs)  # fmt: skip
        batched = lengths.sum() / (time.perf_counter() - started)

        single = DummyVecEnv([lambda env_id=env_id: Monitor(gym.make(env_id))])
        single.seed(args.seed)
        started = time.perf_counter()
        _, sb3_lengths = evaluate_policy(model, single, n_eval_episodes=args.episodes, return_episode_rewards=True)
        sb3 = sum(sb3_lengths) / (time.perf_counter() - started)

        steps, seconds = plain_steps(env_id, args.episodes, args.seed)
        plain = steps / seconds
        print(
            f"{env_id:<28}{batched:>12,.0f}{sb3:>17,.0f}{plain:>12,.0f}{batched / sb3:>8.2f}x{batched / plain:>8.2f}x"
        )
        figures[env_id] = {"batched_steps_per_s": round(batched), "evaluate_policy_steps_per_s": round(sb3),
                           "plain_env_steps_per_s": round(plain)}  # fmt: skip
    if args.json is not None:
        write_results(args.json, {"command": command_line(), "episodes": args.episodes, "n_envs": args.n_envs,
                                  "figures": figures, "goals": goals({"figures": figures})})  # fmt: skip


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """The goals' verdicts from the figures, per env (``python scripts/results.py FILE`` judges a file again)."""
    verdicts = {}
    for env_id, f in data["figures"].items():
        verdicts[f"{env_id}: vs_evaluate_policy"] = goal(
            "the batched evaluator's steps/s over stable-baselines3's evaluate_policy",
            f["batched_steps_per_s"] / f["evaluate_policy_steps_per_s"],
            at_least=4.0,
        )
        verdicts[f"{env_id}: vs_plain_env"] = goal(
            "the batched evaluator's steps/s over the plain env stepped with a fixed action",
            f["batched_steps_per_s"] / f["plain_env_steps_per_s"],
            at_least=0.8,
        )
    return verdicts


if __name__ == "__main__":
    main()
