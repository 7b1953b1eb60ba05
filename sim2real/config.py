"""Typed schema of the YAML files in ``configs/``: the only place that knows the file format.

A config names a base env, a ``source`` domain, one or more named ``targets``, the algorithm with its
hyperparameters, and the training, evaluation and run-folder settings. Every field is typed; unknown keys,
wrong types and out-of-range values are refused with the file, the field path and what is allowed.

This module is the schema and the file format (YAML, ``extends:``, ``FIELD=VALUE`` overrides) only: the
runtime objects a config describes are built where they are used (a domain's changes, distributions and
wrappers in :mod:`sim2real.domain`, the run folder's name in :mod:`sim2real.runs`, HPARAMS in
:mod:`sim2real.logging`), so nothing here imports the simulator side.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import numpy as np
import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from sim2real.dynamics import QUANTITIES, parameter_name
from sim2real.errors import Sim2RealError
from sim2real.randomization import normal_mass

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# A name becomes a folder (experiments, targets, methods, variants): at most 100 characters, well inside the
# 255 bytes a file name may have, checked before any folder exists.
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=100)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
Discount = Annotated[float, Field(gt=0, le=1)]
Activation = Literal["tanh", "relu", "elu", "leaky_relu"]


def _known_quantity(quantity: str) -> str:
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity '{quantity}' (allowed: {', '.join(QUANTITIES)})")
    return quantity


Quantity = Annotated[str, AfterValidator(_known_quantity)]


def _check_select(quantity: str, select: str | list[str] | None) -> None:
    """Per-element quantities need a selection; gravity and timestep do not."""
    if QUANTITIES[quantity].kind is not None and select is None:
        raise ValueError(f"{quantity} needs 'select': an element name, a list of names, or 'all'")


class Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, not silently ignored."""

    # No infinities or NaNs anywhere: YAML reads .inf and .nan as numbers, and no setting means them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


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
_OPERATIONS: tuple[Literal["scale", "set", "offset"], ...] = ("scale", "set", "offset")


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


class Domain(Strict):
    """A simulation: the base env with some dynamics changed (fixed or randomized) and reality-gap wrappers."""

    dynamics: list[DynamicsChange] = Field(default_factory=list, description="changes from the nominal model")
    reality_gap: RealityGap = Field(default_factory=lambda: RealityGap())
    adr: AdrConfig | None = Field(None, description="curriculum for the dist: adr parameters")

    @model_validator(mode="after")
    def _adr_needs_parameters(self) -> Domain:
        has_adr = any(isinstance(getattr(d, op), AdrDist) for d in self.dynamics for op in _OPERATIONS)
        if has_adr and self.adr is None:
            raise ValueError("dist: adr parameters need an 'adr' section (thresholds, step, episodes)")
        if self.adr is not None and not has_adr:
            raise ValueError("'adr' is set but no dynamics change uses dist: adr")
        return self


class LinearSchedule(Strict):
    """A value that goes linearly from ``initial`` to ``final`` over training."""

    initial: Annotated[float, Field(gt=0)]
    final: Annotated[float, Field(ge=0)] = 0.0


class AlgoBase(Strict):
    """What every algorithm has: the policy network and the optimizer's learning rate and discount."""

    net_arch: list[PositiveInt] = Field(default=[64, 64], description="hidden layer sizes")
    activation: Activation = "tanh"
    learning_rate: PositiveFloat | LinearSchedule = 3e-4
    gamma: Discount = 0.99


class PPOConfig(AlgoBase):
    """PPO hyperparameters (stable-baselines3 names and defaults)."""

    name: Literal["ppo"]
    n_steps: Annotated[int, Field(gt=1)] = 2048
    batch_size: Annotated[int, Field(gt=1)] = 64
    n_epochs: PositiveInt = 10
    gae_lambda: Annotated[float, Field(ge=0, le=1)] = 0.95
    clip_range: PositiveFloat = 0.2
    ent_coef: NonNegativeFloat = 0.0
    vf_coef: NonNegativeFloat = 0.5
    max_grad_norm: PositiveFloat = 0.5
    target_kl: PositiveFloat | None = None
    log_std_init: FiniteFloat = 0.0


class SACConfig(AlgoBase):
    """SAC hyperparameters (stable-baselines3 names and defaults)."""

    name: Literal["sac"]
    net_arch: list[PositiveInt] = Field(default=[256, 256], description="hidden layer sizes")
    activation: Activation = "relu"
    buffer_size: PositiveInt = 1_000_000
    learning_starts: Annotated[int, Field(ge=0)] = 100
    batch_size: PositiveInt = 256
    tau: Discount = 0.005
    train_freq: PositiveInt = 1
    gradient_steps: Annotated[int, Field(ge=-1)] = 1
    ent_coef: Literal["auto"] | PositiveFloat = "auto"
    target_update_interval: PositiveInt = 1
    log_std_init: FiniteFloat = -3.0


class RecurrentPPOConfig(PPOConfig):
    """sb3-contrib's RecurrentPPO: PPO with an LSTM before the actor's (and the critic's) MLP, so that the policy
    carries a memory of the episode (its sb3-contrib names and defaults, but a 64-unit LSTM)."""

    name: Literal["recurrent_ppo"]  # type: ignore[assignment]
    n_steps: Annotated[int, Field(gt=1)] = 128
    batch_size: Annotated[int, Field(gt=1)] = 128
    lstm_hidden_size: PositiveInt = Field(64, description="LSTM units")
    n_lstm_layers: PositiveInt = 1
    shared_lstm: bool = Field(False, description="one LSTM for the actor and the critic")
    enable_critic_lstm: bool = Field(True, description="the critic's own LSTM (when not shared)")


AlgoConfig = Annotated[PPOConfig | SACConfig | RecurrentPPOConfig, Field(discriminator="name")]


class NormalizeConfig(Strict):
    """Running normalization of observations and rewards (stable-baselines3's VecNormalize)."""

    observations: bool = True
    rewards: bool = True
    clip_obs: Annotated[float, Field(gt=0)] = 10.0


class TrainConfig(Strict):
    total_timesteps: Annotated[int, Field(gt=0)] = Field(100_000, description="environment steps to train")
    n_envs: Annotated[int, Field(ge=1, le=256)] = Field(1, description="parallel environments")
    vec_env: Literal["dummy", "subproc"] = Field("dummy", description="in-process or one process per env")
    start_method: Literal["fork", "spawn", "forkserver"] | None = Field(
        None, description="how subproc workers start (default: forkserver where available)"
    )
    normalize: NormalizeConfig | None = Field(None, description="VecNormalize settings; absent: off")
    seed: Annotated[int, Field(ge=0)] = 0
    checkpoint_every: Annotated[int, Field(gt=0)] = Field(50_000, description="steps between checkpoints")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    torch_threads: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="CPU threads for torch (default: torch's choice); 1 when several runs share the machine",
    )
    progress_bar: bool = True


class EvalConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = Field(10, description="episodes per domain")
    deterministic: bool = True
    success_threshold: FiniteFloat | None = Field(None, description="an episode with at least this return succeeds")


class RunConfig(Strict):
    root: str = Field("runs", description="folder holding every run")
    experiment: Name = Field("default", description="runs land in <root>/<env>/<experiment>/seed_<seed>")


class ParamRange(Strict):
    """A quantity of some elements over a range: ``scale`` and ``offset`` relative to the nominal value, ``set``
    absolute."""

    quantity: Quantity = Field(description="which model quantity, e.g. body_mass")
    select: str | list[str] | None = Field(None, description="element name, list of names, or 'all'")
    scale: Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[low, high]"
    )
    set: Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)] | None = Field(None, description="[low, high]")
    offset: Annotated[list[FiniteFloat], Field(min_length=2, max_length=2)] | None = Field(
        None, description="[low, high]"
    )

    @model_validator(mode="after")
    def _one_range(self) -> ParamRange:
        given = [op for op in _OPERATIONS if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(
                f"give exactly one of scale, set, offset as [low, high] (got {', '.join(given) or 'none'})"
            )
        low, high = getattr(self, given[0])
        if low >= high:
            raise ValueError(f"{given[0]}: low {low} must be below high {high}")
        _check_select(self.quantity, self.select)
        return self

    @property
    def op(self) -> Literal["scale", "set", "offset"]:
        return next(o for o in _OPERATIONS if getattr(self, o) is not None)

    @property
    def bounds(self) -> tuple[float, float]:
        low, high = getattr(self, self.op)
        return float(low), float(high)

    @property
    def name(self) -> str:
        """``body_mass/torso``: the parameter's name (see :func:`~sim2real.dynamics.parameter_name`)."""
        return parameter_name(self.quantity, self.select)

    def label(self) -> str:
        """``body_mass/torso scale``: the axis label of plots and tables."""
        return f"{self.name} {self.op}"

    def tag(self) -> str:
        """The label as a file and TensorBoard tag name."""
        return re.sub(r"[^A-Za-z0-9_.+-]+", "_", self.label()).strip("_")


class SweepParam(ParamRange):
    """One axis of a robustness sweep: a quantity of some elements, over a range, at ``points`` evenly spaced
    values (both ends included). ``scale`` and ``offset`` are relative to the nominal value, ``set`` absolute."""

    points: Annotated[int, Field(ge=2, le=101)] = Field(5, description="grid points, both ends included")

    def values(self) -> list[float]:
        low, high = self.bounds
        return [float(v) for v in np.linspace(low, high, self.points)]


class IdentifyParam(ParamRange):
    """A quantity that system identification fits (``sim2real identify --param``): one value for every selected
    element, searched within [low, high]; ``scale`` and ``offset`` relative to the env's model file, ``set``
    absolute."""


TransferMethod = Literal["scratch", "finetune", "freeze", "progressive", "prognet"]
TRANSFER_METHODS: tuple[str, ...] = get_args(TransferMethod)


class FreezeConfig(Strict):
    """Which reused layer groups stay fixed (method ``freeze``): the first ``layers`` hidden layers or named groups."""

    layers: Annotated[int, Field(ge=0)] | None = Field(
        None, description="freeze the first k hidden layers of every network (default: 1 when no groups are named)"
    )
    groups: list[str] | None = Field(
        None, description="freeze these layer groups (names from `sim2real inspect`; a prefix names all below it)"
    )

    @model_validator(mode="after")
    def _one_way(self) -> FreezeConfig:
        if self.layers is not None and self.groups is not None:
            raise ValueError("give either layers or groups, not both")
        return self


class ProgressiveConfig(Strict):
    """Gradual unfreezing (method ``progressive``): heads first, then one hidden layer every ``unfreeze_every`` steps."""

    unfreeze_every: PositiveInt = Field(20_000, description="steps between unfreezing the next layer down")
    warmup_steps: Annotated[int, Field(ge=0)] = Field(
        0, description="a newly trainable group's learning rate ramps up linearly over this many steps"
    )


class EarlyWarningConfig(Strict):
    """Negative-transfer warning during a transfer run, checked at each learning-curve point."""

    margin: Annotated[float, Field(ge=0, le=1)] = Field(
        0.1, description="a point is bad below (1 - margin) of the run's start return or of the reference curve"
    )
    patience: PositiveInt = Field(3, description="consecutive bad points before the warning")
    reference: str | None = Field(None, description="a scratch run folder (or its curve.json) to compare against")
    stop: bool = Field(False, description="stop the run when the warning fires")


class CriticWarmupConfig(Strict):
    """The actor (PPO: and its std) stays frozen while the critic learns the target from the source policy's
    target rollouts (a critic that does not know the target is what wrecks early fine-tuning). SAC: the source
    policy acts from the first step, so its transitions fill the replay buffer instead of random actions."""

    steps: PositiveInt = Field(description="target steps of warm-up at most")
    explained_variance: Annotated[float, Field(le=1, allow_inf_nan=False)] | None = Field(
        None, description="end the warm-up earlier once train/explained_variance reaches this"
    )
    fresh_value_head: bool = Field(False, description="a freshly initialized value head instead of the source's")


class AnchorConfig(Strict):
    """PPO: a penalty ``weight x KL(source || current)`` on the rollout's observations against a frozen copy of
    the source policy (kickstarting), so the source's skill is not forgotten before the new one exists; the
    weight decays linearly to zero over the first ``decay`` share of the budget."""

    weight: Annotated[float, Field(ge=0, allow_inf_nan=False)] = Field(description="the penalty's weight at step 0")
    decay: Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)] = Field(
        0.5, description="share of the budget over which the weight falls to zero"
    )


class RollbackConfig(Strict):
    """When the guard's evaluations fall clearly below the best policy's for a while, training goes back to the
    best policy (weights and statistics, fresh optimizer moments) with a lower learning rate."""

    margin: Annotated[float, Field(gt=0, lt=1)] = Field(
        0.2, description="an evaluation is clearly below the best's when under (1 - margin) x the best's return"
    )
    patience: PositiveInt = Field(2, description="consecutive evaluations clearly below before a rollback")
    lr_factor: Annotated[float, Field(gt=0, le=1)] = Field(
        0.5, description="each rollback multiplies the learning rate by this"
    )
    limit: Annotated[int, Field(ge=0)] = Field(
        3, description="rollbacks at most; 0: record when the rule fires, never roll back"
    )


class GuardConfig(Strict):
    """The negative-transfer guard: the learning curve's evaluations pick the best policy so far (``best/`` in
    the run folder), confirmed on episodes of their own so that a lucky point is not taken for a better policy;
    a run that falls clearly below its best rolls back to it."""

    confirm_episodes: PositiveInt | None = Field(
        None,
        description="episodes (their own seeds) that confirm a candidate for the best policy, and a fall before a "
        "rollback (default: eval_episodes); they are target steps, counted like every other",
    )
    rollback: RollbackConfig | None = Field(
        default_factory=lambda: RollbackConfig(), description="go back to the best policy on a fall; null: never"
    )


TransferRecipe = Literal["auto", "recommended", "plain"]
# The methods that start from the source's own weights and statistics: the recipe is for them. Scratch has no
# source, and a progressive net's new column starts fresh beside the frozen source column.
RECIPE_METHODS = ("finetune", "freeze", "progressive")
# The fields a recipe fills, and the value it gives each.
RECIPE_VALUES: dict[str, Any] = {"action_std": "initial", "normalization": "recalibrate", "reset_returns": True}


class TransferConfig(Strict):
    """How a target model reuses a source model (``sim2real transfer``)."""

    method: TransferMethod = Field("finetune", description="scratch, finetune, freeze, progressive or prognet")
    recipe: TransferRecipe = Field(
        "auto",
        description="remedies applied where this section leaves them unset: plain (stable-baselines3's "
        "load-and-learn: the source's std and statistics as they are), recommended (PPO with normalized "
        "observations: action_std initial, normalization recalibrate, reset_returns) or auto (recommended, kept "
        "only if the source scores more than 2% higher on the target on the recalibrated statistics than on "
        "its own, else plain; BENCHMARKS.md)",
    )
    variant: Name | None = Field(
        None, description="a name for these settings: run folders and scorecards use it in place of the method's"
    )
    source: str | None = Field(None, description="source run folder or model zip (the CLI's --source overrides)")
    target: Name | None = Field(None, description="the target domain to train on (default: the only target)")
    freeze: FreezeConfig = Field(default_factory=lambda: FreezeConfig())
    progressive: ProgressiveConfig = Field(default_factory=lambda: ProgressiveConfig())
    lr_decay: Annotated[float, Field(gt=0, le=1)] = Field(
        1.0, description="per-layer learning-rate factor: heads x1, the layer below x decay, the next x decay^2, ..."
    )
    reinit_heads: bool = Field(False, description="fresh output heads instead of the source's")
    optimizer_state: Literal["fresh", "source"] = Field(
        "fresh", description="start the optimizer fresh or carry the source's Adam moments"
    )
    normalization: Literal["update", "fixed", "recalibrate"] = Field(
        "update",
        description="the source's VecNormalize statistics on the target: keep updating them, keep them fixed, or "
        "recalibrate them first from target rollouts of the source policy (then keep updating)",
    )
    recalibration_steps: PositiveInt = Field(
        2048, description="target steps of the source policy that recalibrate the observation statistics"
    )
    compensate: bool = Field(
        False,
        description="recalibrate: rewrite the input layers so the networks compute on the new statistics what "
        "they computed on the old (the source's behaviour at step 0 is kept)",
    )
    reset_returns: bool = Field(
        False, description="fresh return statistics (reward normalization) instead of the source's"
    )
    action_std: PositiveFloat | Literal["initial"] | None = Field(
        None,
        description="PPO: set the policy's action std at transfer (a value, or 'initial': the algorithm's "
        "log_std_init); the source's std may have collapsed below what the target needs to explore",
    )
    reset_entropy: bool = Field(
        False, description="SAC: restart the entropy temperature (ent_coef: auto) and its optimizer at transfer"
    )
    critic_warmup: CriticWarmupConfig | None = Field(
        None, description="train the critic alone first (the actor frozen; SAC: the source policy fills the buffer)"
    )
    anchor: AnchorConfig | None = Field(None, description="PPO: keep the policy near the source's early on")
    shrink_perturb: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = Field(
        None,
        description="each reused trainable weight becomes a x source + (1 - a) x fresh init (Ash & Adams, 2020); "
        "frozen layers keep the source's",
    )
    adapter: bool = Field(
        False, description="when spaces differ: new input/output layers where shapes differ, reuse the rest"
    )
    eval_every: Annotated[int, Field(ge=0)] = Field(
        10_000, description="steps between evaluations on the target (the learning curve); 0: only start and end"
    )
    eval_episodes: PositiveInt = Field(5, description="episodes per learning-curve evaluation")
    early_warning: EarlyWarningConfig | None = Field(
        default_factory=lambda: EarlyWarningConfig(), description="negative-transfer warning; null: off"
    )
    guard: GuardConfig | None = Field(
        default_factory=lambda: GuardConfig(),
        description="the negative-transfer guard (best policy, rollback); null: off",
    )
    budget: Literal["target_steps", "training_steps"] = Field(
        "target_steps",
        description="what train.total_timesteps counts: every step taken on the target (training, recalibration, "
        "checks, every evaluation), or training steps only (the learning curve still counts every target step)",
    )
    keep: Literal["best", "last"] = Field(
        "best",
        description="the run's result (model.zip, eval.json, and what evaluate, sweep, export and the scorecard "
        "read): the guard's best policy or the last one trained",
    )

    @model_validator(mode="after")
    def _best_needs_guard(self) -> TransferConfig:
        if self.keep == "best" and self.guard is None:
            raise ValueError("keep: best needs the guard that picks the best policy (set guard, or keep: last)")
        return self

    @property
    def label(self) -> str:
        """What run folders and scorecards call these settings: the variant's name, else the method's."""
        return self.variant or self.method

    def without_recipe(self) -> TransferConfig:
        """These settings as ``recipe: plain`` has them: each remedy at the recipe's value back at plain's (a
        value the user chose otherwise stays). ``auto`` owns these fields: a run's config.yaml holds the values
        it filled, and the fallback must undo them there too."""
        return self.without_remedies(tuple(RECIPE_VALUES)).model_copy(update={"recipe": "plain"})

    def without_remedies(self, names: tuple[str, ...]) -> TransferConfig:
        """These settings with the remedies ``names`` back at plain's where they hold the recipe's value (``auto``
        decides each remedy on its own: :func:`sim2real.transfer.start_transfer`)."""
        fields = type(self).model_fields
        plain = {name: fields[name].default for name in names if getattr(self, name) == RECIPE_VALUES[name]}
        return self.model_copy(update=plain)

    def apply_recipe(self, algo: str, normalize: NormalizeConfig | None) -> None:
        """Fills the remedies this section leaves unset with the recipe's (idempotent: a filled field is set).

        The recommended recipe is what the Hopper ablation measured best from a nominal source that fails the
        target (BENCHMARKS.md): the source's collapsed action std back to the algorithm's initial one, so that
        PPO's clipped steps can move the policy, and normalization statistics re-estimated on the target, with
        fresh return statistics. Neither alone did much; together they changed what the source computes
        (compensating the input layers for the new statistics, ``compensate``, lost most of the gain). From a
        source that already works on the target, and on the quick study, the same perturbation did worse than
        plain fine-tuning; in every measured case it lowered the source's return on the target at step 0 there,
        and raised it where it helped. ``auto`` (the default) fills the same remedies and checks that at
        transfer (:func:`sim2real.transfer.start_transfer`), falling back to plain. Without normalized
        observations there is nothing to check, and auto stays plain. SAC's remedies are not measured yet, so
        the recipes leave SAC as plain.
        """
        if self.recipe == "plain" or self.method not in RECIPE_METHODS or algo != "ppo":
            return
        if self.recipe == "auto" and (normalize is None or not normalize.observations):
            return
        if self.recipe == "auto" and self.normalization != "recalibrate" and "normalization" in self.model_fields_set:
            return  # the user keeps the statistics: nothing for auto to check, so it stays plain
        unset = set(type(self).model_fields) - self.model_fields_set
        filled: dict[str, Any] = {}
        if "action_std" in unset:
            filled["action_std"] = "initial"
        if normalize is not None and normalize.observations and "normalization" in unset:
            filled["normalization"] = "recalibrate"
        # Fresh return statistics go with re-estimated observation ones, not with statistics the user keeps.
        recalibrated = filled.get("normalization", self.normalization) == "recalibrate"
        if recalibrated and normalize is not None and normalize.rewards and "reset_returns" in unset:
            filled["reset_returns"] = True
        for name, value in filled.items():
            setattr(self, name, value)
        # The recipe's values stay unset (they are not the user's): a copy for another method or algorithm, or a
        # dump with exclude_unset, gets that method's recipe anew. The run's config.yaml holds every value.
        self.__pydantic_fields_set__.difference_update(filled)


class HistoryConfig(Strict):
    """The policy's input in every domain: the observation followed by the last ``steps`` observations and
    actions (``sim2real.wrappers.ObservationHistory``), so that a memoryless policy can infer the dynamics it
    is in from how its recent commands moved the system."""

    steps: PositiveInt = Field(description="past control steps appended, fewer than an episode's")
    actions: bool = Field(True, description="append the past actions too, not only the observations")


class PrivilegedTerm(Strict):
    """One input of a privileged teacher: a quantity the source randomizes, read from the model of whatever
    domain the policy runs in, in the units of the source's draws (``sim2real.domain.PrivilegedObservation``)."""

    quantity: Quantity
    op: Literal["scale", "set", "offset"] = Field(description="the units: a factor, the value, or an offset")
    select: str | list[str] | None = None
    shared: bool = Field(False, description="one input for all selected elements (their mean), not one each")


class StudentConfig(Strict):
    """An adapting student (Rapid Motor Adaptation's second phase): a policy that sees only its observation
    history learns to act as a privileged teacher does, on its own rollouts (DAgger), with no reward."""

    teacher: str | None = Field(None, description="the teacher's run folder (trained with privileged: true)")
    teacher_steps: Annotated[float, Field(ge=0, le=1)] = Field(
        0.25, description="share of the budget over which the teacher's actions are executed less and less"
    )
    epochs: PositiveInt = Field(
        4, description="gradient samples per round, in multiples of the round's new samples (drawn from the buffer)"
    )
    batch_size: Annotated[int, Field(gt=1)] = 256
    buffer_size: PositiveInt = Field(100_000, description="the newest samples kept for training (DAgger's data)")
    learning_rate: PositiveFloat = 1e-3


def _privileged_terms(data: Any) -> Any:
    """``privileged: true`` spelled out: one term per randomized change of the raw ``source.dynamics``, so
    that the run's config.yaml, and any evaluation of the teacher under another config, names its inputs."""
    if not isinstance(data, dict) or data.get("privileged") is not True:
        return data
    source = data.get("source") or {}
    entries = source.get("dynamics", []) if isinstance(source, dict) else getattr(source, "dynamics", [])
    terms = []
    for entry in entries or []:
        fields = entry if isinstance(entry, dict) else entry.__dict__ if isinstance(entry, BaseModel) else {}
        for op in _OPERATIONS:
            value = fields.get(op)
            if isinstance(value, dict | BaseModel):  # a distribution: drawn, so the teacher is told its value
                terms.append({"quantity": fields.get("quantity"), "op": op, "select": fields.get("select"),
                              "shared": bool(fields.get("shared", False))})  # fmt: skip
    if not terms:
        raise ValueError(
            "privileged: true, but source.dynamics draws nothing; a teacher's privileged inputs are its source's "
            "randomized dynamics (give a change a distribution, e.g. scale: {dist: uniform, low: 0.5, high: 2})"
        )
    return {**data, "privileged": terms}


class Config(Strict):
    """One experiment: a source domain to train on and target domains to evaluate on."""

    env: str = Field(description="gymnasium id of a MuJoCo env, e.g. InvertedDoublePendulum-v5")
    env_kwargs: dict[str, bool | int | float | str] = Field(default_factory=dict, description="gym.make keywords")
    source: Domain = Field(default_factory=Domain)
    targets: dict[Name, Domain] = Field(default_factory=dict)
    algo: AlgoConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)
    transfer: TransferConfig | None = Field(None, description="train on a target starting from a source model")
    history: HistoryConfig | None = Field(None, description="the policy also sees its recent past (every domain)")
    privileged: Literal[False] | list[PrivilegedTerm] = Field(
        False,
        description="true: a teacher that also sees the current values of its source's randomized dynamics "
        "(every domain); written out as the list of those quantities",
    )
    student: StudentConfig | None = Field(
        None, description="learn to act as a privileged teacher from history alone (instead of from reward)"
    )
    # Where the config came from (a file's path), for errors found after validation (a domain's dynamics).
    _origin: str = PrivateAttr("config")

    @property
    def origin(self) -> str:
        return self._origin

    def __eq__(self, other: object) -> bool:
        # The same settings are the same config, wherever they were read from (``origin`` is for messages).
        return isinstance(other, Config) and self.__dict__ == other.__dict__

    __hash__ = None  # type: ignore[assignment]  # mutable, like every pydantic model

    @field_validator("targets")
    @classmethod
    def _not_source(cls, targets: dict[str, Domain]) -> dict[str, Domain]:
        if "source" in targets:
            raise ValueError("'source' is reserved for the source domain; give the target another name")
        return targets

    @model_validator(mode="before")
    @classmethod
    def _spell_out_privileged(cls, data: Any) -> Any:
        return _privileged_terms(data)

    @model_validator(mode="after")
    def _teacher_and_student(self) -> Config:
        if self.privileged and self.transfer is not None:
            raise ValueError("privileged: a teacher trains from scratch on its randomized source, not by transfer")
        if self.privileged and self.student is not None:
            raise ValueError("student: a student sees no privileged inputs (remove privileged)")
        if self.student is None:
            return self
        if self.history is None:
            raise ValueError("student: needs history (the student infers the dynamics from its recent past)")
        if self.algo.name != "ppo":
            raise ValueError(f"student: the student is a PPO policy (algo.name: ppo, got {self.algo.name})")
        if self.transfer is not None:
            raise ValueError("student: a student learns from its teacher, not by transfer (remove transfer)")
        if self.source.adr is not None:
            raise ValueError("student: the student's source has no ADR curriculum (its ranges move with returns)")
        return self

    def privileged_terms(self) -> tuple[PrivilegedTerm, ...] | None:
        """A privileged teacher's inputs beyond the observation (None for any other policy)."""
        return tuple(self.privileged) if self.privileged else None

    @model_validator(mode="after")
    def _transfer_target(self) -> Config:
        if self.transfer is None:
            return self
        if self.transfer.target is None:
            if len(self.targets) != 1:
                names = ", ".join(self.targets) or "none defined"
                raise ValueError(f"transfer.target: name the target domain to train on ({names})")
            self.transfer.target = next(iter(self.targets))
        elif self.transfer.target not in self.targets:
            raise ValueError(
                f"transfer.target: unknown target '{self.transfer.target}' (targets: {', '.join(self.targets) or 'none'})"
            )
        algo = self.algo
        if self.transfer.variant is not None and self.transfer.variant in TRANSFER_METHODS:
            raise ValueError(f"transfer.variant: '{self.transfer.variant}' is a method's name; choose another")
        self.transfer.apply_recipe(algo.name, self.train.normalize)
        if algo.name == "recurrent_ppo" and self.transfer.method == "prognet":
            raise ValueError(
                "transfer.method: prognet has no recurrent column (recurrent_ppo takes finetune, freeze or progressive)"
            )
        if algo.name == "recurrent_ppo" and (self.transfer.anchor is not None or self.transfer.critic_warmup):
            raise ValueError("transfer.anchor and transfer.critic_warmup: PPO and SAC only, not recurrent_ppo yet")
        if self.transfer.action_std is not None and algo.name == "sac":
            raise ValueError(
                "transfer.action_std: SAC's action std depends on the state; use transfer.reset_entropy instead"
            )
        if self.transfer.reset_entropy and not (algo.name == "sac" and algo.ent_coef == "auto"):
            raise ValueError("transfer.reset_entropy: only for SAC with a learned temperature (algo.ent_coef: auto)")
        if self.transfer.anchor is not None and algo.name != "ppo":
            raise ValueError("transfer.anchor: PPO only (SAC's is not built yet)")
        if self.transfer.anchor is not None and self.transfer.method in ("scratch", "prognet"):
            raise ValueError(f"transfer.anchor: method {self.transfer.method} has no source policy to anchor to")
        warmup = self.transfer.critic_warmup
        if warmup is not None and algo.name == "sac":
            for field_name in ("explained_variance", "fresh_value_head"):
                if getattr(warmup, field_name) not in (None, False):
                    raise ValueError(
                        f"transfer.critic_warmup.{field_name}: PPO only (SAC's warm-up ends after its steps)"
                    )
        if warmup is not None and warmup.steps >= self.train.total_timesteps:
            raise ValueError(
                f"transfer.critic_warmup.steps: {warmup.steps:,} is not shorter than the budget "
                f"(train.total_timesteps {self.train.total_timesteps:,})"
            )
        if self.transfer.normalization == "recalibrate" and self.train.normalize is None:
            raise ValueError(
                "transfer.normalization: recalibrate needs train.normalize (there is nothing to recalibrate)"
            )
        return self

    def domains(self) -> dict[str, Domain]:
        """The source (named ``source``) followed by the targets."""
        return {"source": self.source, **self.targets}

    def training_domain_name(self) -> str:
        """The domain this config trains on: the source, or for a transfer run its target."""
        return self.transfer.target if self.transfer is not None and self.transfer.target else "source"

    def training_domain(self) -> Domain:
        return self.domains()[self.training_domain_name()]


# ------------------------------------------------------------------------------------------------ study


class StudyRecording(Strict):
    """What the identification of a study source records (``sim2real record``), on a target standing in for the
    real robot."""

    target: Name = Field(description="the target domain to record on")
    policy: Name = Field("random", description="a study source whose policy acts, or random (uniform actions)")
    episodes: PositiveInt = Field(10, description="episodes to record")
    stochastic: bool = Field(False, description="the policy's sampled actions instead of its mean (more excitation)")
    noise: Annotated[float, Field(ge=0)] = Field(0.0, description="std of Gaussian sensor noise on what is recorded")
    latency: Annotated[int, Field(ge=0)] = Field(0, description="control steps the motor lags the command")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="seeds the episodes, random actions and noise")


class StudyIdentify(Strict):
    """A source whose domain is identified: record on a target, fit the named quantities so that the simulator
    replays the recording (``sim2real identify``), and pretrain on what was found."""

    record: StudyRecording
    params: Annotated[list[IdentifyParam], Field(min_length=1)] = Field(description="the quantities to fit")
    horizon: PositiveInt = Field(3, description="control steps per replay window")
    windows: PositiveInt = Field(128, description="replay windows at most")
    max_generations: PositiveInt = Field(200, description="CMA-ES generations at most")
    latency: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        [0], description="candidate motor delays (control steps) to fit; the best is kept"
    )
    seed: Annotated[int, Field(ge=0)] = Field(0, description="seeds the search")
    use: Literal["estimate", "randomized"] = Field(
        "estimate",
        description="pretrain on the point estimate (identified.yaml) or randomized over its uncertainty "
        "(identified_randomized.yaml)",
    )


class StudySource(Strict):
    """A source policy the study pretrains on its config's source domain (or on the domain identified from a
    recording on a target, ``identify``)."""

    config: str = Field(description="train config of this source, relative to the study file")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="the source run's train.seed")
    steps: PositiveInt | None = Field(
        None, description="this source's budget (default: budgets.source), e.g. a reference that converges sooner"
    )
    identify: StudyIdentify | None = Field(
        None, description="identify the source domain from a recording on a target first (it replaces config's)"
    )
    teacher: Name | None = Field(
        None, description="a student source (its config has a student section): the study source it learns from"
    )


class StudyVariant(TransferConfig):
    """Named transfer settings of a study (an ablation's arm): the fields it sets replace the study's."""

    transfer_from: list[Name] | None = Field(
        None, description="the sources this variant transfers from (default: the study's transfer_from)"
    )


class StudyBudgets(Strict):
    source: PositiveInt = Field(description="environment steps each source trains")
    transfer: PositiveInt = Field(description="target steps each transfer run (scratch included) trains")


class StudySweep(Strict):
    """A zero-shot robustness sweep of the sources over one or two quantities (a curve or a heatmap)."""

    params: Annotated[list[SweepParam], Field(min_length=1, max_length=2)] = Field(description="the grid's axes")
    sources: list[Name] | None = Field(None, description="which sources to sweep (default: every source)")
    episodes: PositiveInt = Field(5, description="episodes per grid point")
    seed: Annotated[int, Field(ge=0)] = Field(0, description="episode seeds, common to every point and source")


class StudyConfig(Strict):
    """``sim2real study``: pretrain sources, transfer with every method to every target over seeds, report."""

    env: str = Field(description="gymnasium id every config of the study must use")
    config: str = Field(description="the config transfer and scratch runs start from (algo, targets, eval)")
    sources: dict[Name, StudySource] = Field(min_length=1, description="source name -> how to pretrain it")
    transfer_from: list[Name] | None = Field(
        None, description="sources the methods transfer from (default: every source but the reference)"
    )
    reference: Name | None = Field(
        None, description="a source trained on the target itself: transfer is reported as a fraction of it"
    )
    targets: Annotated[list[Name], Field(min_length=1)] = Field(description="target domains of the config")
    methods: Annotated[list[Name], Field(min_length=1)] = Field(
        description="scratch, transfer methods and names of variants"
    )
    variants: dict[Name, StudyVariant] = Field(
        default_factory=dict,
        description="named settings that methods can list: each is the study's transfer section with these fields "
        "changed and a method of its own, e.g. plain: {method: finetune, recipe: plain} (an ablation)",
    )
    seeds: PositiveInt | Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        description="N (seeds 0..N-1) or a list of train.seed values, for every method and target"
    )
    budgets: StudyBudgets
    transfer: TransferConfig = Field(
        default_factory=lambda: TransferConfig(), description="settings of every transfer run but method and target"
    )
    set: list[str] = Field(default_factory=list, description="FIELD=VALUE overrides for every run's config")
    sweeps: list[StudySweep] = Field(default_factory=list)
    output: str | None = Field(None, description="the study folder (default: studies/<file name>)")

    @model_validator(mode="after")
    def _names_exist(self) -> StudyConfig:
        for field_name in ("transfer_from", "reference"):
            value = getattr(self, field_name)
            names = [value] if isinstance(value, str) else value or []
            for name in names:
                if name not in self.sources:
                    raise ValueError(f"{field_name}: no source named '{name}' (sources: {', '.join(self.sources)})")
        for name, pretrained in self.sources.items():
            if pretrained.identify is None:
                continue
            policy = pretrained.identify.record.policy
            if policy != "random" and policy not in self.sources:
                raise ValueError(
                    f"sources.{name}.identify.record.policy: no source named '{policy}' (sources: "
                    f"{', '.join(self.sources)}; or random)"
                )
            if policy != "random" and self.sources[policy].identify is not None:
                raise ValueError(
                    f"sources.{name}.identify.record.policy: '{policy}' is identified itself; record with a "
                    "source trained on its config's domain, or random"
                )
        for sweep in self.sweeps:
            for name in sweep.sources or []:
                if name not in self.sources:
                    raise ValueError(f"sweeps.sources: no source named '{name}' (sources: {', '.join(self.sources)})")
        for field_name in ("methods", "targets"):
            values = getattr(self, field_name)
            if len(set(values)) < len(values):
                raise ValueError(f"{field_name}: each may appear once (got {', '.join(values)})")
        if isinstance(self.seeds, list) and len(set(self.seeds)) < len(self.seeds):
            raise ValueError(f"seeds: each may appear once (got {self.seeds})")
        given = self.transfer.model_fields_set & {"method", "target", "source", "variant"}
        if given:
            raise ValueError(f"transfer.{sorted(given)[0]}: the study sets it (methods, targets, sources, variants)")
        for name, variant in self.variants.items():
            if name in TRANSFER_METHODS:
                raise ValueError(f"variants.{name}: a method's name; call the variant otherwise")
            for source in variant.transfer_from or []:
                if source not in self.sources:
                    raise ValueError(
                        f"variants.{name}.transfer_from: no source named '{source}' (sources: {', '.join(self.sources)})"
                    )
            given = variant.model_fields_set & {"target", "source", "variant"}
            if given:
                raise ValueError(f"variants.{name}.{sorted(given)[0]}: the study sets it")
            if "method" not in variant.model_fields_set or variant.method == "scratch":
                raise ValueError(f"variants.{name}.method: name the transfer method it varies (not scratch)")
        for name in self.methods:
            if name not in TRANSFER_METHODS and name not in self.variants:
                allowed = ", ".join([*TRANSFER_METHODS, *self.variants])
                raise ValueError(f"methods: '{name}' is neither a method nor a variant (allowed: {allowed})")
        if any(m != "scratch" and not self.sources_to_transfer_from(m) for m in self.methods):
            raise ValueError("transfer_from: no source left to transfer from (the reference is not one)")
        return self

    def transfer_settings(self, name: str) -> TransferConfig:
        """The transfer section of the study's runs of ``name`` (a method or a variant), target and source unset."""
        if name not in self.variants:
            return self.transfer.model_copy(update={"method": name})
        variant = self.variants[name]
        changed = {field: getattr(variant, field) for field in variant.model_fields_set - {"transfer_from"}}
        return self.transfer.model_copy(update={**changed, "variant": name})

    def source_steps(self, name: str) -> int:
        """The budget of the source ``name``."""
        return self.sources[name].steps or self.budgets.source

    def seed_list(self) -> list[int]:
        return list(range(self.seeds)) if isinstance(self.seeds, int) else list(self.seeds)

    def sources_to_transfer_from(self, method: str | None = None) -> list[str]:
        """The sources the study's runs of ``method`` (a method or a variant) transfer from."""
        variant = self.variants.get(method) if method is not None else None
        if variant is not None and variant.transfer_from is not None:
            return list(variant.transfer_from)
        if self.transfer_from is not None:
            return list(self.transfer_from)
        return [name for name in self.sources if name != self.reference]


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Reads, overrides and validates a study file (``configs/<env>/study.yaml``)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise Sim2RealError(f"{path}: a study file is a mapping of fields (env, sources, targets, ...)")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as error:
        raise Sim2RealError(_format_error(str(path), error, StudyConfig)) from None


# ---------------------------------------------------------------------------------------------- loading


def _format_error(source: str, error: ValidationError, root: type[BaseModel] | None = None) -> str:
    """All validation problems on one line: ``file: field.path: what is wrong``."""
    by_path: dict[str, list[tuple[str, str]]] = {}
    for item in error.errors():
        unknown_key = item["type"] == "extra_forbidden"
        path, allowed = _walk(item["loc"], unknown_key, root or Config)
        message = item["msg"].removeprefix("Value error, ")
        if unknown_key:
            message = f"unknown key (allowed: {', '.join(allowed)})"
        elif item["type"] == "missing":
            message = "required key is missing"
        by_path.setdefault(path, []).append((item["type"], message))
    problems: list[str] = []
    for path, items in by_path.items():
        # A value that fits one member of a union (a distribution, say) reports why it is not the others
        # (not a number, not a list): the member it was meant for says what is really wrong.
        specific = [m for kind, m in items if not kind.endswith(("_type", "_parsing"))] or [m for _, m in items]
        problems.extend(f"{path}: {m}" if path else m for m in dict.fromkeys(specific))
    return f"{source}: " + "; ".join(problems)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The schema models an annotation can hold (through Annotated, unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _holds_dict(annotation: Any) -> bool:
    """True when the annotation is a dict, possibly inside Annotated or a union (then keys are free names)."""
    if get_origin(annotation) is dict:
        return True
    return get_origin(annotation) is not list and any(_holds_dict(arg) for arg in get_args(annotation))


def _tag(model: type[BaseModel]) -> str | None:
    """The literal that picks ``model`` out of a tagged union (its ``name`` or ``dist`` field)."""
    field = model.model_fields.get("name") or model.model_fields.get("dist")
    args = get_args(field.annotation) if field else ()
    return args[0] if args else None


def _walk(loc: tuple[int | str, ...], unknown_key: bool, root: type[BaseModel]) -> tuple[str, list[str]]:
    """The path of an error as the file spells it, and the keys allowed in the mapping that holds it.

    pydantic's locations also name union members (``ppo``, ``float``, ``constrained-float``...); walking the
    schema tells those apart from field names and from free dict keys such as target names.
    """
    models: list[type[BaseModel]] = [root]
    expect_key = False
    shown: list[str] = []
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if expect_key or isinstance(part, int):
            shown.append(str(part))
            expect_key = False
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if fields:
            shown.append(part)
            if not last:
                expect_key = any(_holds_dict(f.annotation) for f in fields)
                models = [m for f in fields for m in _models_in(f.annotation)]
        elif last and unknown_key:
            shown.append(part)
        else:
            models = [m for m in models if _tag(m) == part] or models
    return ".".join(shown), sorted({key for m in models for key in m.model_fields})


def parse_config(data: Any, source: str = "config") -> Config:
    """Validates already-parsed YAML data; ``source`` names it in error messages."""
    if not isinstance(data, dict):
        raise Sim2RealError(f"{source}: expected a mapping of keys (env, source, targets, algo, ...)")
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise Sim2RealError(_format_error(source, error)) from None
    config._origin = source
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: plain YAML keeps the
    last one and drops the first without a word (two ``train:`` sections, one silently ignored)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' is given twice (lines {seen[key]} and {line}); keep one", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """YAML text as data (safe types only), refusing a key given twice in one mapping."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Sim2RealError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise Sim2RealError(f"{path}: cannot read ({error})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise Sim2RealError(f"{path}: malformed YAML{where}: {problem}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str | None = None) -> dict[str, Any]:
    """Sets single fields from ``dotted.path=value`` strings; the value is read as a YAML scalar or list.

    ``source`` names where the strings came from in errors (default: the ``overrides`` argument).
    """
    where = source if source is not None else "{overrides}"
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Sim2RealError(f"{where} {item!r}: expected FIELD=VALUE, e.g. train.seed=3", overrides=None)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise Sim2RealError(f"{where} {item!r}: the value is not valid YAML", overrides=None) from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise Sim2RealError(f"{where} {item!r}: '{part}' is not a section", overrides=None)
            node = child
        node[parts[-1]] = value
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else (lists too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_data(path: str | Path, _chain: tuple[Path, ...] = ()) -> Any:
    """A config file's data with its ``extends: OTHER.yaml`` (relative to the file) merged underneath."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise Sim2RealError(f"{path}: extends: expected the path of another config file")
    parent_path = (path.parent / parent).resolve()
    if parent_path in _chain or parent_path == path.resolve():
        raise Sim2RealError(f"{path}: extends: {parent} leads back to itself")
    base = read_config_data(parent_path, (*_chain, path.resolve()))
    if not isinstance(base, dict):
        raise Sim2RealError(f"{parent_path}: expected a mapping of keys (env, source, targets, algo, ...)")
    return _merge(base, data)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Reads (following ``extends``), overrides and validates a config file."""
    data = read_config_data(path)
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return parse_config(data, str(path))


def dump_config(config: Config) -> str:
    """The resolved config as YAML (every default written out), for the run folder and TensorBoard."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)
