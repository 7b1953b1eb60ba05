"""Evaluation of a trained policy on a config's domains (the source and every target), with the batched evaluator."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy import stats
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import VecNormalize

from sim2real.config import Config, HistoryConfig, PrivilegedTerm
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.dynamics import Change
from sim2real.evaluation.batched import ObservationNormalizer, run_episodes
from sim2real.evaluation.metrics import iqm
from sim2real.io import write_json, write_text
from sim2real.randomization import RandomChange


@dataclass
class DomainResult:
    """Returns of ``episodes`` complete episodes on one domain, with their summary statistics."""

    domain: str
    mean_reward: float
    std_reward: float
    iqm_reward: float  # interquartile mean: the mean of the middle 50% of returns
    ci_low: float | None  # bootstrap 95% confidence interval of the mean (None with a single episode)
    ci_high: float | None
    mean_ep_length: float
    episodes: int
    success_rate: float | None  # share of returns >= the config's eval.success_threshold, when it has one
    returns: list[float]
    lengths: list[int]

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def bootstrap_ci(
    values: np.ndarray, statistic: Callable[..., Any] = np.mean, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap 95% confidence interval of ``statistic`` (scipy's), None for fewer than 2 values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size < 2:
        return None
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])  # no spread: the interval is the point (scipy would warn)
    result = stats.bootstrap(
        (values,),
        statistic,
        confidence_level=0.95,
        n_resamples=2000,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def summarize(
    name: str, returns: np.ndarray, lengths: np.ndarray, success_threshold: float | None = None, seed: int = 0
) -> DomainResult:
    """A :class:`DomainResult` from raw episode returns and lengths."""
    returns = np.asarray(returns, dtype=np.float64)
    interval = bootstrap_ci(returns, seed=seed)
    return DomainResult(
        domain=name,
        mean_reward=float(returns.mean()),
        std_reward=float(returns.std()),
        iqm_reward=float(iqm(returns)),
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        mean_ep_length=float(np.mean(lengths)),
        episodes=int(returns.size),
        success_rate=float(np.mean(returns >= success_threshold)) if success_threshold is not None else None,
        returns=returns.tolist(),
        lengths=[int(n) for n in lengths],
    )


def evaluation_seed(run_seed: int) -> int:
    """The evaluation episodes' seed, derived from the run's seed and the same on every domain: each domain
    starts from the same states, so a target identical to the source scores the source's return exactly and a
    difference between domains is their dynamics, not seed noise (common random numbers)."""
    return int(np.random.SeedSequence([run_seed, 1]).generate_state(1)[0])


def normalizer_of(normalization: VecNormalize | ObservationNormalizer | None) -> ObservationNormalizer | None:
    """The observation transform of a training env's VecNormalize, in evaluation mode."""
    if normalization is None or isinstance(normalization, ObservationNormalizer):
        return normalization
    if not normalization.norm_obs:
        return None
    rms: Any = normalization.obs_rms
    return ObservationNormalizer(
        np.array(rms.mean), np.array(rms.var), float(normalization.clip_obs), float(normalization.epsilon)
    )


def evaluate_domain(
    model: BaseAlgorithm,
    env_id: str,
    domain: DomainSpec | Iterable[Change | RandomChange],
    *,
    env_kwargs: dict | None = None,
    episodes: int = 10,
    deterministic: bool = True,
    seed: int = 0,
    normalization: VecNormalize | ObservationNormalizer | None = None,
    name: str = "domain",
    success_threshold: float | None = None,
    n_envs: int = 16,
    history: HistoryConfig | None = None,
    privileged: Sequence[PrivilegedTerm] | None = None,
) -> DomainResult:
    """Runs ``episodes`` episodes of ``model`` on one domain with the batched evaluator.

    ``normalization`` (the training env's VecNormalize, or saved statistics) is applied in evaluation mode:
    its observation statistics are used but not updated, and returns are the env's own (unnormalized) rewards.
    ``history``, ``privileged``: the policy's observation history and a teacher's privileged inputs (its
    config's ``history`` and ``privileged_terms()``).
    """
    spec = domain if isinstance(domain, DomainSpec) else DomainSpec(changes=tuple(domain))
    kwargs = dict(env_kwargs or {})
    returns, lengths = run_episodes(
        model,
        partial(
            make_domain_env,
            env_id,
            spec,
            seed=seed,
            check_friction=False,
            history=history,
            privileged=privileged,
            **kwargs,
        ),
        episodes,
        seed=seed,
        deterministic=deterministic,
        normalizer=normalizer_of(normalization),
        n_envs=n_envs,
    )
    return summarize(name, returns, lengths, success_threshold, seed)


def evaluate_config(
    model: BaseAlgorithm,
    config: Config,
    normalization: VecNormalize | ObservationNormalizer | None = None,
    domains: list[str] | None = None,
    episodes: int | None = None,
    seed: int | None = None,
    deterministic: bool | None = None,
    n_envs: int = 16,
) -> list[DomainResult]:
    """Evaluates ``model`` on the config's source and every target (or the ``domains`` named), all with the
    episode seeds derived from ``seed`` (default: the run's seed; see :func:`evaluation_seed`)."""
    results = []
    for name, domain in config.domains().items():
        if domains is not None and name not in domains:
            continue
        results.append(
            evaluate_domain(
                model,
                config.env,
                DomainSpec.from_config(domain),
                env_kwargs=config.env_kwargs,
                episodes=episodes or config.eval.episodes,
                deterministic=config.eval.deterministic if deterministic is None else deterministic,
                seed=evaluation_seed(config.train.seed if seed is None else seed),
                normalization=normalization,
                name=name,
                success_threshold=config.eval.success_threshold,
                n_envs=n_envs,
                history=config.history,
                privileged=config.privileged_terms(),
            )
        )
    return results


def print_results(results: list[DomainResult], console: Console | None = None) -> None:
    """The evaluation table: one row per domain, with the return relative to the source when it was evaluated."""
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 130)  # piped output: whole numbers rather than a narrow table
    table = Table(title="Evaluation")
    table.add_column("domain", no_wrap=True)
    columns = ["mean return", "95% CI", "IQM", "std", "ep. length", "episodes"]
    with_success = any(r.success_rate is not None for r in results)
    if with_success:
        columns.append("success")
    source = next((r.mean_reward for r in results if r.domain == "source"), None)
    if source is not None:
        columns.append("vs source")
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for r in results:
        row = [
            r.domain,
            f"{r.mean_reward:.1f}",
            f"[{r.ci_low:.1f}, {r.ci_high:.1f}]" if r.ci_low is not None and r.ci_high is not None else "-",
            f"{r.iqm_reward:.1f}",
            f"{r.std_reward:.1f}",
            f"{r.mean_ep_length:.0f}",
            str(r.episodes),
        ]
        if with_success:
            row.append(f"{r.success_rate:.0%}" if r.success_rate is not None else "-")
        if source is not None:
            row.append(f"{r.mean_reward / source:.2f}x" if source > 0 else "-")
        table.add_row(*row)
    console.print(table)


_CSV_COLUMNS = (
    "domain",
    "mean_reward",
    "ci_low",
    "ci_high",
    "iqm_reward",
    "std_reward",
    "mean_ep_length",
    "episodes",
    "success_rate",
)


def write_results(
    results: list[DomainResult],
    meta: dict[str, Any],
    json_path: Path | None = None,
    csv_path: Path | None = None,
) -> None:
    """Writes the results as JSON (everything, episode returns included) and/or CSV (one row per domain)."""
    if json_path is not None:
        write_json(json_path, {**meta, "domains": {r.domain: r.as_dict() for r in results}})
    if csv_path is not None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(_CSV_COLUMNS)
        for r in results:
            row = r.as_dict()
            writer.writerow(["" if row[c] is None else row[c] for c in _CSV_COLUMNS])
        write_text(csv_path, buffer.getvalue())


def episode_limit(model: BaseAlgorithm) -> int | None:
    """The training env's time limit (gymnasium's ``max_episode_steps``; the evaluations build the same env),
    which bounds the target steps an evaluation can take; None when the env has none."""
    env = model.get_env()
    try:
        spec = env.get_attr("spec", indices=0)[0] if env is not None else None
    except AttributeError:
        return None
    limit = getattr(spec, "max_episode_steps", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def curve_evaluation(config: Config, model: BaseAlgorithm, spec: DomainSpec) -> Callable[..., DomainResult]:
    """A transfer run's learning-curve evaluation on its target: the same seeded episodes at every point."""
    assert config.transfer is not None
    return partial(
        evaluate_domain, model, config.env, spec, env_kwargs=config.env_kwargs,
        episodes=config.transfer.eval_episodes, deterministic=config.eval.deterministic,
        seed=evaluation_seed(config.train.seed), normalization=model.get_vec_normalize_env(),
        name=config.training_domain_name(), history=config.history,
    )  # fmt: skip
