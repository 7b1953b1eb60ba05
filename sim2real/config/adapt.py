"""The ``adapt`` section: the sim-to-real loop on one target (``sim2real adapt``) and its budget of target steps."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim2real.config.common import Name, PositiveInt, Strict
from sim2real.config.params import IdentifyParam

# A study's name for the loop among its methods (``methods: [scratch, finetune, adapt]``).
ADAPT_METHOD = "adapt"


class AdaptConfig(Strict):
    """``sim2real adapt``: from a source, spend a budget of target steps in the order that pays best. Record a few
    episodes of the source on the target (its zero-shot return), identify the dynamics from them, train in
    simulation around the estimate (simulation steps are free), keep whichever of the source and the
    simulation-trained policy scores more on the target, then fine-tune it there, guarded, with what is left."""

    target: Name | None = Field(None, description="the target (a stand-in robot); default: the config's only target")
    budget: PositiveInt = Field(30000, description="target steps in all: recording, evaluations and fine-tuning")
    record_episodes: PositiveInt = Field(
        3, description="episodes of the source's mean action recorded on the target, at least"
    )
    record_share: Annotated[float, Field(ge=0, le=0.5)] = Field(
        0.05,
        description="the recording goes on, episode by episode, until it holds this share of the budget: five "
        "episodes of a source that falls within 20 steps (IDP's stand-in) were too few steps to identify from",
    )
    record: Literal["observations", "states"] = Field(
        "observations",
        description="what the recording keeps: what a robot logs (observation, action) or MuJoCo's qpos and qvel too",
    )
    params: list[IdentifyParam] = Field(
        default_factory=list, description="the quantities to identify; none: no identification or simulation stage"
    )
    latency: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)] = Field(
        [0, 1], description="candidate motor delays (control steps) the identification fits; the best is kept"
    )
    horizon: PositiveInt = Field(3, description="control steps per replay window")
    max_generations: PositiveInt = Field(150, description="CMA-ES generations at most")
    use: Literal["estimate", "randomized"] = Field(
        "randomized", description="train in simulation on the point estimate or over its uncertainty"
    )
    simulation_steps: Annotated[int, Field(ge=0)] = Field(
        100000, description="training steps in simulation around the estimate (0: none)"
    )
    eval_episodes: PositiveInt = Field(
        3, description="episodes of the simulation-trained policy on the target, against the source's"
    )
