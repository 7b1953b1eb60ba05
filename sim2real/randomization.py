"""Domain randomization: distributions, seeded generators, and sampled dynamics changes.

A :class:`RandomChange` is a dynamics change whose value is drawn from a distribution: at every episode reset
(default), once at startup, or every ``every`` steps within an episode. :class:`DynamicsRandomizer` draws and
applies them through :class:`~sim2real.dynamics.Dynamics`; the env wrapper in :mod:`sim2real.domain` calls it
from inside the env's own ``reset`` and ``step``, so it holds when vector envs auto-reset.

Every env owns its generator, derived from the run seed and the env's index (:func:`make_generator`), so the
same seed reproduces the same sequence of parameters and different workers draw different ones, whichever
process (fork, spawn) the env lives in.

Automatic domain randomization (ADR, OpenAI 2019) uses :class:`AdrRange` distributions: a parameter's range
starts at a point and the :class:`~sim2real.training.AdrCallback` widens or narrows each boundary from the
returns of episodes played with that parameter pinned at the boundary.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np

from sim2real.dynamics import Change, Dynamics, Operation, _Resolved
from sim2real.errors import Sim2RealError

When = Literal["reset", "startup", "interval"]
SeedLike = int | Sequence[int] | None


def make_generator(seed: SeedLike, stream: str) -> np.random.Generator:
    """A generator for one named stream of one env: ``seed`` is (run seed, env index, ...) or one int.

    Streams keep the dynamics sampler and each reality-gap wrapper independent of each other.
    """
    salt = zlib.crc32(stream.encode())
    if seed is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(None)))
    entropy = [seed] if isinstance(seed, int) else list(seed)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*entropy, salt])))


# ------------------------------------------------------------------------------------------ distributions


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, size)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), size))

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class Normal:
    """A normal distribution truncated to [low, high] (rejection sampling: draws are exactly in bounds)."""

    mean: float
    std: float
    low: float
    high: float

    def acceptance(self) -> float:
        """Probability mass inside [low, high]."""
        if self.std == 0:
            return 1.0 if self.low <= self.mean <= self.high else 0.0

        def cdf(x: float) -> float:
            return 0.5 * (1 + math.erf((x - self.mean) / (self.std * math.sqrt(2))))

        return cdf(self.high) - cdf(self.low)

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        if self.std == 0:
            return np.full(size, self.mean)
        out = rng.normal(self.mean, self.std, size)
        bad = (out < self.low) | (out > self.high)
        while bad.any():
            out[bad] = rng.normal(self.mean, self.std, int(bad.sum()))
            bad = (out < self.low) | (out > self.high)
        return out

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class Choice:
    values: tuple[float, ...]

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return rng.choice(np.asarray(self.values, dtype=np.float64), size)

    def bounds(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


@dataclass(frozen=True)
class AdrRange:
    """ADR limits: the range starts at ``start`` and may grow to [low, high]; draws are uniform in between."""

    low: float
    high: float
    start: float

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        # Without a curriculum (plain evaluation) the parameter stays where ADR starts it.
        return np.full(size, self.start)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


Distribution = Uniform | LogUniform | Normal | Choice | AdrRange


@dataclass(frozen=True)
class RandomChange:
    """A dynamics change whose value is drawn from ``distribution``.

    Args:
        quantity, op, select: as in :class:`~sim2real.dynamics.Change`.
        distribution: where the value (scale factor, absolute value or offset) comes from.
        when: ``reset`` (every episode), ``startup`` (once per env) or ``interval`` (every ``every`` steps).
        every: steps between draws for ``interval``.
        shared: one draw for all selected elements (default: one draw per element).
    """

    quantity: str
    op: Operation
    distribution: Distribution
    select: str | Sequence[str] | None = None
    when: When = "reset"
    every: int | None = None
    shared: bool = False


# ------------------------------------------------------------------------------------------ sampling


@dataclass
class _Term:
    change: RandomChange
    name: str  # "quantity/selection" ("quantity" for global ones): the ADR parameter name
    resolved: _Resolved  # rows and labels; the value is replaced by each draw
    keys: tuple[str, ...]  # one name per draw: "quantity/element" (the term's name when shared or global)
    draw: np.ndarray  # the current values, one per key

    @property
    def adr(self) -> bool:
        return isinstance(self.change.distribution, AdrRange)


class DynamicsRandomizer:
    """Draws a domain's random changes and applies them, with its fixed changes, to one model.

    Args:
        dynamics: the model's :class:`~sim2real.dynamics.Dynamics`.
        fixed: changes that hold throughout (applied first).
        random: changes drawn from distributions (applied after the fixed ones, so they win on overlap).
        seed: (run seed, env index) or an int; None draws fresh entropy until ``reseed``.
        adr_boundary_probability: the share of resets that pin one ADR parameter at a boundary.
    """

    def __init__(
        self,
        dynamics: Dynamics,
        fixed: Iterable[Change],
        random: Iterable[RandomChange],
        seed: SeedLike = None,
        adr_boundary_probability: float = 0.5,
    ) -> None:
        self.dynamics = dynamics
        self._fixed = dynamics.resolve(fixed)
        self.terms: list[_Term] = []
        for change in random:
            self.terms.append(self._make_term(change))
        self._check_extremes()
        self._seed = seed
        self.rng = make_generator(seed, "dynamics")
        self.values: dict[str, float] = {}
        self.adr_bounds: dict[str, list[float]] = {
            t.name: [t.change.distribution.start] * 2 for t in self.terms if isinstance(t.change.distribution, AdrRange)
        }
        self.adr_boundary_probability = adr_boundary_probability
        self.adr_boundary: tuple[str, str] | None = None  # (parameter, "low"|"high") pinned this episode
        self._steps = 0

    def _make_term(self, change: RandomChange) -> _Term:
        if change.when == "interval" and not change.every:
            raise Sim2RealError(f"{change.quantity}: when: interval needs 'every' (steps between draws)")
        (resolved,) = self.dynamics.resolve(
            [
                Change(
                    quantity=change.quantity, op=change.op, value=change.distribution.bounds()[0], select=change.select
                )
            ]
        )
        quantity = change.quantity
        if resolved.quantity.kind is None:
            name = quantity
        else:
            selection = change.select if isinstance(change.select, str) else "+".join(change.select or ())
            name = f"{quantity}/{selection}"
        if resolved.quantity.kind is None or change.shared:
            keys: tuple[str, ...] = (name,)
        else:
            keys = tuple(
                f"{quantity}/{label}" + (f"/{i}" if resolved.labels.count(label) > 1 else "")
                for label, i in _occurrences(resolved.labels)
            )
        if any(t.name == name for t in self.terms):
            raise Sim2RealError(f"{name}: randomized twice; give each quantity and selection one distribution")
        return _Term(change, name, resolved, keys, np.zeros(len(keys)))

    def _check_extremes(self) -> None:
        """Refuses distributions that can produce invalid physics: both ends are applied and validated."""
        for end in (0, 1):
            changes = [*self._fixed]
            for term in self.terms:
                value = np.asarray(term.change.distribution.bounds()[end], dtype=np.float64)
                changes.append(replace(term.resolved, value=value))
            try:
                self.dynamics.check(changes)
            except Sim2RealError as error:
                side = "low" if end == 0 else "high"
                raise Sim2RealError(f"the distribution's {side} end is invalid: {error}") from None

    def warn_friction(self) -> None:
        """Runs the contact-friction check with every random term at the low end of its range."""
        changes = [*self._fixed]
        for term in self.terms:
            changes.append(replace(term.resolved, value=np.asarray(term.change.distribution.bounds()[0])))
        self.dynamics.apply_resolved(changes, check_friction=True)

    # -------------------------------------------------------------------------------------- drawing
    def reseed(self, seed: int) -> None:
        """Restarts the generator from this env's seed combined with ``seed`` (gymnasium's reset(seed=...))."""
        base = [] if self._seed is None else [self._seed] if isinstance(self._seed, int) else list(self._seed)
        self.rng = make_generator([*base, seed], "dynamics")

    def startup(self) -> None:
        """Draws every term once (startup terms keep this draw; the others are redrawn at reset)."""
        for term in self.terms:
            self._draw(term)
        self.apply()

    def on_reset(self) -> None:
        """Draws the reset and interval terms for a new episode, and maybe pins an ADR boundary."""
        self._steps = 0
        self.adr_boundary = None
        drawn = False
        for term in self.terms:
            if term.change.when != "startup":
                self._draw(term)
                drawn = True
        if self.adr_bounds and self.rng.random() < self.adr_boundary_probability:
            parameter = list(self.adr_bounds)[int(self.rng.integers(len(self.adr_bounds)))]
            side = "low" if self.rng.random() < 0.5 else "high"
            self.adr_boundary = (parameter, side)
            value = self.adr_bounds[parameter][0 if side == "low" else 1]
            for term in self.terms:
                if term.adr and term.name == parameter:
                    term.draw[:] = value
                    self._record(term)
        if drawn:
            self.apply()

    def on_step(self) -> None:
        """Redraws interval terms that are due."""
        self._steps += 1
        due = [t for t in self.terms if t.change.when == "interval" and self._steps % (t.change.every or 1) == 0]
        if due:
            for term in due:
                self._draw(term)
            self.apply()

    def _draw(self, term: _Term) -> None:
        distribution = term.change.distribution
        if isinstance(distribution, AdrRange):
            low, high = self.adr_bounds[term.name]
            term.draw[:] = self.rng.uniform(low, high, term.draw.shape[0])
        else:
            term.draw[:] = distribution.sample(self.rng, term.draw.shape[0])
        self._record(term)

    def _record(self, term: _Term) -> None:
        for key, value in zip(term.keys, term.draw, strict=True):
            self.values[key] = float(value)

    def apply(self) -> None:
        """Writes the fixed changes and the current draws into the model."""
        changes = [*self._fixed]
        for term in self.terms:
            value = term.draw[:, None] if term.draw.shape[0] > 1 else term.draw[0]
            changes.append(replace(term.resolved, value=np.asarray(value)))
        # The distributions' ends were validated up front, so every draw in between is valid.
        self.dynamics.apply_resolved(changes, check_friction=False, validate=False)

    def adr_limits(self) -> dict[str, tuple[float, float, float]]:
        limits = {}
        for term in self.terms:
            distribution = term.change.distribution
            if isinstance(distribution, AdrRange):
                limits[term.name] = (distribution.low, distribution.high, distribution.start)
        return limits

    def set_adr_bounds(self, bounds: dict[str, Sequence[float]]) -> None:
        for parameter, (low, high) in bounds.items():
            if parameter in self.adr_bounds:
                self.adr_bounds[parameter] = [float(low), float(high)]


def _occurrences(labels: Sequence[str]) -> list[tuple[str, int]]:
    """Each label with its running count (per-dof joint quantities repeat the joint's name)."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, -1) + 1
        out.append((label, seen[label]))
    return out
