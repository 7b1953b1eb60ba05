"""Dynamics: named quantities changed from a nominal snapshot; MuJoCo's derived constants kept consistent."""

from __future__ import annotations

import re
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest

from sim2real.dynamics import QUANTITIES, Change, Dynamics
from sim2real.errors import FrictionDominatedWarning, NoEffectWarning, Sim2RealError

# A slider carrying a hinged arm; the arm's inertia is explicit so a heavier twin can be compiled exactly.
# The joints' ``ref`` makes qpos0 non-zero, so actuator_length0 (gear * qpos0) is a real check.
ARM_XML = """
<mujoco>
  <compiler angle="radian"/>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1"/>
    <body name="base" pos="0 0 0.5">
      <joint name="slide" type="slide" axis="1 0 0" ref="0.3" armature="{armature}" damping="0.5"/>
      <geom name="base_geom" type="box" size="0.1 0.1 0.1" mass="1"/>
      <body name="arm" pos="0.2 0 0">
        <joint name="hinge" type="hinge" axis="0 1 0" ref="0.5"/>
        <inertial pos="0.1 0 0" mass="{mass}" diaginertia="{inertia}"/>
        <geom name="arm_geom" type="capsule" fromto="0 0 0 0.2 0 0" size="0.02" contype="0" conaffinity="0"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="slide" gear="{gear}" ctrlrange="-1 1"/>
    <motor name="turn" joint="hinge" gear="{gear}" ctrlrange="-1 1"/>
  </actuator>
</mujoco>
"""

FREE_XML = """
<mujoco>
  <worldbody>
    <body name="ball" pos="0 0 1">
      <joint name="free" type="free" damping="0.1"/>
      <geom name="ball_geom" type="sphere" size="0.1" mass="1"/>
      <body name="flap" pos="0.2 0 0">
        <joint name="flap_hinge" type="hinge" axis="0 1 0" damping="0.3"/>
        <geom name="flap_geom" type="box" size="0.05 0.05 0.01" mass="0.1"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="flap_motor" joint="flap_hinge"/>
  </actuator>
</mujoco>
"""


def arm_model(mass: float = 1.0, inertia: float = 1.0, gear: float = 1.0, armature: float = 0.1) -> mujoco.MjModel:
    """The arm model; ``inertia`` multiplies the arm's diagonal inertia (0.01, 0.02, 0.03) kg*m^2."""
    diag = " ".join(str(inertia * v) for v in (0.01, 0.02, 0.03))
    xml = ARM_XML.format(mass=mass, inertia=diag, gear=gear, armature=armature)
    return mujoco.MjModel.from_xml_string(xml)


def assert_fields_match(model: mujoco.MjModel, expected: mujoco.MjModel, fields: list[str]) -> None:
    for field in fields:
        np.testing.assert_allclose(getattr(model, field), getattr(expected, field), rtol=1e-10, err_msg=field)


def assert_fields_differ(model: mujoco.MjModel, other: mujoco.MjModel, fields: list[str]) -> None:
    """Guards the comparisons above: a field equal in both compiled models would prove nothing."""
    for field in fields:
        assert not np.allclose(getattr(model, field), getattr(other, field)), field


# ------------------------------------------------------------------------------------------ derived constants


def test_body_mass_scales_inertia_and_recomputes_derived_constants():
    model, heavier = arm_model(), arm_model(mass=2.0, inertia=2.0)
    derived = ["body_subtreemass", "dof_invweight0", "body_invweight0", "actuator_acc0", "dof_M0"]
    assert_fields_differ(model, heavier, derived)

    Dynamics(model).apply([Change("body_mass", "scale", 2.0, "arm")])

    assert_fields_match(model, heavier, ["body_mass", "body_inertia", *derived])


def test_actuator_gear_recomputes_derived_constants():
    model, geared = arm_model(), arm_model(gear=2.0)
    derived = ["actuator_acc0", "actuator_length0"]
    assert_fields_differ(model, geared, derived)

    Dynamics(model).apply([Change("actuator_gear", "scale", 2.0, "all")])

    assert_fields_match(model, geared, ["actuator_gear", *derived])


def test_joint_armature_recomputes_derived_constants():
    model, stiffer = arm_model(), arm_model(armature=0.2)
    derived = ["dof_M0", "dof_invweight0"]
    assert_fields_differ(model, stiffer, derived)

    Dynamics(model).apply([Change("joint_armature", "scale", 2.0, "slide")])

    assert_fields_match(model, stiffer, ["dof_armature", *derived])


# ------------------------------------------------------------------------------------------ nominal snapshot

EVERY_QUANTITY = [
    Change("body_mass", "scale", 1.7, "all"),
    Change("geom_friction", "scale", 0.5, "all"),
    Change("geom_torsional_friction", "offset", 0.01, "floor"),
    Change("geom_rolling_friction", "set", 0.001, "base_geom"),
    Change("joint_damping", "scale", 3.0, "all"),
    Change("joint_armature", "offset", 0.05, "all"),
    Change("joint_frictionloss", "set", 0.2, "hinge"),
    Change("joint_stiffness", "set", 4.0, "slide"),
    Change("actuator_gear", "scale", 0.5, "all"),
    Change("actuator_gain", "scale", 2.0, "push"),
    Change("actuator_ctrlrange", "set", [-0.5, 0.25], "turn"),
    Change("gravity", "set", [0.0, 0.5, -1.62]),
    Change("timestep", "scale", 0.5),
]


def test_every_quantity_is_covered_by_the_snapshot_test():
    assert {c.quantity for c in EVERY_QUANTITY} == set(QUANTITIES)


def _snapshot(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    fields = {q.field for q in QUANTITIES.values()} - {"opt.gravity", "opt.timestep"}
    fields |= {
        "body_inertia",
        "body_subtreemass",
        "dof_M0",
        "dof_invweight0",
        "body_invweight0",
        "actuator_acc0",
    }
    snapshot = {f: np.array(getattr(model, f)) for f in fields}
    snapshot["gravity"] = np.array(model.opt.gravity)
    snapshot["timestep"] = np.array(model.opt.timestep)
    return snapshot


def test_applying_twice_does_not_compound():
    once, twice = arm_model(), arm_model()
    Dynamics(once).apply(EVERY_QUANTITY)
    dynamics = Dynamics(twice)
    dynamics.apply(EVERY_QUANTITY)
    dynamics.apply(EVERY_QUANTITY)

    for field, value in _snapshot(once).items():
        np.testing.assert_array_equal(_snapshot(twice)[field], value, err_msg=field)
    assert twice.body_mass[2] == pytest.approx(1.7)


def test_reset_restores_every_quantity_bit_exactly():
    model, fresh = arm_model(), arm_model()
    dynamics = Dynamics(model)
    dynamics.apply(EVERY_QUANTITY)
    assert dynamics.changed()

    dynamics.reset()

    for field, value in _snapshot(fresh).items():
        np.testing.assert_array_equal(_snapshot(model)[field], value, err_msg=field)
    assert dynamics.changed() == {}


def test_a_later_apply_replaces_the_earlier_changes():
    model = arm_model()
    dynamics = Dynamics(model)
    dynamics.apply([Change("joint_damping", "set", 2.0, "slide")])
    dynamics.apply([Change("body_mass", "scale", 2.0, "arm")])

    assert dynamics.get("joint_damping", "slide") == {"slide": 0.5}
    assert dynamics.get("body_mass", "arm") == {"arm": 2.0}


def test_apply_does_not_disturb_the_simulation_state():
    env = gym.make("Hopper-v5").unwrapped
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    data = env.data
    before = [np.array(data.qpos), np.array(data.qvel), np.array(data.act), data.time]

    Dynamics(env.model).apply([Change("body_mass", "scale", 1.5, "all")])

    after = [np.array(data.qpos), np.array(data.qvel), np.array(data.act), data.time]
    for b, a in zip(before, after, strict=True):
        np.testing.assert_array_equal(a, b)
    env.close()


# ------------------------------------------------------------------------------------------ operations


def test_set_and_offset_are_relative_to_nominal():
    model = arm_model()
    dynamics = Dynamics(model)

    dynamics.apply([Change("body_mass", "set", 3.0, "arm")])
    assert model.body_mass[2] == 3.0
    np.testing.assert_allclose(model.body_inertia[2], [0.03, 0.06, 0.09])

    dynamics.apply([Change("body_mass", "offset", 0.5, "arm")])
    assert model.body_mass[2] == 1.5

    dynamics.apply([Change("joint_damping", "offset", -0.25, "slide")])
    assert model.dof_damping[0] == 0.25


def test_later_change_to_an_element_wins():
    model = arm_model()
    Dynamics(model).apply([Change("body_mass", "scale", 2.0, "all"), Change("body_mass", "set", 5.0, "arm")])

    assert model.body_mass.tolist() == [0.0, 2.0, 5.0]


def test_gravity_takes_a_three_list():
    model = arm_model()
    dynamics = Dynamics(model)
    dynamics.apply([Change("gravity", "set", [0.0, 1.0, -1.62])])

    assert model.opt.gravity.tolist() == [0.0, 1.0, -1.62]
    assert dynamics.get("gravity") == {"gravity": [0.0, 1.0, -1.62]}

    dynamics.apply([Change("gravity", "scale", [1.0, 1.0, 0.5])])
    assert model.opt.gravity.tolist() == pytest.approx([0.0, 0.0, -4.905])


def test_timestep_change_changes_the_env_control_period():
    env = gym.make("Hopper-v5").unwrapped
    nominal_dt = env.dt

    Dynamics(env.model).apply([Change("timestep", "scale", 0.5)])

    assert env.dt == pytest.approx(nominal_dt / 2)
    env.close()


def test_narrower_ctrlrange_clips_the_command():
    model = arm_model(gear=3.0)
    Dynamics(model).apply([Change("actuator_ctrlrange", "set", [-0.25, 0.25], "push")])
    data = mujoco.MjData(model)
    data.ctrl[:] = [1.0, 1.0]

    mujoco.mj_forward(model, data)

    assert model.actuator_ctrlrange.tolist() == [[-0.25, 0.25], [-1.0, 1.0]]
    assert data.actuator_force.tolist() == pytest.approx([0.25, 1.0])


def test_joint_quantity_of_a_free_joint_covers_its_six_dofs():
    model = mujoco.MjModel.from_xml_string(FREE_XML)
    dynamics = Dynamics(model)
    assert dynamics.get("joint_damping", "free") == {"free": [0.1] * 6}

    dynamics.apply([Change("joint_damping", "set", 2.0, "free")])

    assert model.dof_damping.tolist() == [2.0] * 6 + [0.3]
    assert dynamics.get("joint_damping") == {"free": [2.0] * 6, "flap_hinge": 0.3}


def test_all_bodies_excludes_the_world_body():
    model = arm_model()
    dynamics = Dynamics(model)

    assert dynamics.names("body") == ["base", "arm"]
    assert list(dynamics.get("body_mass")) == ["base", "arm"]
    dynamics.apply([Change("body_mass", "scale", 2.0, "all")])
    assert model.body_mass.tolist() == [0.0, 2.0, 2.0]
    with pytest.raises(Sim2RealError, match="unknown body 'world'"):
        dynamics.apply([Change("body_mass", "scale", 2.0, "world")])


def test_changed_lists_only_values_away_from_nominal():
    model = mujoco.MjModel.from_xml_string(FREE_XML)
    dynamics = Dynamics(model)
    assert dynamics.changed() == {}

    dynamics.apply(
        [
            Change("body_mass", "scale", 2.0, "ball"),
            Change("body_mass", "set", 0.1, "flap"),  # its nominal value: not a change
            Change("joint_damping", "set", 0.5, "free"),
            Change("gravity", "set", [0.0, 0.0, -9.81]),  # nominal too
        ]
    )

    assert dynamics.changed() == {
        "body_mass/ball": 2.0,
        **{f"joint_damping/free/{i}": 0.5 for i in range(6)},
    }


# ------------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        (Change("body_mass", "scale", 2.0, "pole"), ["body_mass", "unknown body 'pole'", "base, arm"]),
        (
            Change("geom_friction", "scale", 2.0, ["floor", "flor"]),
            ["unknown geom 'flor'", "floor, base_geom"],
        ),
        (Change("joint_damping", "set", 1.0, "elbow"), ["unknown joint 'elbow'", "slide, hinge"]),
        (Change("actuator_gear", "set", 1.0, "motor"), ["unknown actuator 'motor'", "push, turn"]),
        (Change("mass", "scale", 2.0, "arm"), ["unknown quantity 'mass'", "body_mass", "timestep"]),
        (Change("geom_friction", "set", -0.1, "floor"), ["geom_friction", "'floor'", "-0.1", ">= 0"]),
        (Change("body_mass", "set", 0.0, "arm"), ["body_mass", "'arm'", "> 0", "kg"]),
        (Change("body_mass", "scale", -1.0, "all"), ["body_mass", "'base'", "> 0"]),
        (Change("body_mass", "scale", float("nan"), "arm"), ["body_mass", "finite"]),
        (Change("geom_friction", "offset", float("inf"), "floor"), ["geom_friction", "finite"]),
        (Change("timestep", "set", 0.0), ["timestep", "> 0", "(s)"]),
        (
            Change("actuator_ctrlrange", "set", [1.0, -1.0], "turn"),
            ["actuator_ctrlrange", "'turn'", "low <= high"],
        ),
        (Change("gravity", "set", [0.0, -9.81]), ["gravity", "3 numbers"]),
        (Change("actuator_ctrlrange", "set", [0.0, 1.0, 2.0], "push"), ["actuator_ctrlrange", "2 numbers"]),
        (Change("body_mass", "scale", 2.0), ["body_mass", "'select' is required"]),
        (Change("body_mass", "scale", 2.0, []), ["body_mass", "empty list"]),
    ],
)
def test_bad_changes_are_refused_with_a_message_naming_the_problem(change, fragments):
    model = arm_model()
    dynamics = Dynamics(model)

    with pytest.raises(Sim2RealError) as error:
        dynamics.apply([change])

    for fragment in fragments:
        assert fragment in str(error.value)
    np.testing.assert_array_equal(model.body_mass, arm_model().body_mass)


def test_a_refused_change_leaves_the_previous_domain_in_place():
    model = arm_model()
    dynamics = Dynamics(model)
    dynamics.apply([Change("body_mass", "scale", 2.0, "arm")])

    with pytest.raises(Sim2RealError):
        dynamics.apply([Change("body_mass", "scale", 3.0, "arm"), Change("timestep", "set", -1.0)])

    assert dynamics.changed() == {"body_mass/arm": 2.0}


def test_error_for_a_global_quantity_does_not_mention_an_element_kind():
    with pytest.raises(Sim2RealError) as error:
        Dynamics(arm_model()).apply([Change("timestep", "set", 0.0)])

    assert "None" not in str(error.value)


def test_a_model_without_actuators_can_be_changed():
    xml = """
<mujoco>
  <worldbody>
    <body name="pendulum">
      <joint name="hinge" type="hinge" axis="0 1 0"/>
      <geom name="bob" type="sphere" size="0.1" pos="0 0 -1" mass="1"/>
    </body>
  </worldbody>
</mujoco>
"""
    model = mujoco.MjModel.from_xml_string(xml)
    Dynamics(model).apply([Change("body_mass", "scale", 2.0, "pendulum")])

    assert model.body_mass[1] == pytest.approx(2.0)


def test_unknown_quantity_on_read_is_refused():
    with pytest.raises(Sim2RealError, match="unknown quantity 'friction'"):
        Dynamics(arm_model()).get("friction")


# ------------------------------------------------------------------------------------------ contact friction


def test_lowering_hopper_floor_friction_warns_about_the_foot():
    env = gym.make("Hopper-v5").unwrapped
    dynamics = Dynamics(env.model)

    with pytest.warns(FrictionDominatedWarning, match="'floor'") as record:
        dynamics.apply([Change("geom_friction", "scale", 0.5, "floor")])

    assert "'foot_geom'" in str(record[0].message)
    env.close()


def test_raising_floor_friction_above_every_partner_does_not_warn():
    env = gym.make("Hopper-v5").unwrapped
    dynamics = Dynamics(env.model)

    with warnings.catch_warnings():
        warnings.simplefilter("error", FrictionDominatedWarning)
        dynamics.apply([Change("geom_friction", "set", 3.0, "floor")])

    assert env.model.geom_friction[0, 0] == 3.0
    env.close()


PRIORITY_XML = """
<mujoco>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1" friction="0.2" priority="1"/>
    <body name="box" pos="0 0 0.1">
      <joint name="box_x" type="slide" axis="1 0 0"/>
      <geom name="box" type="box" size="0.1 0.1 0.1" friction="0.5"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="box_x"/>
  </actuator>
</mujoco>
"""


def test_partner_with_higher_priority_warns_even_when_raising():
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(PRIORITY_XML))

    with pytest.warns(FrictionDominatedWarning, match="'floor' \\(higher priority"):
        dynamics.apply([Change("geom_friction", "set", 2.0, "box")])


def test_geom_with_higher_priority_than_its_partner_does_not_warn():
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(PRIORITY_XML))

    with warnings.catch_warnings():
        warnings.simplefilter("error", FrictionDominatedWarning)
        dynamics.apply([Change("geom_friction", "set", 0.05, "floor")])


def _masks_xml(floor_contype: int, floor_conaffinity: int) -> str:
    return f"""
<mujoco>
  <worldbody>
    <geom name="floor" type="plane" size="2 2 0.1" friction="1" contype="{floor_contype}"
          conaffinity="{floor_conaffinity}"/>
    <body name="box" pos="0 0 0.1">
      <joint name="box_x" type="slide" axis="1 0 0"/>
      <geom name="box" type="box" size="0.1 0.1 0.1" friction="0.8" contype="1" conaffinity="1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="push" joint="box_x"/>
  </actuator>
</mujoco>
"""


@pytest.mark.parametrize(
    ("contype", "conaffinity", "collide"),
    [(1, 1, True), (2, 1, True), (1, 2, True), (2, 2, False), (0, 0, False)],
)
def test_only_geoms_that_can_collide_are_named(contype, conaffinity, collide):
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(_masks_xml(contype, conaffinity)))

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dynamics.apply([Change("geom_friction", "set", 0.3, "box")])

    messages = [str(w.message) for w in record if issubclass(w.category, FrictionDominatedWarning)]
    assert any("'floor'" in m for m in messages) == collide


def _parent_child_xml(filterparent: str) -> str:
    return f"""
<mujoco>
  <option><flag filterparent="{filterparent}"/></option>
  <worldbody>
    <body name="upper" pos="0 0 1">
      <joint name="lift" type="slide" axis="0 0 1"/>
      <geom name="upper" type="box" size="0.1 0.1 0.1" friction="0.8"/>
      <body name="lower" pos="0 0 -0.25">
        <joint name="knee" type="hinge" axis="1 0 0"/>
        <geom name="lower" type="box" size="0.1 0.1 0.1" friction="1.5"/>
      </body>
    </body>
  </worldbody>
  <actuator>
    <motor name="knee_motor" joint="knee"/>
  </actuator>
</mujoco>
"""


@pytest.mark.parametrize(("filterparent", "collide"), [("enable", False), ("disable", True)])
def test_parent_and_child_bodies_are_not_named_unless_filterparent_is_off(filterparent, collide):
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(_parent_child_xml(filterparent)))

    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        dynamics.apply([Change("geom_friction", "set", 0.3, "upper")])

    messages = [str(w.message) for w in record if issubclass(w.category, FrictionDominatedWarning)]
    assert any("'lower'" in m for m in messages) == collide


# ------------------------------------------------------------------------------------------ no effect

NO_EFFECT_XML = """
<mujoco>
  <worldbody>
    <geom name="floor" type="plane" size="1 1 .1"/>
    <body name="shelf" pos="0 0 1"><geom name="ghost" type="box" size=".1 .1 .1" contype="0" conaffinity="0"/></body>
    <body name="ball" pos="0 0 2"><joint name="slide" type="slide" axis="0 0 1"/><geom name="ball" size=".1"/></body>
  </worldbody>
</mujoco>
"""


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (Change("joint_damping", "scale", 2.0, "slide"), "joint_damping of joint 'slide' is 0 in the model"),
        (
            Change("geom_friction", "set", 0.3, "ghost"),
            "geom_friction of geom 'ghost' changes nothing: the geom can touch",
        ),
        (Change("body_mass", "scale", 2.0, "shelf"), "body_mass of body 'shelf' changes nothing: the body is fixed"),
    ],
    ids=["scale of zero", "friction of a geom touching nothing", "mass of a body fixed to the world"],
)
def test_a_change_that_cannot_take_effect_is_warned(change: Change, needle: str) -> None:
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(NO_EFFECT_XML))
    with pytest.warns(NoEffectWarning, match=re.escape(needle)):
        dynamics.apply([change])


def test_changes_that_take_effect_are_not_warned_about() -> None:
    dynamics = Dynamics(mujoco.MjModel.from_xml_string(NO_EFFECT_XML))
    with warnings.catch_warnings():
        warnings.simplefilter("error", NoEffectWarning)
        dynamics.apply([Change("joint_damping", "set", 0.5, "slide"), Change("body_mass", "scale", 2.0, "ball"),
                        Change("geom_friction", "set", 2.0, "ball")])  # fmt: skip
