"""Cost of domain randomization on Hopper-v5, measured in one run.

    python scripts/bench_randomization.py [--steps 20000] [--repeats 5] [--json benchmarks/results/randomization.json]

(a) env steps per second with six dynamics quantities redrawn at every episode reset, divided by the plain
    env's (same random actions, same episode boundaries; goal >= 0.97);
(b) the time of one re-parameterization at reset (draw, write, mj_setConst) against rebuilding the model from
    its XML, which is how several suites randomize (goal: at least 100x faster).
Both sides alternate within each repeat so machine noise hits them alike; (a) prints medians, (b) the
fastest repeat of each side (the least disturbed by other load, as timeit does). ``--json`` writes the figures,
every repeat's included, with the goals and whether they are met.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from results import command_line, goal, write_results

from sim2real.domain import find_dynamics_wrapper, make_domain_env
from sim2real.randomization import DynamicsRandomizer, RandomChange, Uniform

CHANGES = [
    RandomChange("body_mass", "scale", Uniform(0.7, 1.3), select="all"),
    RandomChange("geom_friction", "set", Uniform(0.5, 2.0), select=["foot_geom", "floor"], shared=True),
    RandomChange("actuator_gear", "scale", Uniform(0.7, 1.1), select="all"),
    RandomChange("joint_damping", "set", Uniform(0.0, 1.0), select=["thigh_joint", "leg_joint", "foot_joint"]),
    RandomChange("joint_armature", "scale", Uniform(0.8, 1.2), select="all"),
    RandomChange("gravity", "scale", Uniform(0.95, 1.05)),
]
STEP_RATE_GOAL = 0.97  # randomized / plain steps per second, at least
REBUILD_GOAL = 100  # rebuild from XML / re-parameterization, at least


def steps_per_second(env: gym.Env, actions: np.ndarray, episode: int) -> float:
    """Steps ``actions`` with a reset every ``episode`` steps, so both envs reset equally often."""
    env.reset(seed=0)
    started = time.perf_counter()
    for t, action in enumerate(actions, start=1):
        env.step(action)
        if t % episode == 0:
            env.reset()
    return len(actions) / (time.perf_counter() - started)


def reparameterization_times(
    randomizer: DynamicsRandomizer, xml_path: str, repeats: int
) -> tuple[list[float], list[float]]:
    """(b): seconds per reset-time re-parameterization and per rebuild of the model (and its data) from XML, one
    figure per repeat, the two sides alternating."""
    reparam, rebuild = [], []
    for _ in range(repeats):
        n = 200
        started = time.perf_counter()
        for _ in range(n):
            randomizer.on_reset()
        reparam.append((time.perf_counter() - started) / n)
        started = time.perf_counter()
        for _ in range(20):
            model = mujoco.MjModel.from_xml_path(xml_path)
            mujoco.MjData(model)
        rebuild.append((time.perf_counter() - started) / 20)
    return reparam, rebuild


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--episode", type=int, default=50, help="steps per episode (short episodes weigh resets most)")
    parser.add_argument("--json", type=Path, help="write the figures here (e.g. benchmarks/results/randomization.json)")
    args = parser.parse_args()

    # Without the TimeLimit/termination logic deciding episode ends: both envs reset every --episode steps.
    plain = gym.make("Hopper-v5", terminate_when_unhealthy=False)
    randomized = make_domain_env("Hopper-v5", CHANGES, seed=(0, 0), terminate_when_unhealthy=False)
    actions = np.random.default_rng(0).uniform(-1, 1, (args.steps, 3)).astype(np.float32)

    plain_rates, random_rates = [], []
    for _ in range(args.repeats):
        plain_rates.append(steps_per_second(plain, actions, args.episode))
        random_rates.append(steps_per_second(randomized, actions, args.episode))
    randomizer = find_dynamics_wrapper(randomized).randomizer  # type: ignore[union-attr]
    assert randomizer is not None
    drawn = len(randomizer.values)
    xml_path = plain.unwrapped.fullpath  # type: ignore[attr-defined]
    reparam, rebuild = reparameterization_times(randomizer, xml_path, args.repeats)

    plain_rate, random_rate = statistics.median(plain_rates), statistics.median(random_rates)
    step_ratio = random_rate / plain_rate
    print(
        f"(a) Hopper-v5, random actions, {args.steps} steps x {args.repeats}, a reset every {args.episode} steps, "
        f"{len(CHANGES)} quantities ({drawn} values) drawn per episode"
    )
    print(f"    plain {plain_rate:,.0f} steps/s, randomized {random_rate:,.0f} steps/s")
    print(f"    ratio randomized / plain: {step_ratio:.3f} (goal >= {STEP_RATE_GOAL})")
    t_reparam, t_rebuild = min(reparam), min(rebuild)
    print(f"(b) re-parameterization at reset {t_reparam * 1e6:.1f} us, rebuild from XML {t_rebuild * 1e6:.0f} us")
    print(f"    ratio rebuild / re-parameterization: {t_rebuild / t_reparam:.0f}x (goal >= {REBUILD_GOAL}x)")
    if args.json:
        figures = {"command": command_line(), "env": "Hopper-v5", "steps": args.steps, "repeats": args.repeats,
                   "episode": args.episode, "quantities": len(CHANGES), "values_drawn": drawn}  # fmt: skip
        figures["step_rate"] = {
            "plain_steps_per_s": plain_rate, "randomized_steps_per_s": random_rate, "ratio": step_ratio,
            "taken": "median of the repeats",
            "plain_per_repeat": plain_rates, "randomized_per_repeat": random_rates,
        }  # fmt: skip
        figures["reparameterization"] = reparameterization_figures(reparam, rebuild)
        figures["goals"] = goals(figures)
        write_results(args.json, figures)
        print(f"wrote {args.json}")


def goals(data: dict[str, Any]) -> dict[str, Any]:
    """The goals' verdicts from the figures (``python scripts/results.py FILE`` judges a file again)."""
    return {
        "step_rate": goal("randomized env steps/s over the plain env's", data["step_rate"]["ratio"],
                          at_least=STEP_RATE_GOAL),
        "reparameterization": goal("a rebuild from XML's time over one re-parameterization at reset",
                                   data["reparameterization"]["ratio"], at_least=REBUILD_GOAL),
    }  # fmt: skip


def reparameterization_figures(reparam: list[float], rebuild: list[float]) -> dict[str, Any]:
    """(b) as the JSON holds it: the fastest repeat of each side, their ratio, every repeat."""
    ratio = min(rebuild) / min(reparam)
    return {
        "reparameterization_us": min(reparam) * 1e6, "rebuild_from_xml_us": min(rebuild) * 1e6, "ratio": ratio,
        "taken": "fastest repeat of each side",
        "reparameterization_us_per_repeat": [t * 1e6 for t in reparam],
        "rebuild_from_xml_us_per_repeat": [t * 1e6 for t in rebuild],
        "ratio_per_repeat": [b / a for a, b in zip(reparam, rebuild, strict=True)],
    }  # fmt: skip


if __name__ == "__main__":
    main()
