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
import numbers
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import mujoco
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
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([*seed_entropy(seed), salt])))


def seed_entropy(seed: SeedLike) -> list[int]:
    """A seed (an int, numpy's included, or a sequence of them) as a list of Python ints."""
    if seed is None:
        return []
    if isinstance(seed, numbers.Integral):
        return [int(seed)]
    return [int(s) for s in seed]  # type: ignore[union-attr]


# ------------------------------------------------------------------------------------------ distributions


def normal_mass(mean: float, std: float, low: float, high: float) -> float:
    """Probability that a normal(mean, std) draw lands in [low, high]."""
    if std == 0:
        return 1.0 if low <= mean <= high else 0.0

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((x - mean) / (std * math.sqrt(2))))

    return cdf(high) - cdf(low)


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

    def __post_init__(self) -> None:
        if not self.low <= self.high or self.acceptance() <= 0:
            raise Sim2RealError(
                f"normal(mean={self.mean}, std={self.std}) has no mass in [low, high] = [{self.low}, {self.high}]"
            )

    def acceptance(self) -> float:
        """Probability mass inside [low, high]."""
        return normal_mass(self.mean, self.std, self.low, self.high)

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
    # The write plan, prepared once: the model memory of the selected rows and their nominal values.
    view: np.ndarray | None  # None for timestep, which is not an array
    base: np.ndarray  # nominal values of the rows, (rows x columns)
    inertia_base: np.ndarray | None = None  # nominal inertia of the rows, for body_mass
    inertia_view: np.ndarray | None = None
    rows: slice | np.ndarray = field(init=False)  # a slice when the rows are contiguous (faster to write)
    column: np.ndarray = field(init=False)  # ``draw`` as a column: one row per element, or one shared value
    _buffer: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._buffer = np.empty_like(self.base)
        self.column = self.draw.reshape(-1, 1)
        rows = self.resolved.rows
        contiguous = len(rows) > 0 and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
        self.rows = slice(int(rows[0]), int(rows[0]) + len(rows)) if contiguous else rows

    @property
    def adr(self) -> bool:
        return isinstance(self.change.distribution, AdrRange)

    def write(self, model: mujoco.MjModel) -> None:
        """Writes the current draw into the model: nominal combined with the draw, as in Dynamics.apply."""
        draw = self.column
        values = self._buffer
        if self.change.op == "scale":
            np.multiply(self.base, draw, out=values)
        elif self.change.op == "offset":
            np.add(self.base, draw, out=values)
        else:
            values[...] = draw
        if self.view is None:
            model.opt.timestep = float(values[0, 0])
            return
        self.view[self.rows] = values
        if self.inertia_view is not None and self.inertia_base is not None:
            self.inertia_view[self.rows] = self.inertia_base * (values[:, :1] / self.base[:, :1])


class _Batch:
    """Draws a group of terms in one pass: one uniform vector, transformed per distribution family.

    Each term's ``draw`` is a view into the batch's buffer, so drawing the batch updates every term.
    """

    def __init__(self, terms: list[_Term]) -> None:
        self.terms = terms
        sizes = [len(t.keys) for t in terms]
        self.total = sum(sizes)
        self.x = np.zeros(self.total)
        self.keys = [key for t in terms for key in t.keys]
        self.lo = np.zeros(self.total)
        self.span = np.zeros(self.total)
        log: list[int] = []
        self.choices: list[tuple[slice, np.ndarray]] = []
        self.normals: list[tuple[slice, Distribution]] = []
        self.adr: list[tuple[slice, str]] = []
        start = 0
        for term, size in zip(terms, sizes, strict=True):
            part = slice(start, start + size)
            term.draw = self.x[part]
            term.column = term.draw.reshape(-1, 1)
            distribution = term.change.distribution
            if isinstance(distribution, Uniform):
                self.lo[part], self.span[part] = distribution.low, distribution.high - distribution.low
            elif isinstance(distribution, LogUniform):
                self.lo[part] = math.log(distribution.low)
                self.span[part] = math.log(distribution.high) - math.log(distribution.low)
                log.extend(range(start, start + size))
            elif isinstance(distribution, Choice):
                self.choices.append((part, np.asarray(distribution.values, dtype=np.float64)))
            elif isinstance(distribution, AdrRange):
                self.adr.append((part, term.name))
            else:
                self.normals.append((part, distribution))
            start += size
        self.log = np.asarray(log, dtype=np.intp)

    def draw(self, rng: np.random.Generator, adr_bounds: dict[str, list[float]]) -> None:
        u = rng.random(self.total)
        x = self.x
        np.multiply(self.span, u, out=x)
        x += self.lo
        if self.log.size:
            x[self.log] = np.exp(x[self.log])
        for part, values in self.choices:
            x[part] = values[(u[part] * len(values)).astype(np.intp)]
        for part, name in self.adr:
            low, high = adr_bounds[name]
            x[part] = low + (high - low) * u[part]
        for part, normal in self.normals:
            x[part] = normal.sample(rng, part.stop - part.start)


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
        self._derived = any(t.resolved.quantity.derived for t in self.terms)
        dynamics.mark_changed(t.change.quantity for t in self.terms)
        self.interval_terms = [t for t in self.terms if t.change.when == "interval"]
        self._startup_batch = _Batch([t for t in self.terms if t.change.when == "startup"])
        self._reset_batch = _Batch([t for t in self.terms if t.change.when != "startup"])
        self._seed = seed
        self._startup_pending = seed is None and bool(self._startup_batch.terms)
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
        base = self.dynamics.nominal_values(quantity)[resolved.rows]
        inertia = self.dynamics.nominal_inertia()[resolved.rows] if quantity == "body_mass" else None
        view = self.dynamics.writable_view(quantity)
        inertia_view = self.dynamics.model.body_inertia if quantity == "body_mass" else None
        return _Term(change, name, resolved, keys, np.zeros(len(keys)), view, base, inertia, inertia_view)

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
        """Restarts the generator from this env's seed combined with ``seed`` (gymnasium's reset(seed=...)).

        An env built without a seed drew its startup terms from fresh entropy; its first seeded reset draws
        them again, so a seeded reset is reproducible either way. Startup terms stay drawn once per env.
        """
        self.rng = make_generator([*seed_entropy(self._seed), int(seed)], "dynamics")
        if self._startup_pending:
            self._startup_pending = False
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
        self._draw_batch(batch)
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
        distribution = term.change.distribution
        if isinstance(distribution, AdrRange):
            low, high = self.adr_bounds[term.name]
            term.draw[:] = self.rng.uniform(low, high, term.draw.shape[0])
        else:
            term.draw[:] = distribution.sample(self.rng, term.draw.shape[0])
        self._record(term)

    def _draw_batch(self, batch: _Batch) -> None:
        batch.draw(self.rng, self.adr_bounds)
        self.values.update(zip(batch.keys, batch.x.tolist(), strict=True))

    def _record(self, term: _Term) -> None:
        self.values.update(zip(term.keys, term.draw.tolist(), strict=True))

    def apply(self, terms: Sequence[_Term]) -> None:
        """Writes the current draws of ``terms`` into the model (the fixed changes stay as they were applied).

        The hot path of every reset: the rows and nominal values were resolved once, the distributions' ends
        validated once, so this is one array write per term and, for mass, armature or gear, mj_setConst.
        """
        model = self.dynamics.model
        for term in terms:
            term.write(model)
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
