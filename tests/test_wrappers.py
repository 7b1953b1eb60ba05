"""Reality-gap wrappers: one transformation each, the right spaces, the configured statistics, seeded draws."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from gymnasium.wrappers import RescaleAction, TransformObservation

from sim2real.config import parse_config
from sim2real.domain import DomainSpec, DynamicsWrapper, make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.randomization import Choice, Normal, Uniform
from sim2real.training import train
from sim2real.wrappers import (
    ActionLag,
    ActionLatency,
    ActionNoise,
    ActionSaturation,
    ActionScale,
    ObservationBias,
    ObservationNoise,
)
from tests.conftest import tiny_config_data

IDP = "InvertedDoublePendulum-v5"
HOPPER = "Hopper-v5"  # 3-D actions and episodes of 100+ steps under zero actions


pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


class Recorder(gym.Wrapper):
    """Sits under a reality-gap wrapper and keeps what really reaches the simulator and what it returns."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []
        self.observations: list[np.ndarray] = []

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self.observations.append(np.array(obs))
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        self.actions.append(np.array(action))
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.observations.append(np.array(obs))
        return obs, reward, terminated, truncated, info


def recorded(env_id: str = HOPPER, **kwargs: Any) -> Recorder:
    return Recorder(gym.make(env_id, **kwargs))


def run(env: gym.Env, actions: list[np.ndarray] | int, seed: int = 0) -> tuple[list[np.ndarray], list[dict]]:
    """Steps ``env`` from a seeded reset (resetting when an episode ends); returns observations and infos."""
    if isinstance(actions, int):
        actions = [np.zeros(env.action_space.shape, dtype=np.float32)] * actions
    obs, info = env.reset(seed=seed)
    observations, infos = [obs], [info]
    for action in actions:
        obs, _, terminated, truncated, info = env.step(action)
        observations.append(obs)
        infos.append(info)
        if terminated or truncated:
            obs, info = env.reset()
            observations.append(obs)
            infos.append(info)
    return observations, infos


# ------------------------------------------------------------------------------------------ gymnasium API

WRAPPERS = {
    "observation_noise": lambda env: ObservationNoise(env, std=0.05, seed=(0, 0)),
    "observation_noise_random": lambda env: ObservationNoise(env, std=Uniform(0.0, 0.1), seed=(0, 0)),
    "observation_bias": lambda env: ObservationBias(env, bias=[0.1] * 11, seed=(0, 0)),
    "observation_bias_random": lambda env: ObservationBias(env, bias=Uniform(-0.1, 0.1), seed=(0, 0)),
    "action_noise": lambda env: ActionNoise(env, std=[0.1, 0.2, 0.3], seed=(0, 0)),
    "action_noise_random": lambda env: ActionNoise(env, std=Normal(0.1, 0.05, 0.0, 0.2), seed=(0, 0)),
    "action_latency": lambda env: ActionLatency(env, steps=2, seed=(0, 0)),
    "action_latency_random": lambda env: ActionLatency(env, steps=Choice((0.0, 1.0, 3.0)), seed=(0, 0)),
    "action_lag": lambda env: ActionLag(env, tau=[0.0, 0.01, 0.05], seed=(0, 0)),
    "action_lag_random": lambda env: ActionLag(env, tau=Uniform(0.0, 0.04), seed=(0, 0)),
    "action_scale": lambda env: ActionScale(env, scale=[1.0, 0.5, 0.8], seed=(0, 0)),
    "action_scale_random": lambda env: ActionScale(env, scale=Uniform(0.5, 1.0), seed=(0, 0)),
    "action_saturation": lambda env: ActionSaturation(env, limit=0.5, seed=(0, 0)),
    "action_saturation_random": lambda env: ActionSaturation(env, limit=Uniform(0.3, 1.0), seed=(0, 0)),
}


@pytest.mark.parametrize("make", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_every_wrapper_passes_gymnasium_check_env(make):
    env = make(gym.make(HOPPER))
    # The close check rebuilds the env from env.spec: see the xfail below.
    check_env(env, skip_render_check=True, skip_close_check=True)


def test_a_wrapped_env_can_be_rebuilt_from_its_spec():
    env = ObservationNoise(gym.make(HOPPER), std=0.05, seed=(0, 0))
    check_env(env, skip_render_check=True)
    rebuilt = env.spec.make()
    assert isinstance(rebuilt, ObservationNoise)


def test_observation_noise_makes_the_space_unbounded_and_bias_shifts_its_bounds():
    box = spaces.Box(-10.0, 10.0, shape=(9,), dtype=np.float64)
    bounded = TransformObservation(gym.make(IDP), lambda obs: np.clip(obs, -10.0, 10.0), box)

    noisy = ObservationNoise(bounded, std=0.1)
    assert noisy.observation_space.shape == (9,)
    assert noisy.observation_space.dtype == bounded.observation_space.dtype
    assert np.all(np.isinf(noisy.observation_space.low)) and np.all(np.isinf(noisy.observation_space.high))

    biased = ObservationBias(bounded, bias=Uniform(-0.5, 0.25))
    np.testing.assert_allclose(biased.observation_space.low, -10.5)
    np.testing.assert_allclose(biased.observation_space.high, 10.25)
    per_dim = ObservationBias(bounded, bias=[float(i) for i in range(9)])
    np.testing.assert_allclose(per_dim.observation_space.high, 10.0 + np.arange(9))
    check_env(biased, skip_render_check=True, skip_close_check=True)
    check_env(per_dim, skip_render_check=True, skip_close_check=True)

    # Action wrappers change what reaches the simulator, not what the agent may send.
    for wrapper in (ActionNoise(bounded, 0.1), ActionLatency(bounded, 1), ActionScale(bounded, 0.5)):
        assert wrapper.action_space == bounded.action_space
        assert wrapper.observation_space == bounded.observation_space


# ------------------------------------------------------------------------------------------ observations


def test_observation_noise_has_the_configured_std_per_dimension():
    std = np.array([0.0, 0.01, 0.05, 0.1, 0.2, 0.0, 0.3, 0.02, 0.04, 0.06, 0.5])
    inner = recorded()
    env = ObservationNoise(inner, std=std.tolist(), seed=(0, 0))
    observations, _ = run(env, 3000)

    noise = np.array(observations) - np.array(inner.observations)
    assert noise.shape == (len(observations), 11)
    np.testing.assert_array_equal(noise[:, std == 0], 0.0)
    np.testing.assert_allclose(noise.std(axis=0)[std > 0], std[std > 0], rtol=0.05)
    np.testing.assert_allclose(noise.mean(axis=0), 0.0, atol=0.05 * std.max())


def test_observation_noise_with_a_random_std_uses_the_std_it_reports():
    inner = recorded()
    env = ObservationNoise(inner, std=Uniform(0.05, 0.5), seed=(0, 1))
    observations, infos = run(env, 3000)

    noise = np.array(observations) - np.array(inner.observations)
    reported = np.array([info["randomization"]["observation_noise/std"] for info in infos])
    assert len(np.unique(reported)) > 5, "a new std per episode"
    assert np.all((reported >= 0.05) & (reported <= 0.5))
    # Noise divided by the std reported for its episode is standard normal.
    np.testing.assert_allclose((noise / reported[:, None]).std(), 1.0, rtol=0.03)


@pytest.mark.parametrize("when", ["reset", "startup"])
def test_observation_bias_is_constant_in_an_episode_and_redrawn_only_at_reset(when):
    inner = recorded()
    env = ObservationBias(inner, bias=Uniform(-0.2, 0.2), seed=(3, 0), when=when)
    biases, reported = [], []
    for episode in range(4):
        observations, infos = [], []
        obs, info = env.reset(seed=episode) if episode == 3 else env.reset()
        observations.append(obs)
        infos.append(info)
        for _ in range(20):
            obs, *_, info = env.step(env.action_space.sample() * 0)
            observations.append(obs)
            infos.append(info)
        offsets = np.array(observations) - np.array(inner.observations[-21:])
        np.testing.assert_allclose(offsets, np.broadcast_to(offsets[0], offsets.shape), atol=1e-12)
        values = [info["randomization"] for info in infos]
        assert all(v == values[0] for v in values), "the reported bias is the episode's"
        np.testing.assert_allclose(offsets[0], [values[0][f"observation_bias/bias/{i}"] for i in range(11)])
        biases.append(offsets[0])
        reported.append(values[0])

    assert np.all(np.abs(biases) <= 0.2)
    if when == "reset":
        assert all(not np.allclose(biases[i], biases[i + 1]) for i in range(3))
    else:
        # Once per env: even a seeded reset keeps the startup draw.
        assert all(np.allclose(b, biases[0], rtol=0, atol=1e-12) for b in biases)
        assert all(r == reported[0] for r in reported)


def test_a_fixed_bias_is_added_exactly_and_not_reported_as_randomized():
    inner = recorded()
    bias = np.linspace(-1.0, 1.0, 11)
    env = ObservationBias(inner, bias=bias.tolist())
    observations, infos = run(env, 10)
    np.testing.assert_allclose(np.array(observations) - np.array(inner.observations), np.tile(bias, (11, 1)))
    assert all("randomization" not in info for info in infos)


# ------------------------------------------------------------------------------------------ actions


def test_action_noise_has_the_configured_std_and_stays_in_the_action_space():
    inner = recorded()
    env = ActionNoise(inner, std=[0.05, 0.1, 0.2], seed=(0, 0))
    run(env, 3000)
    received = np.array(inner.actions)
    np.testing.assert_allclose(received.std(axis=0), [0.05, 0.1, 0.2], rtol=0.05)
    np.testing.assert_allclose(received.mean(axis=0), 0.0, atol=0.01)
    assert received.dtype == np.float32

    # Near the edge of the range the noisy action is clipped back into the action space.
    inner = recorded()
    env = ActionNoise(inner, std=0.5, seed=(0, 0))
    run(env, [np.ones(3, dtype=np.float32)] * 300)
    received = np.array(inner.actions)
    assert received.max() == 1.0 and received.min() >= -1.0
    assert 0.4 < np.mean(received == 1.0) < 0.6, "about half the noise pushes past the upper bound"


@pytest.mark.parametrize("k", [0, 1, 3])
def test_latency_delays_the_applied_action_by_exactly_k_steps(k):
    inner = recorded()
    env = ActionLatency(inner, steps=k)
    sent = [np.full(3, 0.01 * (t + 1), dtype=np.float32) for t in range(12)]
    for episode in range(2):
        env.reset(seed=episode)
        inner.actions.clear()
        for action in sent:
            env.step(action)
        received = np.array(inner.actions)
        # The first k steps of every episode get the idle action, never the last episode's leftovers.
        np.testing.assert_array_equal(received[:k], 0.0)
        np.testing.assert_array_equal(received[k:], np.array(sent[: len(sent) - k]))


def test_motor_lag_is_a_first_order_step_response_restarted_every_episode():
    """A step command from rest reaches 1 - (1 - a)^k of itself after k steps, a = 1 - exp(-dt / tau): 63% after
    tau seconds. Each dimension has its own tau (0: no lag), and a new episode starts from no command."""
    inner = recorded()
    dt = inner.unwrapped.dt  # Hopper: 0.008 s
    env = ActionLag(inner, tau=[0.0, dt, 4 * dt])
    for episode in range(2):
        env.reset(seed=episode)
        inner.actions.clear()
        for _ in range(4):
            env.step(np.ones(3, dtype=np.float32))
        received = np.array(inner.actions)
        k = np.arange(1, 5)
        np.testing.assert_allclose(received[:, 0], 1.0)
        np.testing.assert_allclose(received[:, 1], 1 - np.exp(-k), rtol=1e-6)
        np.testing.assert_allclose(received[:, 2], 1 - np.exp(-k / 4), rtol=1e-6)
    assert received[3, 2] == pytest.approx(1 - np.exp(-1), rel=1e-6)  # tau seconds in: 63% of the way


def test_random_motor_lag_is_drawn_per_episode_and_reported():
    inner = recorded()
    env = ActionLag(inner, tau=Uniform(0.01, 0.05), seed=(0, 0))
    taus = set()
    for episode in range(4):
        _, info = env.reset(seed=None if episode else 0)
        tau = info["randomization"]["action_lag/tau"]
        taus.add(tau)
        inner.actions.clear()
        env.step(np.ones(3, dtype=np.float32))
        np.testing.assert_allclose(inner.actions[0], 1 - np.exp(-inner.unwrapped.dt / tau), rtol=1e-6)
    assert len(taus) == 4 and all(0.01 <= t <= 0.05 for t in taus)


def test_latency_idles_at_the_middle_of_an_asymmetric_action_range():
    inner = Recorder(RescaleAction(gym.make(HOPPER), 0.0, 2.0))
    env = ActionLatency(inner, steps=2)
    env.reset(seed=0)
    for action in ([0.0] * 3, [2.0] * 3, [0.5] * 3):
        env.step(np.asarray(action, dtype=np.float32))
    np.testing.assert_array_equal(np.array(inner.actions), [[1.0] * 3, [1.0] * 3, [0.0] * 3])


def test_random_latency_is_drawn_per_episode_and_reported():
    inner = recorded()
    env = ActionLatency(inner, steps=Choice((1.0, 2.0, 4.0)), seed=(0, 0))
    seen = set()
    for episode in range(12):
        _, info = env.reset(seed=None if episode else 0)
        k = int(info["randomization"]["action_latency/steps"])
        seen.add(k)
        inner.actions.clear()
        sent = [np.full(3, 0.1 * (t + 1), dtype=np.float32) for t in range(6)]
        for action in sent:
            *_, step_info = env.step(action)
            assert step_info["randomization"]["action_latency/steps"] == k
        received = np.array(inner.actions)
        np.testing.assert_array_equal(received[:k], 0.0)
        np.testing.assert_array_equal(received[k:], sent[: 6 - k])
    assert seen == {1, 2, 4}


def test_latency_delays_actions_written_into_a_reused_buffer():
    inner = recorded()
    env = ActionLatency(inner, steps=2)
    env.reset(seed=0)
    buffer = np.zeros(3, dtype=np.float32)
    for t in range(5):
        buffer[:] = 0.1 * (t + 1)
        env.step(buffer)
    np.testing.assert_allclose(np.array(inner.actions)[:, 0], [0.0, 0.0, 0.1, 0.2, 0.3])


def test_latency_that_reaches_the_episode_length_is_refused():
    short = gym.make(HOPPER, max_episode_steps=5)
    assert ActionLatency(short, steps=4).steps == 4
    for steps in (5, 50, Uniform(0.0, 7.0), Choice((1.0, 5.0))):
        with pytest.raises(Sim2RealError, match=r"action_latency\.steps can reach \d+, not less than the episode"):
            ActionLatency(gym.make(HOPPER, max_episode_steps=5), steps=steps)
    with pytest.raises(Sim2RealError, match=r"action_latency\.steps must be one number >= 0"):
        ActionLatency(gym.make(HOPPER), steps=-1)
    with pytest.raises(Sim2RealError, match=r"action_latency\.steps must be one number >= 0"):
        ActionLatency(gym.make(HOPPER), steps=[1, 2])


def test_a_config_with_latency_longer_than_the_episode_fails_before_the_run_folder_is_written(tmp_path):
    data = tiny_config_data(tmp_path / "runs")
    data["source"] = {"reality_gap": {"action_latency": {"steps": 1000}}}
    config = parse_config(data)
    with pytest.raises(Sim2RealError) as error:
        train(config)
    assert "action_latency.steps can reach 1000" in str(error.value)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "runs").exists()


def test_action_scale_multiplies_each_dimension():
    inner = recorded()
    env = ActionScale(inner, scale=[1.0, 0.5, 0.0])
    action = np.array([0.8, -0.6, 0.4], dtype=np.float32)
    run(env, [action] * 5)
    np.testing.assert_allclose(np.array(inner.actions), np.tile([0.8, -0.3, 0.0], (5, 1)), rtol=1e-6)

    inner = recorded()
    env = ActionScale(inner, scale=Uniform(0.5, 1.0), seed=(0, 0))
    for seed in range(3):
        _, info = env.reset(seed=seed)
        inner.actions.clear()
        env.step(action)
        factor = info["randomization"]["action_scale/scale"]
        assert 0.5 <= factor <= 1.0
        np.testing.assert_allclose(inner.actions[0], factor * action, rtol=1e-6)


def test_action_saturation_clips_to_a_fraction_of_the_range_around_its_middle():
    inner = recorded()
    env = ActionSaturation(inner, limit=0.5)
    env.reset(seed=0)
    for action in ([1.0, -1.0, 0.3], [0.7, 0.49, -0.6]):
        env.step(np.asarray(action, dtype=np.float32))
    np.testing.assert_allclose(np.array(inner.actions), [[0.5, -0.5, 0.3], [0.5, 0.49, -0.5]], rtol=1e-6)

    # [0, 2] has its middle at 1: half the range is [0.5, 1.5].
    inner = Recorder(RescaleAction(gym.make(HOPPER), 0.0, 2.0))
    env = ActionSaturation(inner, limit=0.5)
    env.reset(seed=0)
    env.step(np.array([0.0, 2.0, 1.2], dtype=np.float32))
    np.testing.assert_allclose(inner.actions[0], [0.5, 1.5, 1.2], rtol=1e-6)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda env: ObservationNoise(env, std=-0.1), r"observation_noise\.std must be >= 0"),
        (lambda env: ObservationNoise(env, std=Uniform(-0.1, 0.1)), r"observation_noise\.std must be >= 0"),
        (lambda env: ActionNoise(env, std=[0.1, -0.1, 0.1]), r"action_noise\.std must be >= 0"),
        (lambda env: ActionNoise(env, std=Normal(0.0, 0.1, -0.1, 0.2)), r"action_noise\.std must be >= 0"),
        (lambda env: ActionSaturation(env, limit=0.0), r"action_saturation\.limit must be in \(0, 1\]"),
        (lambda env: ActionSaturation(env, limit=1.5), r"action_saturation\.limit must be in \(0, 1\]"),
        (lambda env: ActionSaturation(env, limit=Uniform(0.5, 1.2)), r"action_saturation\.limit must be in"),
        (lambda env: ActionScale(env, scale=1.0, when="interval"), r"action_scale: when must be reset or startup"),
        (lambda env: ActionLag(env, tau=-0.01), r"action_lag\.tau must be >= 0 seconds"),
        (lambda env: ActionLag(env, tau=Uniform(-0.01, 0.02)), r"action_lag\.tau must be >= 0 seconds"),
    ],
)
def test_invalid_wrapper_parameters_are_refused_naming_the_parameter(make, message):
    with pytest.raises(Sim2RealError, match=message):
        make(gym.make(HOPPER))


# ------------------------------------------------------------------------------------------ seeding


def test_wrapper_draws_are_reproducible_per_seed_and_differ_between_envs():
    def noise(seed, reset_seed=0):
        inner = recorded()
        env = ObservationNoise(inner, std=Uniform(0.1, 0.2), seed=seed)
        observations, infos = run(env, 30, seed=reset_seed)
        return np.array(observations) - np.array(inner.observations), [i["randomization"] for i in infos]

    first, again, other_env = noise((0, 0)), noise((0, 0)), noise((0, 1))
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.allclose(first[0], other_env[0])
    assert first[1][0] != other_env[1][0]
    # Each generator is the wrapper's own: noise does not depend on the global numpy generator.
    np.random.seed(123)
    np.testing.assert_array_equal(noise((0, 0))[0], first[0])


# ------------------------------------------------------------------------------------------ from a config


def test_config_reality_gap_builds_every_wrapper_innermost_first_and_reports_their_draws():
    data = {
        "env": HOPPER,
        "algo": {"name": "ppo"},
        "source": {
            "dynamics": [
                {"quantity": "body_mass", "select": "torso", "scale": {"dist": "uniform", "low": 0.9, "high": 1.1}}
            ],
            "reality_gap": {
                "action_latency": {"steps": {"dist": "choice", "values": [0, 1]}},
                "action_noise": {"std": 0.01},
                "action_saturation": {"limit": 0.9},
                "action_lag": {"tau": {"dist": "uniform", "low": 0.0, "high": 0.02}},
                "action_scale": {"scale": {"dist": "uniform", "low": 0.8, "high": 1.0}, "when": "startup"},
                "observation_noise": {"std": {"dist": "log_uniform", "low": 0.001, "high": 0.01}},
                "observation_bias": {"bias": 0.0},
            },
        },
    }
    config = parse_config(data)
    env = make_domain_env(config.env, DomainSpec.from_config(config.source), seed=(0, 0))

    chain = []
    layer = env
    while isinstance(layer, gym.Wrapper):
        chain.append(type(layer))
        layer = layer.env
    ours = [c for c in chain if c.__module__.startswith("sim2real")]
    assert ours == [
        ActionLatency,
        ActionNoise,
        ActionLag,
        ActionSaturation,
        ActionScale,
        ObservationNoise,
        ObservationBias,
        DynamicsWrapper,
    ]
    check_env(env, skip_render_check=True, skip_close_check=True)

    _, info = env.reset(seed=0)
    assert set(info["randomization"]) == {
        "body_mass/torso",
        "action_latency/steps",
        "action_lag/tau",
        "action_scale/scale",
        "observation_noise/std",
    }
    startup_scale = info["randomization"]["action_scale/scale"]
    *_, info = env.step(env.action_space.sample())
    assert info["randomization"]["action_scale/scale"] == startup_scale
    _, info = env.reset()
    assert info["randomization"]["action_scale/scale"] == startup_scale


@pytest.mark.parametrize(
    "term",
    [
        {"observation_noise": {"std": {"dist": "uniform", "low": 0.2, "high": 0.1}}},
        {"action_scale": {"scale": {"dist": "normal", "mean": 1.0, "std": 0.1, "low": 1.2, "high": 0.8}}},
    ],
    ids=["uniform", "normal"],
)
def test_inverted_bounds_in_a_reality_gap_term_are_refused(term):
    with pytest.raises(Sim2RealError, match="inverted bounds"):
        parse_config({"env": HOPPER, "algo": {"name": "ppo"}, "source": {"reality_gap": term}}, "experiment.yaml")
