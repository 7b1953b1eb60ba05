"""Named MuJoCo model quantities: read them, change them from a nominal snapshot, keep the physics consistent.

A *quantity* is one physical knob of an ``MjModel`` (``body_mass``, ``geom_friction``, ``gravity``...). A
*change* names a quantity, a selection of elements (by name, or ``all``) and an operation on the nominal value
(``scale``, ``set`` or ``offset``). :class:`Dynamics` owns one model: it snapshots the nominal values once, and
every :meth:`Dynamics.apply` starts again from that snapshot, so applying the same changes twice never compounds.

After a change, constants that MuJoCo derives from the model at compile time (subtree masses, the diagonal
inverse inertias used by the constraint solver, actuator acceleration scales, ...) are recomputed with
``mj_setConst`` on a scratch ``MjData``: that call runs kinematics at ``qpos0`` in the data it is given, so using
the env's own data would overwrite the simulation state.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import mujoco
import numpy as np

from sim2real.errors import FrictionDominatedWarning, NoEffectWarning, Sim2RealError

ElementKind = Literal["body", "geom", "joint", "actuator"]
Operation = Literal["scale", "set", "offset"]

_OBJ_TYPE: dict[ElementKind, mujoco.mjtObj] = {
    "body": mujoco.mjtObj.mjOBJ_BODY,
    "geom": mujoco.mjtObj.mjOBJ_GEOM,
    "joint": mujoco.mjtObj.mjOBJ_JOINT,
    "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
}
# Degrees of freedom per joint type (mjtJoint order: free, ball, slide, hinge).
_JOINT_DOFS = {0: 6, 1: 3, 2: 1, 3: 1}


@dataclass(frozen=True)
class Quantity:
    """One named physical knob of a MuJoCo model."""

    name: str
    kind: ElementKind | None  # None: a global option with no elements to select
    field: str  # MjModel attribute ("opt.gravity" for options)
    columns: slice  # the columns of ``field`` this quantity covers
    unit: str
    minimum: float | None = None  # smallest allowed value
    exclusive: bool = False  # True: the value must be strictly greater than ``minimum``
    per_dof: bool = False  # joint quantities stored per degree of freedom (dof_*), not per joint
    derived: bool = False  # True: changing it makes compile-time constants stale (needs mj_setConst)
    doc: str = ""


def _q(name: str, kind: ElementKind | None, field: str, columns: slice, unit: str, doc: str, **rules: Any) -> Quantity:
    return Quantity(name=name, kind=kind, field=field, columns=columns, unit=unit, doc=doc, **rules)


_ALL = slice(None)
_NON_NEGATIVE: dict[str, Any] = {"minimum": 0.0}
_POSITIVE: dict[str, Any] = {"minimum": 0.0, "exclusive": True}

QUANTITIES: dict[str, Quantity] = {
    q.name: q
    for q in [
        _q("body_mass", "body", "body_mass", _ALL, "kg",
           "body mass; the body's rotational inertia is scaled by the same factor", **_POSITIVE, derived=True),
        _q("geom_friction", "geom", "geom_friction", slice(0, 1), "1", "sliding friction coefficient",
           **_NON_NEGATIVE),
        _q("geom_torsional_friction", "geom", "geom_friction", slice(1, 2), "m", "torsional friction coefficient",
           **_NON_NEGATIVE),
        _q("geom_rolling_friction", "geom", "geom_friction", slice(2, 3), "m", "rolling friction coefficient",
           **_NON_NEGATIVE),
        _q("joint_damping", "joint", "dof_damping", _ALL, "N*m*s/rad", "viscous damping (N*s/m for slide joints)",
           **_NON_NEGATIVE, per_dof=True),
        _q("joint_armature", "joint", "dof_armature", _ALL, "kg*m^2",
           "armature inertia added to the joint's diagonal (kg for slide joints)",
           **_NON_NEGATIVE, per_dof=True, derived=True),
        _q("joint_frictionloss", "joint", "dof_frictionloss", _ALL, "N*m", "dry friction loss (N for slide joints)",
           **_NON_NEGATIVE, per_dof=True),
        _q("joint_stiffness", "joint", "jnt_stiffness", _ALL, "N*m/rad", "spring stiffness (N/m for slide joints)",
           **_NON_NEGATIVE),
        _q("actuator_gear", "actuator", "actuator_gear", slice(0, 1), "1",
           "transmission gear: scales the actuator's force and the moment it applies", derived=True),
        _q("actuator_gain", "actuator", "actuator_gainprm", slice(0, 1), "1",
           "actuator gain (gainprm[0]); for motors, force = gain * gear * control"),
        _q("actuator_ctrlrange", "actuator", "actuator_ctrlrange", _ALL, "1",
           "control range [low, high]; MuJoCo clips commands to it (the env's action space is unchanged, "
           "so a narrower range models a weaker motor)"),
        _q("gravity", None, "opt.gravity", _ALL, "m/s^2", "gravity vector [x, y, z]"),
        _q("timestep", None, "opt.timestep", _ALL, "s",
           "physics timestep; the env's control period is timestep * frame_skip", **_POSITIVE),
    ]
}  # fmt: skip


def selection_label(select: str | Sequence[str] | None) -> str:
    """A selection as one name: ``torso``, ``all``, ``foot_geom+floor``; empty for global quantities."""
    if select is None:
        return ""
    return select if isinstance(select, str) else "+".join(select)


def parameter_name(quantity: str, select: str | Sequence[str] | None = None) -> str:
    """The name of a quantity over a selection, ``quantity/selection`` (``gravity`` alone for global ones).

    The one spelling of a parameter everywhere it is shown: ``info["randomization"]`` and TensorBoard's
    ``randomization/<name>`` tags, ADR's parameters, HPARAMS columns, sweep axes.
    """
    label = selection_label(select)
    return f"{quantity}/{label}" if label else quantity


def element_key(quantity: str, element: str | None, index: int | None = None, column: int | None = None) -> str:
    """The key of one value: ``quantity/element``, ``/i`` for a joint's i-th degree of freedom when it has several,
    ``/c`` for a column of a vector quantity (gravity, ctrlrange)."""
    key = parameter_name(quantity, element)
    if index is not None:
        key += f"/{index}"
    return key if column is None else f"{key}/{column}"


def element_names(model: mujoco.MjModel, kind: ElementKind) -> list[str]:
    """Names of all elements of ``kind``; unnamed elements are called ``<kind>#<index>``."""
    count = {"body": model.nbody, "geom": model.ngeom, "joint": model.njnt, "actuator": model.nu}[kind]
    names = []
    for i in range(count):
        name = mujoco.mj_id2name(model, _OBJ_TYPE[kind], i)
        names.append(name if name else f"{kind}#{i}")
    return names


def _read_field(model: mujoco.MjModel, quantity: Quantity) -> np.ndarray:
    """The quantity's values as a 2-D array (rows x columns), always a copy."""
    if quantity.field == "opt.gravity":
        return np.array(model.opt.gravity, dtype=np.float64).reshape(1, 3)
    if quantity.field == "opt.timestep":
        return np.array([[model.opt.timestep]], dtype=np.float64)
    array = getattr(model, quantity.field)
    array = array.reshape(array.shape[0], -1) if array.ndim == 1 else array
    return np.array(array[:, quantity.columns], dtype=np.float64)


@dataclass(frozen=True)
class Change:
    """One dynamics change: ``quantity`` of the ``select``-ed elements, changed by ``op`` with ``value``.

    ``select`` is an element name, a list of names, or ``"all"``; it is ignored (and may be None) for the
    global quantities ``gravity`` and ``timestep``. ``value`` is a number, or a list with one number per column
    (three for ``gravity``, two for ``actuator_ctrlrange``).
    """

    quantity: str
    op: Operation
    value: float | Sequence[float]
    select: str | Sequence[str] | None = None


@dataclass(frozen=True)
class ResolvedChange:
    """A change with its element names resolved to rows of the quantity's array."""

    quantity: Quantity
    rows: np.ndarray
    labels: tuple[str, ...]  # element name of each row
    op: Operation
    value: np.ndarray  # broadcastable to (len(rows), n_columns)


def combine(op: Operation, nominal: np.ndarray, value: np.ndarray, out: np.ndarray) -> np.ndarray:
    """``out`` = the nominal values changed by ``op`` with ``value`` (the one place each operation is defined)."""
    if op == "scale":
        return np.multiply(nominal, value, out=out)
    if op == "offset":
        return np.add(nominal, value, out=out)
    np.copyto(out, value)  # broadcasts like the others, without building a broadcast view
    return out


class WritePlan:
    """The one way values reach the model (fixed domains, randomization, ADR, identification): one change's rows
    prepared once, so that each write is one array operation and allocates nothing.

    Resolved here, as nothing of it depends on the value: the rows (a slice when contiguous), their nominal
    values, the model memory they live in (written in place when the rows are contiguous, else through a buffer)
    and, for body mass, the inertia that follows it. Writing mass, armature or gear makes MuJoCo's compile-time
    constants stale: call :meth:`Dynamics.recompute_derived` after a batch of writes.
    """

    def __init__(self, dynamics: Dynamics, change: ResolvedChange) -> None:
        self.model = dynamics.model
        self.quantity = change.quantity
        self.op = change.op
        rows = np.asarray(change.rows, dtype=np.intp)
        contiguous = len(rows) > 0 and np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows)))
        self.rows: slice | np.ndarray = slice(int(rows[0]), int(rows[0]) + len(rows)) if contiguous else rows
        self.base = dynamics.nominal_values(change.quantity.name)[rows]
        self.view = dynamics.writable_view(change.quantity.name)
        self._in_place = self.view is not None and contiguous
        self._out = self.view[self.rows] if self.view is not None and contiguous else np.empty_like(self.base)
        self._inertia: _InertiaPlan | None = None
        if change.quantity.name == "body_mass":
            self._inertia = _InertiaPlan(self, dynamics.nominal_inertia()[rows])

    def write(self, value: np.ndarray) -> None:
        """Sets the rows to nominal changed by ``value`` (broadcast to rows x columns: a column, one value...)."""
        values = combine(self.op, self.base, value, self._out)
        if not self._in_place:
            if self.view is None:  # timestep: a scalar option, not an array
                self.model.opt.timestep = float(values[0, 0])
                return
            self.view[self.rows] = values
        if self._inertia is not None:
            self._inertia.write()


class _InertiaPlan:
    """A body's rotational inertia follows its mass: scaled by the same factor (the shape is unchanged), for the
    rows of a ``body_mass`` :class:`WritePlan`, after it wrote them."""

    def __init__(self, plan: WritePlan, nominal: np.ndarray) -> None:
        self.mass, self.nominal_mass, self.nominal, self.rows = plan._out[:, 0], plan.base[:, 0], nominal, plan.rows
        massive = self.nominal_mass > 0  # a massless body keeps its inertia (ratio 1)
        self.where: np.ndarray | bool = True if massive.all() else massive  # a mask costs time: only if needed
        self.ratio = np.ones_like(self.nominal_mass)
        self.column = self.ratio[:, None]
        self.view = plan.model.body_inertia
        self.in_place = isinstance(self.rows, slice)
        self.out = self.view[self.rows] if self.in_place else np.empty_like(nominal)

    def write(self) -> None:
        np.divide(self.mass, self.nominal_mass, out=self.ratio, where=self.where)
        np.multiply(self.nominal, self.column, out=self.out)
        if not self.in_place:
            self.view[self.rows] = self.out


class Dynamics:
    """Reads and changes named quantities of one ``MjModel``, always relative to its nominal values.

    Args:
        model: the model to edit in place (an env's ``unwrapped.model``). Its values at construction time are
            the nominal snapshot every change is computed from.
    """

    def __init__(self, model: mujoco.MjModel) -> None:
        self.model = model
        self._nominal = {name: _read_field(model, q) for name, q in QUANTITIES.items()}
        self._nominal_inertia = np.array(model.body_inertia, dtype=np.float64)
        self._changed: set[str] = set()  # quantities currently away from nominal
        self._scratch: mujoco.MjData | None = None
        self._names = {kind: element_names(model, kind) for kind in _OBJ_TYPE}
        self._rows_cache: dict[tuple[str, str | tuple[str, ...] | None], tuple[np.ndarray, tuple[str, ...]]] = {}
        self._contact_partners: dict[int, list[int]] | None = None
        self._whole: dict[str, WritePlan] = {}  # a plan per quantity for whole-quantity writes (apply)

    # ------------------------------------------------------------------ selection
    def names(self, kind: ElementKind) -> list[str]:
        """Element names of ``kind`` in this model (bodies exclude the world body)."""
        names = self._names[kind]
        return names[1:] if kind == "body" else list(names)

    def _rows(self, quantity: Quantity, select: str | Sequence[str] | None) -> tuple[np.ndarray, tuple[str, ...]]:
        key_select = select if select is None or isinstance(select, str) else tuple(select)
        key = (quantity.name, key_select)
        cached = self._rows_cache.get(key)
        if cached is not None:
            return cached
        result = self._resolve_rows(quantity, key_select)
        self._rows_cache[key] = result
        return result

    def _resolve_rows(
        self, quantity: Quantity, select: str | tuple[str, ...] | None
    ) -> tuple[np.ndarray, tuple[str, ...]]:
        if quantity.kind is None:
            return np.zeros(1, dtype=np.intp), (quantity.name,)
        kind = quantity.kind
        if select is None:
            raise Sim2RealError(f"{quantity.name}: 'select' is required: a {kind} name, a list of names, or 'all'")
        all_names = self._names[kind]
        if select == "all":
            ids = list(range(1, len(all_names))) if kind == "body" else list(range(len(all_names)))
        else:
            wanted = [select] if isinstance(select, str) else list(select)
            if not wanted:
                raise Sim2RealError(f"{quantity.name}: 'select' is an empty list")
            ids = []
            for name in wanted:
                if name not in all_names or (kind == "body" and name == all_names[0]):
                    valid = ", ".join(self.names(kind)) or "(none)"
                    raise Sim2RealError(f"{quantity.name}: unknown {kind} '{name}'; valid {kind} names: {valid}")
                ids.append(all_names.index(name))
        if not quantity.per_dof:
            return np.asarray(ids, dtype=np.intp), tuple(all_names[i] for i in ids)
        rows: list[int] = []
        labels: list[str] = []
        for j in ids:
            n = _JOINT_DOFS[int(self.model.jnt_type[j])]
            start = int(self.model.jnt_dofadr[j])
            rows.extend(range(start, start + n))
            labels.extend([all_names[j]] * n)
        return np.asarray(rows, dtype=np.intp), tuple(labels)

    def resolve(self, changes: Iterable[Change]) -> list[ResolvedChange]:
        """Checks names, selections and value shapes of ``changes`` once, for repeated :meth:`apply_resolved`."""
        resolved = []
        for change in changes:
            quantity = QUANTITIES.get(change.quantity)
            if quantity is None:
                raise Sim2RealError(f"unknown quantity '{change.quantity}'; valid quantities: {', '.join(QUANTITIES)}")
            rows, labels = self._rows(quantity, change.select)
            n_cols = self._nominal[quantity.name].shape[1]
            value = np.asarray(change.value, dtype=np.float64)
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, n_cols)):
                raise Sim2RealError(
                    f"{quantity.name}: value must be a number or a list of {n_cols} numbers, got {change.value}"
                )
            if not np.all(np.isfinite(value)):
                raise Sim2RealError(f"{quantity.name}: value must be finite, got {change.value}")
            if change.op not in ("scale", "set", "offset"):
                raise Sim2RealError(f"{quantity.name}: unknown operation '{change.op}'; use scale, set or offset")
            resolved.append(ResolvedChange(quantity, rows, labels, change.op, value))
        return resolved

    # ------------------------------------------------------------------ changing
    def apply(self, changes: Iterable[Change], *, check_friction: bool = True) -> None:
        """Sets the model to nominal plus ``changes`` (in order; a later change to an element wins).

        ``check_friction`` warns about friction changes that MuJoCo's contact combination overrides.
        """
        self.apply_resolved(self.resolve(changes), check_friction=check_friction)

    def apply_resolved(
        self, changes: Sequence[ResolvedChange], *, check_friction: bool = True, validate: bool = True
    ) -> None:
        """Like :meth:`apply` for changes already checked by :meth:`resolve` (the fast path for resets).

        ``validate=False`` skips the physical-validity checks, for values drawn between ends that
        :meth:`check` has already validated.
        """
        current = self._compute(changes)
        if validate:
            for name, values in current.items():
                self._validate(QUANTITIES[name], values, changes)
        # Quantities changed before but not now go back to nominal.
        for name in self._changed - current.keys():
            current[name] = self._nominal[name]
        for name, values in current.items():
            self._write(QUANTITIES[name], values)
        self._changed = {name for name, values in current.items() if not np.array_equal(values, self._nominal[name])}
        if any(QUANTITIES[name].derived for name in current):
            self.recompute_derived()
        if check_friction:
            self._warn_without_effect(changes)
            if any(name.startswith("geom_") for name in current):
                self._warn_dominated_friction()

    def check(self, changes: Sequence[ResolvedChange]) -> None:
        """Raises :class:`Sim2RealError` if ``changes`` would give invalid physics; changes nothing."""
        for name, values in self._compute(changes).items():
            self._validate(QUANTITIES[name], values, changes)

    def writable_view(self, quantity: str) -> np.ndarray | None:
        """The model's memory behind ``quantity`` as a writable (rows x columns) array; None for timestep.

        :class:`WritePlan` writes through it; it marks its quantity changed.
        """
        q = QUANTITIES[quantity]
        if q.field == "opt.timestep":
            return None
        array = self.model.opt.gravity.reshape(1, 3) if q.field == "opt.gravity" else getattr(self.model, q.field)
        view = array.reshape(array.shape[0], -1) if array.ndim == 1 else array
        view = view[:, q.columns]
        assert np.shares_memory(view, array), "a view, not a copy"
        return view

    def nominal_values(self, quantity: str) -> np.ndarray:
        """Nominal values of ``quantity`` as (rows x columns); do not modify."""
        return self._nominal[quantity]

    def nominal_inertia(self) -> np.ndarray:
        return self._nominal_inertia

    def mark_changed(self, quantities: Iterable[str]) -> None:
        """Records quantities written through :meth:`writable_view`, so ``changed()`` and ``reset()`` see them."""
        self._changed |= set(quantities)

    def plan(self, change: ResolvedChange) -> WritePlan:
        """A :class:`WritePlan` for writing ``change``'s rows again and again with new values (its quantity
        counts as changed from now on)."""
        self.mark_changed([change.quantity.name])
        return WritePlan(self, change)

    def _compute(self, changes: Sequence[ResolvedChange]) -> dict[str, np.ndarray]:
        current: dict[str, np.ndarray] = {}
        for change in changes:
            name = change.quantity.name
            nominal = self._nominal[name]
            values = current.setdefault(name, nominal.copy())
            base = nominal[change.rows]
            values[change.rows] = combine(change.op, base, change.value, np.empty_like(base))
        return current

    def reset(self) -> None:
        """Puts every quantity back to its nominal value."""
        self.apply_resolved([])

    def _write(self, quantity: Quantity, values: np.ndarray) -> None:
        """Writes a whole quantity (every row) through its :class:`WritePlan`, like every other write."""
        plan = self._whole.get(quantity.name)
        if plan is None:
            rows = np.arange(len(self._nominal[quantity.name]), dtype=np.intp)  # no labels: validated already
            plan = self._whole[quantity.name] = WritePlan(self, ResolvedChange(quantity, rows, (), "set", values))
        plan.write(values)

    def recompute_derived(self) -> None:
        """Recomputes the constants MuJoCo derives from mass, inertia, armature and gear (``mj_setConst``)."""
        if self._scratch is None:
            self._scratch = mujoco.MjData(self.model)
        mujoco.mj_setConst(self.model, self._scratch)

    def _validate(self, quantity: Quantity, values: np.ndarray, changes: Sequence[ResolvedChange]) -> None:
        bad = ~np.isfinite(values).all(axis=1)
        rule = "finite"
        if quantity.minimum is not None:
            if quantity.exclusive:
                bad |= ~(values > quantity.minimum).all(axis=1)
                rule = f"finite and > {quantity.minimum:g}"
            else:
                bad |= ~(values >= quantity.minimum).all(axis=1)
                rule = f"finite and >= {quantity.minimum:g}"
        if quantity.name == "actuator_ctrlrange":
            bad |= values[:, 0] > values[:, 1]
            rule = "a range with low <= high"
        if quantity.name == "body_mass":
            # A massless body cannot be given mass by scaling; setting one would leave it with zero inertia.
            massless = self._nominal["body_mass"][:, 0] <= 0
            massless[0] = False
            bad |= massless & (values[:, 0] != self._nominal["body_mass"][:, 0])
            bad[0] = False
        if not bad.any():
            return
        row = int(np.flatnonzero(bad)[0])
        label = quantity.name
        for change in changes:
            if quantity.kind is not None and change.quantity is quantity and row in change.rows:
                label = f"{quantity.name} of {quantity.kind} '{change.labels[list(change.rows).index(row)]}'"
        value = values[row].tolist()
        shown = value[0] if len(value) == 1 else value
        if quantity.name == "body_mass" and self._nominal["body_mass"][row, 0] <= 0:
            raise Sim2RealError(f"{label}: the body has no nominal mass, so its mass cannot be changed")
        raise Sim2RealError(f"{label} would be {shown}: must be {rule} ({quantity.unit})")

    # ------------------------------------------------------------------ reading
    def get(self, quantity: str, select: str | Sequence[str] | None = "all") -> dict[str, float | list[float]]:
        """Current values of ``quantity`` by element name (``select`` as in :class:`Change`)."""
        return self._values(quantity, select, _read_field(self.model, self._quantity(quantity)))

    def nominal(self, quantity: str, select: str | Sequence[str] | None = "all") -> dict[str, float | list[float]]:
        """Nominal values of ``quantity`` by element name."""
        return self._values(quantity, select, self._nominal[self._quantity(quantity).name])

    def _quantity(self, name: str) -> Quantity:
        if name not in QUANTITIES:
            raise Sim2RealError(f"unknown quantity '{name}'; valid quantities: {', '.join(QUANTITIES)}")
        return QUANTITIES[name]

    def _values(
        self, name: str, select: str | Sequence[str] | None, array: np.ndarray
    ) -> dict[str, float | list[float]]:
        quantity = self._quantity(name)
        rows, labels = self._rows(quantity, select)
        out: dict[str, list[float]] = {}
        for row, label in zip(rows, labels, strict=True):
            out.setdefault(label, []).extend(array[row].tolist())
        return {label: v[0] if len(v) == 1 else v for label, v in out.items()}

    def changed(self) -> dict[str, float]:
        """Flat ``{"quantity/element": value}`` of every value now away from nominal (for logs and ``info``)."""
        flat: dict[str, float] = {}
        for name in sorted(self._changed):
            quantity = QUANTITIES[name]
            current = _read_field(self.model, quantity)
            rows, labels = self._rows(quantity, "all" if quantity.kind else None)
            columns = current.shape[1]
            seen: dict[str, int] = {}
            for row, label in zip(rows, labels, strict=True):
                index = seen[label] = seen.get(label, -1) + 1
                if np.array_equal(current[row], self._nominal[name][row]):
                    continue
                element = label if quantity.kind else None
                dof = index if quantity.per_dof and labels.count(label) > 1 else None
                for c in np.flatnonzero(current[row] != self._nominal[name][row]):
                    flat[element_key(name, element, dof, int(c) if columns > 1 else None)] = float(current[row, c])
        return flat

    # ------------------------------------------------------------------ contact friction
    def contact_partners(self) -> dict[int, list[int]]:
        """For each geom, the geoms it can touch (MuJoCo's contype/conaffinity, body and parent filters)."""
        if self._contact_partners is None:
            self._contact_partners = _contact_partners(self.model)
        return self._contact_partners

    def _warn_without_effect(self, changes: Sequence[ResolvedChange]) -> None:
        """Warns about changes that cannot change the simulation: scaling a value that is 0 in the model
        (Swimmer's joint damping), friction of a geom that can touch nothing (its contype/conaffinity bits
        match no other geom's), the mass of a body fixed to the world (no joint between them)."""
        partners = None
        welded = np.asarray(self.model.body_weldid)
        for change in changes:
            name, kind = change.quantity.name, change.quantity.kind
            for row, label in zip(change.rows, change.labels, strict=True):
                reason = None
                if change.op == "scale" and not np.any(self._nominal[name][row]):
                    reason = "is 0 in the model, so scaling it changes nothing (use set or offset)"
                elif kind == "geom" and name.startswith("geom_") and "friction" in name:
                    partners = self.contact_partners() if partners is None else partners
                    if not partners.get(int(row)):
                        reason = "changes nothing: the geom can touch no other geom (contype/conaffinity)"
                elif name == "body_mass" and welded[row] == 0:
                    reason = "changes nothing: the body is fixed to the world (no joint between them)"
                if reason is not None:
                    what = f"{name} of {kind} '{label}'" if kind else name
                    warnings.warn(f"{what} {reason}", NoEffectWarning, stacklevel=4)

    def _warn_dominated_friction(self) -> None:
        """Warns when a friction change cannot take effect because MuJoCo combines the two geoms' frictions.

        For two geoms in contact MuJoCo uses the friction of the geom with the higher ``priority``; at equal
        priority it takes the element-wise maximum. Lowering the floor's friction below a foot's therefore
        changes nothing for that foot. Explicit ``<pair>`` contacts carry their own friction.
        """
        friction = np.asarray(self.model.geom_friction)
        nominal = np.concatenate(
            [self._nominal[q] for q in ("geom_friction", "geom_torsional_friction", "geom_rolling_friction")],
            axis=1,
        )
        priority = np.asarray(self.model.geom_priority)
        names = self._names["geom"]
        explicit = {
            frozenset((int(a), int(b))) for a, b in zip(self.model.pair_geom1, self.model.pair_geom2, strict=True)
        }
        for geom in np.flatnonzero((friction != nominal).any(axis=1)):
            columns = np.flatnonzero(friction[geom] != nominal[geom])
            wanted = friction[geom, columns]
            dominating = []
            for partner in self.contact_partners().get(int(geom), []):
                theirs = friction[partner, columns]
                if frozenset((int(geom), partner)) in explicit:
                    dominating.append(f"'{names[partner]}' (explicit <pair> with its own friction)")
                elif priority[partner] > priority[geom]:
                    dominating.append(f"'{names[partner]}' (higher priority, {_fmt(theirs)})")
                elif priority[partner] == priority[geom] and np.any(theirs > wanted):
                    dominating.append(f"'{names[partner]}' ({_fmt(theirs)})")
            if dominating:
                warnings.warn(
                    f"friction of geom '{names[geom]}' ({_fmt(wanted)}) does not take effect in contacts with "
                    f"{', '.join(dominating)}: MuJoCo uses the higher-priority geom's friction, else the larger",
                    FrictionDominatedWarning,
                    stacklevel=4,
                )


def _fmt(values: np.ndarray) -> str:
    return f"{values[0]:g}" if len(values) == 1 else "[" + ", ".join(f"{v:g}" for v in values) + "]"


def _contact_partners(model: mujoco.MjModel) -> dict[int, list[int]]:
    """Geom pairs that MuJoCo's broad phase may turn into contacts, plus explicit ``<pair>`` contacts.

    Mirrors MuJoCo's filter: bitwise ``contype``/``conaffinity`` compatibility, no contacts within one body or
    between bodies welded together, no contacts between a parent and its child body (unless the parent is the
    world, or the ``filterparent`` flag is disabled), and no contacts between ``<exclude>``-d bodies.
    """
    weld = np.asarray(model.body_weldid)
    parent = np.asarray(model.body_parentid)
    geom_body = np.asarray(model.geom_bodyid)
    contype = np.asarray(model.geom_contype)
    conaffinity = np.asarray(model.geom_conaffinity)
    filter_parent = not (model.opt.disableflags & mujoco.mjtDisableBit.mjDSBL_FILTERPARENT)
    # <exclude> signatures name the two bodies themselves: (body1 << 16) + body2.
    excluded = {frozenset(((int(s) >> 16) & 0xFFFF, int(s) & 0xFFFF)) for s in np.asarray(model.exclude_signature)}
    partners: dict[int, list[int]] = {g: [] for g in range(model.ngeom)}
    for a in range(model.ngeom):
        for b in range(a + 1, model.ngeom):
            wa, wb = int(weld[geom_body[a]]), int(weld[geom_body[b]])
            compatible = (contype[a] & conaffinity[b]) or (contype[b] & conaffinity[a])
            parent_child = filter_parent and wa != 0 and wb != 0 and (weld[parent[wa]] == wb or weld[parent[wb]] == wa)
            if wa == wb or not compatible or parent_child:
                continue
            if frozenset((int(geom_body[a]), int(geom_body[b]))) in excluded:
                continue
            partners[a].append(b)
            partners[b].append(a)
    for a, b in zip(model.pair_geom1, model.pair_geom2, strict=True):
        if int(b) not in partners[int(a)]:
            partners[int(a)].append(int(b))
            partners[int(b)].append(int(a))
    return partners
