"""Domains as gymnasium envs: Sim2Real/ ids, make_domain_env, BlockPush, and use inside SB3 vector envs."""

from __future__ import annotations

import functools
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import sim2real_envs
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from sim2real.domain import DynamicsWrapper, find_dynamics_wrapper, make_domain_env
from sim2real.dynamics import Change
from sim2real.errors import Sim2RealError

ROOT = Path(__file__).parents[1]
IDP_CONFIG = ROOT / "configs" / "inverted_double_pendulum" / "nominal.yaml"
ALL_NAMES = [*sim2real_envs.GYMNASIUM_MUJOCO, "BlockPush"]


pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def domain_parameters(env: gym.Env) -> dict[str, float]:
    return env.get_wrapper_attr("domain_parameters")()


# ------------------------------------------------------------------------------------------ Sim2Real/ ids


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_registered_id_builds_with_the_nominal_model(name):
    env = gym.make(f"Sim2Real/{name}-v0")
    observation, _ = env.reset(seed=0)

    assert env.observation_space.contains(observation)
    assert isinstance(find_dynamics_wrapper(env), DynamicsWrapper)
    assert domain_parameters(env) == {}
    env.close()


@pytest.mark.parametrize("name", ALL_NAMES)
def test_every_registered_id_applies_dynamics_given_as_dicts(name):
    nominal_dt = gym.make(f"Sim2Real/{name}-v0").unwrapped.dt
    env = gym.make(f"Sim2Real/{name}-v0", dynamics=[{"quantity": "timestep", "scale": 0.5}])

    assert env.unwrapped.dt == pytest.approx(nominal_dt / 2)
    assert domain_parameters(env) == {"timestep": pytest.approx(env.unwrapped.model.opt.timestep)}
    env.close()


def test_dynamics_are_read_back_by_element_name():
    env = gym.make(
        "Sim2Real/Hopper-v0",
        dynamics=[
            {"quantity": "body_mass", "select": "torso", "scale": 2.0},
            {"quantity": "joint_damping", "select": ["thigh_joint", "leg_joint"], "set": 0.5},
        ],
    )
    nominal = gym.make("Hopper-v5").unwrapped.model

    assert domain_parameters(env) == {
        "body_mass/torso": pytest.approx(2 * nominal.body_mass[1]),
        "joint_damping/thigh_joint": 0.5,
        "joint_damping/leg_joint": 0.5,
    }
    assert find_dynamics_wrapper(env).dynamics.get("body_mass", "torso") == {
        "torso": pytest.approx(2 * nominal.body_mass[1])
    }
    env.close()


@pytest.mark.parametrize("name", ["InvertedDoublePendulum", "Hopper", "BlockPush"])
def test_changed_env_passes_gymnasium_env_checker(name):
    dynamics = [
        {"quantity": "body_mass", "select": "all", "scale": 1.5},
        {"quantity": "joint_damping", "select": "all", "offset": 0.1},
        {"quantity": "actuator_gear", "select": "all", "scale": 0.8},
    ]
    env = gym.make(f"Sim2Real/{name}-v0", dynamics=dynamics)
    assert domain_parameters(env)

    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_bad_dynamics_dict_is_refused():
    with pytest.raises(Sim2RealError, match="scael"):
        gym.make("Sim2Real/Hopper-v0", dynamics=[{"quantity": "body_mass", "select": "torso", "scael": 2.0}])


def test_unknown_element_in_dynamics_names_the_valid_ones():
    with pytest.raises(Sim2RealError, match=r"unknown body 'pole'.*torso, thigh, leg, foot"):
        gym.make("Sim2Real/Hopper-v0", dynamics=[{"quantity": "body_mass", "select": "pole", "scale": 2.0}])


# ------------------------------------------------------------------------------------------ config + domain


def test_config_domain_applies_that_targets_changes():
    env = gym.make("Sim2Real/InvertedDoublePendulum-v0", config=str(IDP_CONFIG), domain="heavy_weak")
    model = env.unwrapped.model
    nominal = gym.make("InvertedDoublePendulum-v5").unwrapped.model

    np.testing.assert_allclose(model.body_mass, 2 * nominal.body_mass)
    np.testing.assert_allclose(model.body_inertia, 2 * nominal.body_inertia)
    np.testing.assert_allclose(model.actuator_gear[:, 0], 0.5 * nominal.actuator_gear[:, 0])
    pole = model.body("pole").id
    assert domain_parameters(env)["body_mass/pole"] == pytest.approx(2 * nominal.body_mass[pole])
    env.close()


def test_config_source_domain_is_the_nominal_model():
    env = gym.make("Sim2Real/InvertedDoublePendulum-v0", config=str(IDP_CONFIG))

    assert domain_parameters(env) == {}
    env.close()


def test_unknown_config_domain_names_the_valid_ones():
    with pytest.raises(Sim2RealError) as error:
        gym.make("Sim2Real/InvertedDoublePendulum-v0", config=str(IDP_CONFIG), domain="heavy")

    message = str(error.value)
    assert "no domain 'heavy'" in message
    for name in ("source", "heavy_poles", "weak_motor", "heavy_weak", "slippery_hinges"):
        assert name in message


# ------------------------------------------------------------------------------------------ make_domain_env


def test_make_domain_env_applies_changes_to_a_plain_gymnasium_id():
    env = make_domain_env("InvertedPendulum-v5", [Change("body_mass", "scale", 2.0, "pole")])
    nominal = gym.make("InvertedPendulum-v5").unwrapped.model

    assert domain_parameters(env) == {"body_mass/pole": pytest.approx(2 * nominal.body_mass[2])}
    env.close()


def test_make_domain_env_unknown_id_lists_mujoco_ids():
    with pytest.raises(Sim2RealError) as error:
        make_domain_env("Hoppper-v5")

    message = str(error.value)
    assert "unknown env 'Hoppper-v5'" in message
    assert "Hopper-v5" in message
    assert "Sim2Real/BlockPush-v0" in message
    assert "CartPole-v1" not in message


def test_make_domain_env_refuses_a_non_mujoco_env():
    with pytest.raises(Sim2RealError, match="'CartPole-v1' is not a MuJoCo env"):
        make_domain_env("CartPole-v1")


def test_make_domain_env_bad_env_kwargs_are_refused():
    with pytest.raises(Sim2RealError, match="bad env_kwargs"):
        make_domain_env("Hopper-v5", not_a_keyword=1)


def test_make_domain_env_keeps_the_domain_of_a_sim2real_id():
    env = make_domain_env("Sim2Real/InvertedDoublePendulum-v0", (), config=str(IDP_CONFIG), domain="heavy_weak")

    assert "body_mass/pole" in domain_parameters(env)


# ------------------------------------------------------------------------------------------ BlockPush


def test_block_push_reward_is_the_sum_of_its_terms():
    env = gym.make("Sim2Real/BlockPush-v0")
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(10):
        _, reward, _, _, info = env.step(env.action_space.sample())
        assert reward == pytest.approx(info["reward_distance"] + info["reward_ctrl"])
        assert info["reward_ctrl"] <= 0 and info["reward_distance"] <= 0
    env.close()


def _push_distance(friction: float) -> float:
    env = gym.make(
        "Sim2Real/BlockPush-v0",
        dynamics=[{"quantity": "geom_friction", "select": ["block", "floor"], "set": friction}],
    )
    env.reset(seed=0)
    start = float(env.unwrapped.data.qpos[0])
    for _ in range(20):
        *_, info = env.step(np.array([1.0]))
    env.close()
    return info["x_position"] - start


def test_block_push_lower_friction_pushes_farther():
    slippery, grippy = _push_distance(0.1), _push_distance(0.8)

    assert slippery > 2 * grippy > 0
    # Coulomb friction on a 1 kg block pushed by 10 N for 1 s: x = (10 - mu * 9.81) / 2 (m).
    assert slippery == pytest.approx((10 - 0.1 * 9.81) / 2, rel=0.1)
    assert grippy == pytest.approx((10 - 0.8 * 9.81) / 2, rel=0.1)


def test_block_push_accepts_another_frame_skip():
    env = gym.make("Sim2Real/BlockPush-v0", frame_skip=2)

    assert env.unwrapped.dt == pytest.approx(0.02)


# ------------------------------------------------------------------------------------------ vector envs


BLOCK_PUSH_CHANGES = [
    Change("body_mass", "scale", 2.0, "block"),
    Change("geom_friction", "set", 0.3, ["block", "floor"]),
]
BLOCK_PUSH_PARAMETERS = {"body_mass/block": 2.0, "geom_friction/block": 0.3, "geom_friction/floor": 0.3}


def test_domain_env_factory_survives_pickling():
    factory = functools.partial(make_domain_env, "Sim2Real/BlockPush-v0", BLOCK_PUSH_CHANGES)

    env = pickle.loads(pickle.dumps(factory))()

    assert domain_parameters(env) == BLOCK_PUSH_PARAMETERS
    env.close()


@pytest.mark.slow  # ~5 s: each worker is a fresh interpreter that imports torch through stable-baselines3
def test_subprocess_vector_env_workers_build_the_same_domain():
    # The default start method (forkserver) pickles the factory and registers Sim2Real/ ids in a fresh
    # process, as sim2real's own `train.vec_env: subproc` does.
    factory = functools.partial(make_domain_env, "Sim2Real/BlockPush-v0", BLOCK_PUSH_CHANGES)
    venv = make_vec_env(factory, n_envs=2, seed=0, vec_env_cls=SubprocVecEnv)
    try:
        venv.reset()
        for _ in range(3):
            venv.step(np.ones((2, 1)))
        parameters = venv.env_method("domain_parameters")
    finally:
        venv.close()

    assert parameters == [BLOCK_PUSH_PARAMETERS, BLOCK_PUSH_PARAMETERS]
