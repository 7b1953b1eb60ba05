"""Evaluation of a trained policy on a config's domains (the source and every target)."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial

import gymnasium as gym
import numpy as np
from rich.console import Console
from rich.table import Table
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecNormalize

from sim2real.config import Config
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.dynamics import Change
from sim2real.randomization import RandomChange


@dataclass
class DomainResult:
    """Returns of ``episodes`` complete episodes on one domain."""

    domain: str
    mean_reward: float
    std_reward: float
    mean_ep_length: float
    episodes: int
    returns: list[float]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def _monitored(env_id: str, domain: DomainSpec, seed: tuple[int, int], env_kwargs: dict) -> Monitor:
    return Monitor(make_domain_env(env_id, domain, seed=seed, check_friction=False, **env_kwargs))


def domain_seed(run_seed: int, domain_index: int) -> int:
    """Evaluation seed of a domain, derived from the run's seed (different per domain, same per run)."""
    return int(np.random.SeedSequence([run_seed, 1 + domain_index]).generate_state(1)[0])


def evaluate_domain(
    model: BaseAlgorithm,
    env_id: str,
    domain: DomainSpec | Iterable[Change | RandomChange],
    *,
    env_kwargs: dict | None = None,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int = 0,
    normalization: VecNormalize | None = None,
    name: str = "domain",
) -> DomainResult:
    """Runs ``episodes`` episodes of ``model`` on one domain and returns their undiscounted returns.

    ``normalization`` (the training env's VecNormalize) is applied in evaluation mode: its observation
    statistics are used but not updated, and rewards are reported unnormalized.
    """
    n_envs = min(episodes, 8)
    spec = domain if isinstance(domain, DomainSpec) else DomainSpec(changes=tuple(domain))
    factories: list[Callable[[], gym.Env]] = [
        partial(_monitored, env_id, spec, (seed, i), dict(env_kwargs or {})) for i in range(n_envs)
    ]
    venv: VecEnv = DummyVecEnv(factories)
    if normalization is not None:
        wrapped = VecNormalize(venv, training=False, norm_obs=normalization.norm_obs, norm_reward=False)
        wrapped.obs_rms = copy.deepcopy(normalization.obs_rms)
        wrapped.clip_obs = normalization.clip_obs
        venv = wrapped
    venv.seed(seed)
    try:
        returns, lengths = evaluate_policy(
            model, venv, n_eval_episodes=episodes, deterministic=deterministic, return_episode_rewards=True
        )
    finally:
        venv.close()
    returns_arr = np.asarray(returns, dtype=np.float64)
    return DomainResult(
        domain=name,
        mean_reward=float(returns_arr.mean()),
        std_reward=float(returns_arr.std()),
        mean_ep_length=float(np.mean(lengths)),
        episodes=len(returns_arr),
        returns=returns_arr.tolist(),
    )


def evaluate_config(
    model: BaseAlgorithm, config: Config, normalization: VecNormalize | None = None
) -> list[DomainResult]:
    """Evaluates ``model`` on the config's source and every target, each with its own derived seed."""
    results = []
    for index, (name, domain) in enumerate(config.domains().items()):
        results.append(
            evaluate_domain(
                model,
                config.env,
                domain.spec(),
                env_kwargs=config.env_kwargs,
                episodes=config.eval.episodes,
                deterministic=config.eval.deterministic,
                seed=domain_seed(config.train.seed, index),
                normalization=normalization,
                name=name,
            )
        )
    return results


def print_results(results: list[DomainResult], console: Console | None = None) -> None:
    """The evaluation table: one row per domain, with the return relative to the source."""
    console = console or Console()
    table = Table(title="Evaluation")
    table.add_column("domain", no_wrap=True)
    for column in ("mean return", "std", "ep. length", "episodes", "vs source"):
        table.add_column(column, justify="right", no_wrap=True)
    source = results[0].mean_reward if results else 0.0
    for r in results:
        relative = f"{r.mean_reward / source:.2f}x" if source > 0 else "-"
        table.add_row(
            r.domain,
            f"{r.mean_reward:.1f}",
            f"{r.std_reward:.1f}",
            f"{r.mean_ep_length:.0f}",
            str(r.episodes),
            relative,
        )
    console.print(table)
