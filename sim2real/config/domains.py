"""Schema of a domain: dynamics changes (fixed or drawn from a distribution), reality-gap wrappers and the ADR
curriculum.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, model_validator

from sim2real.config.common import (
    _OPERATIONS,
    FiniteFloat,
    PositiveFloat,
    PositiveInt,
    Quantity,
    Strict,
    _check_select,
)
from sim2real.randomization import normal_mass


class _Bounded(Strict):
    """A distribution with [low, high] bounds, checked to be in order."""

    @model_validator(mode="after")
    def _ordered_bounds(self) -> _Bounded:
        low, high = getattr(self, "low", None), getattr(self, "high", None)
        if low is not None and high is not None and low > high:
            raise ValueError(f"inverted bounds, low {low} > high {high}")
        return self


class UniformDist(_Bounded):
    """Uniform on [low, high]."""

    dist: Literal["uniform"]
    low: FiniteFloat
    high: FiniteFloat


class LogUniformDist(_Bounded):
    """Log-uniform on [low, high] (both > 0): as likely to halve as to double."""

    dist: Literal["log_uniform"]
    low: Annotated[float, Field(gt=0, allow_inf_nan=False)]
    high: Annotated[float, Field(gt=0, allow_inf_nan=False)]


class NormalDist(_Bounded):
    """Normal with ``mean`` and ``std``, truncated to [low, high] (bounds are required: physics needs them)."""

    dist: Literal["normal"]
    mean: FiniteFloat
    std: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    low: FiniteFloat
    high: FiniteFloat

    @model_validator(mode="after")
    def _enough_mass(self) -> NormalDist:
        if self.low <= self.high and normal_mass(self.mean, self.std, self.low, self.high) < 1e-3:
            raise ValueError(f"[low, high] = [{self.low}, {self.high}] holds under 0.1% of this normal's mass")
        return self


class ChoiceDist(Strict):
    """One of ``values``, each equally likely."""

    dist: Literal["choice"]
    values: Annotated[list[FiniteFloat], Field(min_length=1)]


class AdrDist(_Bounded):
    """Automatic domain randomization: the range starts at ``start`` and may grow to [low, high]."""

    dist: Literal["adr"]
    low: FiniteFloat
    high: FiniteFloat
    start: FiniteFloat | None = Field(None, description="where the range starts (default: 1 for scale, 0 for offset)")


DistributionConfig = Annotated[
    UniformDist | LogUniformDist | NormalDist | ChoiceDist | AdrDist, Field(discriminator="dist")
]


class DynamicsChange(Strict):
    """A change of one model quantity on some elements, computed from the nominal value.

    The value is a number, a list of numbers (one per column: gravity, ctrlrange), or a distribution that is
    drawn at every reset (``when: reset``), once per env (``startup``) or every ``every`` steps (``interval``).
    """

    quantity: Quantity = Field(description="which model quantity, e.g. body_mass or geom_friction")
    select: str | list[str] | None = Field(
        None, description="element name, list of names, or 'all' (not used by gravity and timestep)"
    )
    scale: FiniteFloat | list[FiniteFloat] | DistributionConfig | None = Field(
        None, description="multiply the nominal value"
    )
    set: FiniteFloat | list[FiniteFloat] | DistributionConfig | None = Field(None, description="absolute value")
    offset: FiniteFloat | list[FiniteFloat] | DistributionConfig | None = Field(
        None, description="add to the nominal value"
    )
    when: Literal["reset", "startup", "interval"] | None = Field(None, description="when a distribution is drawn")
    every: PositiveInt | None = Field(None, description="steps between draws, for when: interval")
    shared: bool = Field(False, description="one draw for all selected elements (default: one per element)")

    @model_validator(mode="after")
    def _one_operation(self) -> DynamicsChange:
        given = [op for op in _OPERATIONS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of scale, set, offset (got {', '.join(given) or 'none'})")
        _check_select(self.quantity, self.select)
        value = getattr(self, given[0])
        if isinstance(value, BaseModel):
            if isinstance(value, AdrDist) and self.when not in (None, "reset"):
                raise ValueError("dist: adr is drawn at every reset; when: startup or interval does not apply")
            if isinstance(value, AdrDist) and value.start is None:
                if given[0] == "set":
                    raise ValueError("set: an adr distribution of absolute values needs 'start'")
                value.start = 1.0 if given[0] == "scale" else 0.0
            if isinstance(value, AdrDist) and not (value.low <= value.start <= value.high):  # type: ignore[operator]
                raise ValueError(f"{given[0]}: adr start {value.start} is outside [low, high]")
            if self.when == "interval" and self.every is None:
                raise ValueError("when: interval needs 'every' (steps between draws)")
            if self.every is not None and self.when != "interval":
                raise ValueError("'every' is only for when: interval")
        elif self.when is not None or self.every is not None or self.shared:
            raise ValueError("when, every and shared apply only to a value drawn from a distribution")
        return self

    @property
    def op(self) -> Literal["scale", "set", "offset"]:
        """The operation given: scale, set or offset."""
        return next(o for o in _OPERATIONS if getattr(self, o) is not None)


WrapperValue = FiniteFloat | list[FiniteFloat] | DistributionConfig


class _GapTerm(Strict):
    when: Literal["reset", "startup"] = Field("reset", description="draw a distribution at every reset or once")


class NoiseTerm(_GapTerm):
    std: WrapperValue = Field(description="standard deviation (per dimension for a list)")


class BiasTerm(_GapTerm):
    bias: WrapperValue = Field(description="offset added to each observation dimension")


class LatencyTerm(_GapTerm):
    steps: Annotated[int, Field(ge=0)] | ChoiceDist | UniformDist = Field(description="delay in control steps")


class LagTerm(_GapTerm):
    tau: WrapperValue = Field(description="the motor's first-order time constant in seconds (0: no lag)")


class ScaleTerm(_GapTerm):
    scale: WrapperValue = Field(description="factor applied to each action (actuator strength)")


class SaturationTerm(_GapTerm):
    limit: FiniteFloat | DistributionConfig = Field(description="fraction of the action range let through")


class RealityGap(Strict):
    """Reality-gap wrappers of a domain, applied in this order around the env (innermost first)."""

    observation_bias: BiasTerm | None = None
    observation_noise: NoiseTerm | None = None
    action_scale: ScaleTerm | None = None
    action_saturation: SaturationTerm | None = None
    action_lag: LagTerm | None = None
    action_noise: NoiseTerm | None = None
    action_latency: LatencyTerm | None = None


class AdrConfig(Strict):
    """Automatic domain randomization (OpenAI 2019) of the domain's ``dist: adr`` parameters.

    At a share ``boundary_probability`` of resets one parameter is pinned at one end of its current range;
    after ``episodes`` such episodes, the end moves out by ``step`` if their mean return is at least
    ``high_threshold`` and in by ``step`` if it is at most ``low_threshold``.
    """

    low_threshold: FiniteFloat = Field(description="narrow a boundary whose mean return is at most this")
    high_threshold: FiniteFloat = Field(description="widen a boundary whose mean return is at least this")
    step: PositiveFloat = Field(0.05, description="how far a boundary moves (in the parameter's units)")
    episodes: PositiveInt = Field(10, description="boundary episodes per decision")
    boundary_probability: Annotated[float, Field(gt=0, le=1)] = 0.5

    @model_validator(mode="after")
    def _ordered(self) -> AdrConfig:
        if self.low_threshold >= self.high_threshold:
            raise ValueError(f"low_threshold {self.low_threshold} must be below high_threshold {self.high_threshold}")
        return self


class SamplingConfig(Strict):
    """How training draws the dynamics changes drawn at each reset (see :mod:`sim2real.sampling`).

    ``uniform``: as the distributions say, one draw per episode. ``steps``: a draw is kept in inverse proportion
    to the episode length nearby draws had, so each region of the distribution gets its share of the samples,
    not of the episodes (a region where the policy falls within 20 steps otherwise holds a few hundredths of
    them). ``failures``: regions where recent episodes returned least are drawn most. Either way every point
    keeps at least ``floor`` times its density. Evaluations on the domain draw as the distributions say.
    """

    mode: Literal["uniform", "steps", "failures"] = Field("uniform", description="uniform, steps or failures")
    floor: Annotated[float, Field(gt=0, le=1)] = Field(
        0.25, description="the share of each point's own density it keeps at least (1: uniform)"
    )
    memory: Annotated[int, Field(ge=1, le=4096)] = Field(128, description="recent episodes per env the weights use")
    neighbours: Annotated[int, Field(ge=1, le=64)] = Field(
        5, description="nearest past episodes that give a draw's length or return"
    )
    temperature: Annotated[float, Field(gt=0, le=10, allow_inf_nan=False)] = Field(
        0.25, description="failures: how sharply low returns are favoured, in units of the memory's return range"
    )
    tries: Annotated[int, Field(ge=1, le=1024)] = Field(32, description="candidate draws per reset at most")
    quantities: list[Quantity] | None = Field(
        None, description="weight only the draws of these quantities (default: every one drawn at reset)"
    )

    @model_validator(mode="after")
    def _enough_memory(self) -> SamplingConfig:
        if self.neighbours > self.memory:
            raise ValueError(f"neighbours {self.neighbours} is more than the memory of {self.memory} episodes")
        return self


class Domain(Strict):
    """A simulation: the base env with some dynamics changed (fixed or randomized) and reality-gap wrappers."""

    dynamics: list[DynamicsChange] = Field(default_factory=list, description="changes from the nominal model")
    reality_gap: RealityGap = Field(default_factory=lambda: RealityGap())
    adr: AdrConfig | None = Field(None, description="curriculum for the dist: adr parameters")
    sampling: SamplingConfig | None = Field(
        None, description="how training draws the changes drawn at each reset (default: uniform)"
    )

    @model_validator(mode="after")
    def _adr_needs_parameters(self) -> Domain:
        has_adr = any(isinstance(getattr(d, op), AdrDist) for d in self.dynamics for op in _OPERATIONS)
        if has_adr and self.adr is None:
            raise ValueError("dist: adr parameters need an 'adr' section (thresholds, step, episodes)")
        if self.adr is not None and not has_adr:
            raise ValueError("'adr' is set but no dynamics change uses dist: adr")
        return self

    @model_validator(mode="after")
    def _sampling_needs_reset_draws(self) -> Domain:
        if self.sampling is None or self.sampling.mode == "uniform":
            return self
        if self.adr is not None:
            raise ValueError("sampling: ADR moves its own ranges from boundary episodes; use one or the other")
        drawn = [d for d in self.dynamics if isinstance(getattr(d, d.op), BaseModel) and d.when in (None, "reset")]
        if not drawn:
            raise ValueError(
                f"sampling: {self.sampling.mode} weights the dynamics changes drawn at each reset, and none is "
                "(give one a distribution, when: reset)"
            )
        names = sorted({d.quantity for d in drawn})
        for quantity in self.sampling.quantities or []:
            if quantity not in names:
                raise ValueError(
                    f"sampling.quantities: {quantity} is not drawn at reset here (drawn: {', '.join(names)})"
                )
        return self
