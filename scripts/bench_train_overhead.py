"""Steps per second of `sim2real train` against plain stable-baselines3 on the same PPO configuration.

    python scripts/bench_train_overhead.py [--env Hopper-v5] [--steps 20000] [--repeats 2]

Both sides train the same PPO (same hyperparameters, VecNormalize, seed, n_envs) in this one process,
alternating A/B so machine noise hits both alike. sim2real adds the dynamics wrapper, the Monitor files,
checkpoints and TensorBoard logging; the printed ratio (sim2real / plain, goal >= 0.95) is what that costs.
"""

from __future__ import annotations

import argparse
import tempfile
import time

from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.config import parse_config
from sim2real.training import algorithm_kwargs, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5")
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as root:
        data = {
            "env": args.env,
            # A target changing two quantities so the wrapper has real work at construction.
            "source": {"dynamics": [{"quantity": "body_mass", "select": "all", "scale": 1.0}]},
            "algo": {"name": "ppo", "n_steps": 1024, "batch_size": 64, "n_epochs": 10},
            "train": {
                "total_timesteps": args.steps,
                "n_envs": 1,
                "normalize": {},
                "progress_bar": False,
                "checkpoint_every": 10_000,
            },
            "eval": {"episodes": 1},
            "run": {"root": root},
        }
        sim2real_rates, plain_rates = [], []
        for repeat in range(args.repeats):
            config = parse_config({**data, "train": {**data["train"], "seed": repeat}})
            result = train(config)
            sim2real_rates.append(result.num_timesteps / result.learn_seconds)

            env = VecNormalize(make_vec_env(args.env, n_envs=1, seed=repeat), gamma=config.algo.gamma)
            model = PPO("MlpPolicy", env, seed=repeat, device="cpu", verbose=0, **algorithm_kwargs(config))
            started = time.perf_counter()
            model.learn(total_timesteps=args.steps)
            plain_rates.append(model.num_timesteps / (time.perf_counter() - started))
            env.close()
            print(
                f"repeat {repeat}: sim2real {sim2real_rates[-1]:.0f} steps/s, plain SB3 {plain_rates[-1]:.0f} steps/s"
            )

    sim2real_rate = sum(sim2real_rates) / len(sim2real_rates)
    plain_rate = sum(plain_rates) / len(plain_rates)
    print(f"{args.env}: sim2real {sim2real_rate:.0f} steps/s, plain stable-baselines3 {plain_rate:.0f} steps/s")
    print(f"ratio sim2real / plain: {sim2real_rate / plain_rate:.3f} (goal >= 0.95)")


if __name__ == "__main__":
    main()
