"""What every part of the schema shares: the strict base model, the field types, and the model quantities
that dynamics changes and parameter ranges name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from sim2real.dynamics import QUANTITIES

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
# A name becomes a folder (experiments, targets, methods, variants): at most 100 characters, well inside the
# 255 bytes a file name may have, checked before any folder exists.
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$", max_length=100)]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]


def _known_quantity(quantity: str) -> str:
    if quantity not in QUANTITIES:
        raise ValueError(f"unknown quantity '{quantity}' (allowed: {', '.join(QUANTITIES)})")
    return quantity


Quantity = Annotated[str, AfterValidator(_known_quantity)]


def _check_select(quantity: str, select: str | list[str] | None) -> None:
    """Per-element quantities need a selection; gravity and timestep (and identification's action_lag) do not."""
    if quantity in QUANTITIES and QUANTITIES[quantity].kind is not None and select is None:
        raise ValueError(f"{quantity} needs 'select': an element name, a list of names, or 'all'")


class Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, not silently ignored."""

    # No infinities or NaNs anywhere: YAML reads .inf and .nan as numbers, and no setting means them.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


_OPERATIONS: tuple[Literal["scale", "set", "offset"], ...] = ("scale", "set", "offset")
