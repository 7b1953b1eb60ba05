"""Schema of the transfer section: the method, its remedies and recipes, and the negative-transfer warning and
guard.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import Field, model_validator

from sim2real.config.common import Name, PositiveFloat, PositiveInt, Strict
from sim2real.config.train import NormalizeConfig

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
    reference: str | None = Field(
        None, description="a scratch run folder (or its learning curve file) to compare against"
    )
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
        "observations: action_std initial, normalization recalibrate, reset_returns) or auto (plain where the "
        "source keeps half its home return on the target; else each remedy where its check on the target "
        "keeps it; docs/transfer.md)",
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
        description="the run's result (model.zip, its final evaluation, and what evaluate, sweep, export and the "
        "scorecard read): the guard's best policy or the last one trained",
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
