"""Transfer metrics of learning curves (Taylor & Stone, 2009, "Transfer Learning for Reinforcement Learning
Domains: A Survey") and their aggregation across seeds (Agarwal et al., 2021, "Deep RL at the Edge of the
Statistical Precipice": interquartile means with stratified bootstrap confidence intervals).

A curve is the return on the target measured at increasing training steps, its first point before any target
training. Curves of different lengths are compared over the steps they share.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Curve:
    """Returns by training step (steps increasing, the first point at the start of training)."""

    steps: np.ndarray
    returns: np.ndarray

    @classmethod
    def of(cls, steps: Sequence[float], returns: Sequence[float]) -> Curve:
        s = np.asarray(steps, dtype=np.float64)
        r = np.asarray(returns, dtype=np.float64)
        if s.ndim != 1 or s.shape != r.shape or s.size == 0:
            raise ValueError("a curve needs as many returns as steps, at least one")
        if np.any(np.diff(s) <= 0):
            raise ValueError("a curve's steps must increase")
        return cls(s, r)

    @property
    def start(self) -> float:
        return float(self.returns[0])

    @property
    def end(self) -> float:
        return float(self.steps[-1])

    def at(self, steps: np.ndarray) -> np.ndarray:
        """The curve linearly interpolated at ``steps`` (within its range)."""
        return np.interp(steps, self.steps, self.returns)

    def until(self, end: float) -> Curve:
        """The curve cut at step ``end`` (its value there interpolated), so runs of unequal length compare."""
        if end >= self.end:
            return self
        keep = self.steps < end
        steps = np.append(self.steps[keep], end)
        return Curve(steps, np.append(self.returns[keep], self.at(np.array([end]))))


def final_return(curve: Curve, points: int = 1) -> float:
    """Asymptotic performance: the mean of the last ``points`` evaluations."""
    return float(np.mean(curve.returns[-points:]))


def time_to_threshold(curve: Curve, threshold: float) -> float | None:
    """The first evaluated step whose return reaches ``threshold`` (ties count), None if none does."""
    reached = np.nonzero(curve.returns >= threshold)[0]
    return float(curve.steps[reached[0]]) if reached.size else None


def area(curve: Curve, until: float) -> float:
    """Mean return over steps [first step, ``until``]: the area under the (linearly interpolated) curve divided
    by the step range, so curves measured at different steps compare. ``until`` beyond the curve is clipped."""
    end = min(until, curve.end)
    start = float(curve.steps[0])
    if end <= start:
        return curve.start
    inside = curve.steps[(curve.steps > start) & (curve.steps < end)]
    grid = np.concatenate([[start], inside, [end]])
    heights = curve.at(grid)
    return float(np.sum((heights[1:] + heights[:-1]) / 2 * np.diff(grid)) / (end - start))


def common_end(curves: Sequence[Curve]) -> float:
    """The last step every curve reaches: where comparisons of curves with unequal lengths stop."""
    return min(c.end for c in curves)


def iqm(values: np.ndarray | Sequence[float], axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% (robust to one bad seed, less noisy than the median)."""
    return stats.trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)


def stratified_ci(
    groups: Sequence[Sequence[float]], seed: int = 0, resamples: int = 2000
) -> tuple[float, float] | None:
    """Percentile bootstrap 95% CI of the IQM of all values, resampling within each group (task).

    scipy's bootstrap resamples each sample independently, which is exactly the stratified bootstrap when each
    sample is one task's seeds. None when no group has two values (no spread to resample).
    """
    samples = [np.asarray(g, dtype=np.float64) for g in groups if len(g)]
    if not samples or all(s.size < 2 for s in samples):
        return None
    everything = np.concatenate(samples)
    if np.all(everything == everything[0]):
        return float(everything[0]), float(everything[0])
    # A task with one seed has nothing to resample: its value stays in every resample as it is.
    varying = [s for s in samples if s.size >= 2]
    fixed = np.concatenate([s for s in samples if s.size < 2] or [np.empty(0)])

    def combined(*resampled: np.ndarray, axis: int = -1) -> np.ndarray:
        pooled = np.concatenate(resampled, axis=axis)
        if fixed.size:
            pooled = np.concatenate([pooled, np.broadcast_to(fixed, (*pooled.shape[:-1], fixed.size))], axis=axis)
        return np.asarray(iqm(pooled, axis=axis))

    result = stats.bootstrap(
        tuple(varying),
        combined,
        confidence_level=0.95,
        n_resamples=resamples,
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(seed),
    )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


@dataclass
class Estimate:
    """A metric across seeds: interquartile mean, 95% CI (None with fewer than two seeds), and the values."""

    iqm: float
    ci: tuple[float, float] | None
    values: list[float]

    def as_dict(self) -> dict[str, object]:
        return {"iqm": self.iqm, "ci_low": self.ci[0] if self.ci else None,
                "ci_high": self.ci[1] if self.ci else None, "values": self.values}  # fmt: skip

    def below(self, reference: float) -> bool:
        """The whole interval lies below ``reference`` (with one seed there is no interval: False)."""
        return self.ci is not None and self.ci[1] < reference


def estimate(groups: Sequence[Sequence[float]], seed: int = 0) -> Estimate:
    """IQM and stratified bootstrap CI of values grouped by task (one group per target)."""
    values = [float(v) for g in groups for v in g]
    return Estimate(float(iqm(values)), stratified_ci(groups, seed), values)


def grid_statistics(returns: Sequence[float]) -> dict[str, float]:
    """A grid's mean returns summed up: its interquartile mean and mean, and its worst points, the lowest decile
    (the 10th percentile) and the minimum, which an IQM and a mean hide (a policy that fails on one corner of
    the range, such as the nominal model itself)."""
    values = np.asarray(returns, dtype=np.float64)
    return {"iqm": float(iqm(values)), "mean": float(np.mean(values)),
            "lowest_decile": float(np.percentile(values, 10)), "minimum": float(np.min(values))}  # fmt: skip
