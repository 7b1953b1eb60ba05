"""Schema of one experiment (a config file): the env, its source and target domains, and every section."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, PrivateAttr, field_validator, model_validator

from sim2real.config.adapt import AdaptConfig
from sim2real.config.algo import AlgoConfig
from sim2real.config.common import _OPERATIONS, Name, Strict
from sim2real.config.domains import Domain
from sim2real.config.student import HistoryConfig, PrivilegedTerm, StudentConfig
from sim2real.config.train import EvalConfig, RunConfig, TrainConfig
from sim2real.config.transfer import TRANSFER_METHODS, TransferConfig


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
    adapt: AdaptConfig | None = Field(None, description="the sim-to-real loop on a target (sim2real adapt)")
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
        sampled = [name for name, domain in targets.items() if domain.sampling is not None]
        if sampled:  # a transfer run's check compares remedies on the same draws, which sampling would move
            raise ValueError(f"{sampled[0]}.sampling: sampling weights a source's training draws; a target is "
                             "drawn as written")  # fmt: skip
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
    def _adapt_target(self) -> Config:
        if self.adapt is not None and self.adapt.target is not None and self.adapt.target not in self.targets:
            names = ", ".join(self.targets) or "none"
            raise ValueError(f"adapt.target: unknown target '{self.adapt.target}' (targets: {names})")
        return self

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

    def paths_relative_to(self, folder: Path) -> Config:
        """This config with its paths (``run.root``, ``transfer.source``, ``transfer.early_warning.reference``,
        ``student.teacher``) relative to ``folder``: what a run shows of itself in TensorBoard, the same on any
        machine and wherever the runs were moved together."""

        def relative(path: str | None) -> str | None:
            return None if path is None else os.path.relpath(os.path.abspath(path), os.path.abspath(folder))

        update: dict[str, Any] = {
            "run": self.run.model_copy(update={"root": relative(self.run.root), "folder": relative(self.run.folder)})
        }
        if self.transfer is not None:
            warning = self.transfer.early_warning
            if warning is not None and warning.reference is not None:
                warning = warning.model_copy(update={"reference": relative(warning.reference)})
            update["transfer"] = self.transfer.model_copy(
                update={"source": relative(self.transfer.source), "early_warning": warning}
            )
        if self.student is not None and self.student.teacher is not None:
            update["student"] = self.student.model_copy(update={"teacher": relative(self.student.teacher)})
        return self.model_copy(update=update)

    def domains(self) -> dict[str, Domain]:
        """The source (named ``source``) followed by the targets."""
        return {"source": self.source, **self.targets}

    def training_domain_name(self) -> str:
        """The domain this config trains on: the source, or for a transfer run its target."""
        return self.transfer.target if self.transfer is not None and self.transfer.target else "source"

    def training_domain(self) -> Domain:
        return self.domains()[self.training_domain_name()]

    def target_budget(self) -> int | None:
        """A transfer run's budget of target steps (training, recalibration, checks, evaluations), or None where
        ``train.total_timesteps`` counts training steps only."""
        if self.transfer is None or self.transfer.budget != "target_steps":
            return None
        return self.train.total_timesteps
