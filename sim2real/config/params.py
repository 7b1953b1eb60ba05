"""Schema of a model quantity over a range: the axes of robustness sweeps and the quantities that system
identification fits.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import numpy as np
from pydantic import AfterValidator, Field, model_validator

from sim2real.config.common import _OPERATIONS, FiniteFloat, Quantity, Strict, _check_select, _known_quantity
from sim2real.dynamics import parameter_name


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


# Identification fits this reality-gap effect beside the model's quantities: the motor's first-order time
# constant in seconds (the action_lag wrapper), one for every actuator, searched with set: [low, high].
ACTION_LAG = "action_lag"
# ... and a sensor offset: what the recorded positions of the selected joints hold beyond the truth (an encoder's
# zero), in the joint's units (rad, m), searched with offset: [low, high].
SENSOR_OFFSET = "sensor_offset"


def _identifiable(quantity: str) -> str:
    return quantity if quantity in (ACTION_LAG, SENSOR_OFFSET) else _known_quantity(quantity)


class IdentifyParam(ParamRange):
    """A quantity that system identification fits (``sim2real identify --param``): one value for every selected
    element, searched within [low, high]; ``scale`` and ``offset`` relative to the env's model file, ``set``
    absolute. ``action_lag`` (``set: [low, high]`` seconds, no ``select``) fits a first-order motor lag;
    ``sensor_offset`` (``offset: [low, high]``, a joint in ``select``) what the recording adds to its position."""

    quantity: Annotated[str, AfterValidator(_identifiable)] = Field(
        description="which model quantity, e.g. body_mass, or action_lag (the motors' time constant, seconds)"
    )

    @model_validator(mode="after")
    def _lag_in_seconds(self) -> IdentifyParam:
        if self.quantity == ACTION_LAG and (self.op != "set" or self.select is not None or self.bounds[0] < 0):
            raise ValueError("action_lag is fitted in seconds, as set: with 0 <= low < high, without select")
        if self.quantity == SENSOR_OFFSET and (self.op != "offset" or self.select is None):
            raise ValueError("sensor_offset is fitted as offset: [low, high] in the joint's units, with select")
        return self
