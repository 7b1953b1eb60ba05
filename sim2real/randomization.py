"""Domain randomization: distributions, seeded generators, and sampled dynamics changes.

A :class:`RandomChange` is a dynamics change whose value is drawn from a distribution: at every episode reset
(default), once at startup, or every ``every`` steps within an episode. Every draw goes one way: uniform numbers
through the distribution's inverse CDF (``transform``). :class:`DynamicsRandomizer` draws them and writes them
through the write plans of :class:`~sim2real.dynamics.Dynamics` (:class:`~sim2real.dynamics.WritePlan`); the
env wrapper in :mod:`sim2real.domain` calls it from inside the env's own ``reset`` and ``step``, so it holds
when vector envs auto-reset.

Every env owns its generator, derived from the run seed and the env's index (:func:`make_generator`), so the
same seed reproduces the same sequence of parameters and different workers draw different ones, whichever
process (fork, spawn) the env lives in.

Automatic domain randomization (ADR, OpenAI 2019) uses :class:`AdrRange` distributions: a parameter's range
starts at a point and the :class:`~sim2real.callbacks.AdrCallback` widens or narrows each boundary from the
returns of episodes played with that parameter pinned at the boundary.
"""

from __future__ import annotations

import math
import numbers
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
from scipy.special import ndtr, ndtri

from sim2real.dynamics import Change, Dynamics, Operation, ResolvedChange, WritePlan, element_key, parameter_name
from sim2real.errors import Sim2RealError
from sim2real.sampling import Sampler, SamplingSpec

When = Literal["reset", "startup", "interval"]
SeedLike = int | Sequence[int] | None


def make_generator(seed: SeedLike, stream: str) -> np.random.Generator:
    """A generator for one named stream of one env: ``seed`` is (run seed, env index, ...) or one int.

    Streams keep the dynamics sampler and each reality-gap wrapper independent of each other.
    """
    salt = zlib.crc32(stream.encode())
    if seed is None:
        return np.random.Generator(np.random.PCG64(np.random.SeedSequence(None)))
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*seed_entropy(seed), salt])))


def seed_entropy(seed: SeedLike) -> list[int]:
    """A seed (an int, numpy's included, or a sequence of them) as a list of Python ints."""
    if seed is None:
        return []
    if isinstance(seed, numbers.Integral):
        return [int(seed)]
    return [int(s) for s in seed]  # type: ignore[union-attr]


class SeededStream:
    """One named random stream of one env (the dynamics sampler, each reality-gap wrapper).

    Seeded from the env's own seed (run seed, env index); gymnasium's ``reset(seed=...)`` restarts it from that
    seed combined with the reset's. An env built without a seed drew its startup values from fresh entropy:
    :meth:`reseed` says so once, so that they are drawn again and a seeded reset is reproducible either way.
    """

    def __init__(self, seed: SeedLike, name: str, has_startup_draws: bool) -> None:
        self.seed = seed
        self.name = name
        self.rng = make_generator(seed, name)
        self._startup_unseeded = seed is None and has_startup_draws

    def reseed(self, seed: int) -> bool:
        """Restarts the generator for ``reset(seed=seed)``; True when the startup draws must be drawn again."""
        self.rng = make_generator([*seed_entropy(self.seed), int(seed)], self.name)
        redraw, self._startup_unseeded = self._startup_unseeded, False
        return redraw


# ------------------------------------------------------------------------------------------ distributions


def normal_mass(mean: float, std: float, low: float, high: float) -> float:
    """Probability that a normal(mean, std) draw lands in [low, high]."""
    if std == 0:
        return 1.0 if low <= mean <= high else 0.0

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))

    return cdf(high) - cdf(low)


class _Sampled:
    """Every distribution draws the same way: uniform numbers in [0, 1) through its ``transform`` (the inverse
    of its CDF). One path for every sampler (a randomizer's batch, an interval redraw, a wrapper's noise level)."""

    def transform(self, u: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def affine(self, current: Sequence[float] | None = None) -> tuple[float, float] | None:
        """(low, span) when ``transform(u)`` is ``low + span * u`` (a batch then draws it with the others in one
        vector operation); None for other shapes."""
        return None

    def sample(self, rng: np.random.Generator, size: int) -> np.ndarray:
        return self.transform(rng.random(size))


@dataclass(frozen=True)
class Uniform(_Sampled):
    low: float
    high: float

    def affine(self, current: Sequence[float] | None = None) -> tuple[float, float]:
        return self.low, self.high - self.low

    def transform(self, u: np.ndarray) -> np.ndarray:
        low, span = self.affine()
        return low + span * u

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class LogUniform(_Sampled):
    low: float
    high: float

    def transform(self, u: np.ndarray) -> np.ndarray:
        return np.exp(math.log(self.low) + (math.log(self.high) - math.log(self.low)) * u)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class Normal(_Sampled):
    """A normal distribution truncated to [low, high] (inverse-CDF sampling: draws are exactly in bounds)."""

    mean: float
    std: float
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.high or self.acceptance() <= 0:
            raise Sim2RealError(
                f"normal(mean={self.mean}, std={self.std}) has no mass in [low, high] = [{self.low}, {self.high}]"
            )

    def acceptance(self) -> float:
        """Probability mass inside [low, high]."""
        return normal_mass(self.mean, self.std, self.low, self.high)

    def transform(self, u: np.ndarray) -> np.ndarray:
        if self.std == 0:
            return np.full(np.shape(u), self.mean)
        a, b = ndtr((self.low - self.mean) / self.std), ndtr((self.high - self.mean) / self.std)
        return np.clip(self.mean + self.std * ndtri(a + (b - a) * u), self.low, self.high)

    def bounds(self) -> tuple[float, float]:
        return self.low, self.high


@dataclass(frozen=True)
class Choice(_Sampled):
    values: tuple[float, ...]

    def transform(self, u: np.ndarray) -> np.ndarray:
        return np.asarray(self.values, dtype=np.float64)[(np.asarray(u) * len(self.values)).astype(np.intp)]

    def bounds(self) -> tuple[float, float]:
        return min(self.values), max(self.values)


@dataclass(frozen=True)
class AdrRange(_Sampled):
    """ADR limits: the range starts at ``start`` and may grow to [low, high]; draws are uniform in the current
    range, which the randomizer's curriculum holds (``current``); without one it is the start point alone."""

    low: float
    high: float
    start: float

    def affine(self, current: Sequence[float] | None = None) -> tuple[float, float]:
        low, high = current if current is not None else (self.start, self.start)
        return low, high - low

    def transform(self, u: np.ndarray, current: Sequence[float] | None = None) -> np.ndarray:
        low, span = self.affine(current)
        return low + span * u

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
    name: str  # parameter_name(quantity, select): the ADR parameter name
    resolved: ResolvedChange  # rows and labels; the value is replaced by each draw
    keys: tuple[str, ...]  # one name per draw: "quantity/element" (the term's name when shared or global)
    plan: WritePlan  # where the draws go in the model, prepared once
    draw: np.ndarray  # the current values, one per key (a view into its batch's buffer)
    column: np.ndarray  # ``draw`` as its plan writes it: one row per element, or one row for all (a view)

    @property
    def adr(self) -> bool:
        return isinstance(self.change.distribution, AdrRange)


class _Batch:
    """Draws a group of terms from one uniform vector, each term's slice through its distribution's transform.

    Each term's ``draw`` is a view into the batch's buffer, so drawing the batch updates every term. Terms whose
    transform is affine (uniform, ADR) are drawn together: ``low + span * u`` over the whole buffer, with the
    per-element ``low`` and ``span`` set once (an ADR term's again at each draw, from its current range); the
    others overwrite their slice through their own transform.
    """

    def __init__(self, terms: list[_Term]) -> None:
        self.terms = terms
        sizes = [len(t.keys) for t in terms]
        self.x = np.zeros(sum(sizes))
        self.u = np.zeros(self.x.size)
        self.keys = [key for t in terms for key in t.keys]
        self.owners = [t for t in terms for _ in t.keys]  # the term of each key
        self.low, self.span = np.zeros(self.x.size), np.zeros(self.x.size)
        self.adr: list[tuple[AdrRange, str, slice]] = []  # affine, with a range that moves (and its name)
        self.other: list[tuple[_Term, slice]] = []  # not affine: drawn through their own transform
        start = 0
        for term, size in zip(terms, sizes, strict=True):
            part = slice(start, start + size)
            term.draw = self.x[part]
            term.column = term.draw.reshape(-1, 1)
            distribution = term.change.distribution
            affine = distribution.affine()
            if isinstance(distribution, AdrRange):
                self.adr.append((distribution, term.name, part))
            elif affine is not None:
                self.low[part], self.span[part] = affine
            else:
                self.other.append((term, part))
            start += size

    def draw(
        self, rng: np.random.Generator, adr_bounds: dict[str, list[float]], sampler: Sampler | None = None
    ) -> None:
        u = rng.random(out=self.u) if sampler is None else sampler.draw(rng, self.u)
        for distribution, name, part in self.adr:
            self.low[part], self.span[part] = distribution.affine(adr_bounds[name])
        np.add(self.low, np.multiply(self.span, u, out=self.x), out=self.x)
        for term, part in self.other:
            self.x[part] = _transform(term, u[part], adr_bounds)


def _transform(term: _Term, u: np.ndarray, adr_bounds: dict[str, list[float]]) -> np.ndarray:
    distribution = term.change.distribution
    if isinstance(distribution, AdrRange):
        return distribution.transform(u, adr_bounds[term.name])
    return distribution.transform(u)


class DynamicsRandomizer:
    """Draws a domain's random changes and applies them, with its fixed changes, to one model.

    Args:
        dynamics: the model's :class:`~sim2real.dynamics.Dynamics`.
        fixed: changes that hold throughout (applied first).
        random: changes drawn from distributions (applied after the fixed ones, so they win on overlap).
        seed: (run seed, env index) or an int; None draws fresh entropy until ``reseed``.
        adr_boundary_probability: the share of resets that pin one ADR parameter at a boundary.
        sampling: how the reset draws are weighted by recent episodes (:mod:`sim2real.sampling`); None: uniform.
    """

    def __init__(
        self,
        dynamics: Dynamics,
        fixed: Iterable[Change],
        random: Iterable[RandomChange],
        seed: SeedLike = None,
        adr_boundary_probability: float = 0.5,
        sampling: SamplingSpec | None = None,
    ) -> None:
        self.dynamics = dynamics
        self._fixed = dynamics.resolve(fixed)
        self.terms: list[_Term] = []
        for change in random:
            self.terms.append(self._make_term(change))
        self._check_extremes()
        self._derived = any(t.resolved.quantity.derived for t in self.terms)
        self.interval_terms = [t for t in self.terms if t.change.when == "interval"]
        self._startup_batch = _Batch([t for t in self.terms if t.change.when == "startup"])
        self._reset_batch = _Batch([t for t in self.terms if t.change.when != "startup"])
        self.sampler = None
        if sampling is not None and sampling.mode != "uniform" and self._reset_batch.terms:
            if any(t.adr for t in self.terms):
                raise Sim2RealError("sampling: ADR moves its own ranges from boundary episodes; use one or the other")
            owners = self._reset_batch.owners
            wanted = sampling.quantities
            columns = np.flatnonzero(
                [t.change.when == "reset" and (wanted is None or t.change.quantity in wanted) for t in owners]
            )
            self.sampler = Sampler(sampling, len(owners), columns) if columns.size else None
        self.stream = SeededStream(seed, "dynamics", bool(self._startup_batch.terms))
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
        if isinstance(change.distribution, AdrRange) and change.when != "reset":
            # An ADR episode is tagged with the boundary it evaluates; a draw at startup or mid-episode would
            # make the tag lie.
            raise Sim2RealError(f"{change.quantity}: dist: adr is drawn at every reset (when: {change.when} given)")
        (resolved,) = self.dynamics.resolve(
            [
                Change(
                    quantity=change.quantity, op=change.op, value=change.distribution.bounds()[0], select=change.select
                )
            ]
        )
        global_quantity = resolved.quantity.kind is None
        name = parameter_name(change.quantity, None if global_quantity else change.select)
        if global_quantity or change.shared:
            keys: tuple[str, ...] = (name,)
        else:
            keys = tuple(
                element_key(change.quantity, label, i if resolved.labels.count(label) > 1 else None)
                for label, i in _occurrences(resolved.labels)
            )
        if any(t.name == name for t in self.terms):
            raise Sim2RealError(f"{name}: randomized twice; give each quantity and selection one distribution")
        draw = np.zeros(len(keys))
        return _Term(change, name, resolved, keys, self.dynamics.plan(resolved), draw, draw.reshape(-1, 1))

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
    @property
    def rng(self) -> np.random.Generator:
        return self.stream.rng

    def reseed(self, seed: int) -> None:
        """Restarts the generator from this env's seed combined with ``seed`` (gymnasium's reset(seed=...)).

        Startup terms stay drawn once per env, except that an env built without a seed draws them again at its
        first seeded reset (see :class:`SeededStream`).
        """
        if self.sampler is not None:
            self.sampler.forget()
        if self.stream.reseed(seed):
            self._draw_batch(self._startup_batch)
            self.apply(self._startup_batch.terms)

    def startup(self) -> None:
        """Draws every term once (startup terms keep this draw; the others are redrawn at reset)."""
        for batch in (self._startup_batch, self._reset_batch):
            self._draw_batch(batch)
        self.apply(self.terms)

    def on_reset(self) -> None:
        """Draws the reset and interval terms for a new episode, and maybe pins an ADR boundary."""
        self._steps = 0
        self.adr_boundary = None
        batch = self._reset_batch
        if not batch.terms:
            return
        self._draw_batch(batch, self.sampler)
        if self.adr_bounds and self.rng.random() < self.adr_boundary_probability:
            parameter = list(self.adr_bounds)[int(self.rng.integers(len(self.adr_bounds)))]
            side = "low" if self.rng.random() < 0.5 else "high"
            self.adr_boundary = (parameter, side)
            value = self.adr_bounds[parameter][0 if side == "low" else 1]
            for term in self.terms:
                if term.adr and term.name == parameter:
                    term.draw[:] = value
                    self._record(term)
        self.apply(batch.terms)

    def on_step(self) -> None:
        """Redraws interval terms that are due."""
        if not self.interval_terms:
            return
        self._steps += 1
        due = [t for t in self.interval_terms if self._steps % (t.change.every or 1) == 0]
        if due:
            for term in due:
                self._draw(term)
            self.apply(due)

    def _draw(self, term: _Term) -> None:
        term.draw[:] = _transform(term, self.rng.random(len(term.draw)), self.adr_bounds)
        self._record(term)

    def _draw_batch(self, batch: _Batch, sampler: Sampler | None = None) -> None:
        batch.draw(self.rng, self.adr_bounds, sampler)
        self.values.update(zip(batch.keys, batch.x.tolist(), strict=True))

    def reset_shares(self) -> dict[str, float]:
        """Each reset-drawn value's place in its distribution (its uniform coordinate: 0 the lowest, 1 the
        highest), by ``quantity/element``; an ADR boundary episode's pinned value is not in it."""
        batch = self._reset_batch
        pinned = set(self.adr_boundary[:1]) if self.adr_boundary else set()
        return {key: float(u) for term, key, u in zip(batch.owners, batch.keys, batch.u, strict=True)
                if term.change.when == "reset" and term.name not in pinned}  # fmt: skip

    def episode_ended(self, episode_return: float, length: int) -> None:
        """Tells the sampler (if any) how the episode on the current reset draw went."""
        if self.sampler is not None:
            self.sampler.episode_ended(self._reset_batch.u, episode_return, length)

    def _record(self, term: _Term) -> None:
        self.values.update(zip(term.keys, term.draw.tolist(), strict=True))

    def apply(self, terms: Sequence[_Term]) -> None:
        """Writes the current draws of ``terms`` into the model (the fixed changes stay as they were applied).

        The hot path of every reset: the rows and nominal values were resolved once, the distributions' ends
        validated once, so this is one array write per term and, for mass, armature or gear, mj_setConst.
        """
        for term in terms:
            term.plan.write(term.column)
        if self._derived:
            self.dynamics.recompute_derived()

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
