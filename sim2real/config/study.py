"""Schema of a study file (``sim2real study``): sources to pretrain, methods and variants, targets, seeds,
budgets and sweeps.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from sim2real.config.adapt import ADAPT_METHOD
from sim2real.config.common import Name, PositiveInt, Strict
from sim2real.config.params import IdentifyParam, SweepParam
from sim2real.config.transfer import TRANSFER_METHODS, TransferConfig


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
    """The steps each source and each transfer run train."""

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
        description="scratch, transfer methods, adapt (the sim-to-real loop, on the transfer budget) and names of "
        "variants"
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
        if ADAPT_METHOD in self.variants:
            raise ValueError(f"variants.{ADAPT_METHOD}: the loop's name (sim2real adapt); call the variant otherwise")
        for name in self.methods:
            if name not in TRANSFER_METHODS and name not in self.variants and name != ADAPT_METHOD:
                allowed = ", ".join([*TRANSFER_METHODS, ADAPT_METHOD, *self.variants])
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
