"""Schema of what a policy sees beyond its observation (history, privileged inputs) and of an adapting student."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim2real.config.common import PositiveFloat, PositiveInt, Quantity, Strict


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
