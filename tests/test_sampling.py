"""Sampling the randomization by what recent episodes showed (steps, failures): where draws go, the floor every
point keeps, reproducibility, training and evaluation variants, and bad settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from sim2real.config import DynamicsChange, parse_config
from sim2real.domain import DomainSpec, find_dynamics_wrapper, make_domain_env
from sim2real.domain import change_of as _change_of
from sim2real.sampling import Sampler, SamplingSpec
from sim2real.training import build_vec_env
from tests.conftest import assert_one_line_error, tiny_config_data

IDP = "InvertedDoublePendulum-v5"
MASS = {"quantity": "body_mass", "select": "pole", "scale": {"dist": "uniform", "low": 0.5, "high": 1.5}}

pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def change_of(data: dict[str, Any]) -> Any:
    return _change_of(DynamicsChange.model_validate(data))


def _fed(mode: str, **settings: Any) -> Sampler:
    """A one-dimensional sampler whose memory says: below u = 0.5 episodes last 10 steps and return 10, above
    they last 1,000 and return 9,000 (IDP's failing corner against the rest)."""
    sampler = Sampler(SamplingSpec(mode=mode, **settings), 1)  # type: ignore[arg-type]
    for u in np.linspace(0.01, 0.99, 100):
        failing = u < 0.5
        sampler.episode_ended(np.array([u]), 10.0 if failing else 9000.0, 10 if failing else 1000)
    return sampler


def _share_low(sampler: Sampler, draws: int = 2000) -> float:
    rng, out = np.random.default_rng(0), np.zeros(1)
    return float(np.mean([sampler.draw(rng, out)[0] < 0.5 for _ in range(draws)]))


@pytest.mark.parametrize("mode", ["steps", "failures"])
def test_draws_go_where_episodes_fail_and_every_point_keeps_the_floor(mode: str) -> None:
    assert 0.45 < _share_low(_fed("uniform")) < 0.55
    # Kept at 1 below, 0.25 + 0.75 x 0.01 above: 80% of the draws in the failing half.
    assert _share_low(_fed(mode)) > 0.75
    # The floor: the working half keeps at least a quarter of its own density (half the draws, uniformly).
    assert 1 - _share_low(_fed(mode, floor=0.25)) > 0.25 * 0.5


def test_steps_gives_each_region_its_share_of_the_steps() -> None:
    """Draws kept in inverse proportion to episode length: the failing half's steps approach its probability
    (uniform draws give it 1% of the steps: 10 against 1,000 per episode)."""
    sampler = _fed("steps", floor=1e-6, tries=1024)
    low = _share_low(sampler)
    steps_low = low * 10 / (low * 10 + (1 - low) * 1000)
    assert 0.35 < steps_low < 0.65


def test_an_empty_memory_draws_uniformly_and_the_same_seed_draws_the_same() -> None:
    sampler = Sampler(SamplingSpec(mode="failures"), 2)
    first = sampler.draw(np.random.default_rng(1), np.zeros(2)).copy()
    np.testing.assert_array_equal(first, np.random.default_rng(1).random(2))
    a, b = _fed("failures"), _fed("failures")
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert [a.draw(rng_a, np.zeros(1))[0] for _ in range(20)] == [b.draw(rng_b, np.zeros(1))[0] for _ in range(20)]


def _domain(tmp_path: Path, sampling: dict[str, Any] | None) -> Any:
    data = tiny_config_data(tmp_path)
    data["source"] = {"dynamics": [MASS], **({"sampling": sampling} if sampling else {})}
    return parse_config(data)


def test_training_envs_sample_and_evaluation_envs_draw_as_written(tmp_path: Path) -> None:
    config = _domain(tmp_path, {"mode": "failures"})
    venv = build_vec_env(config)
    try:
        wrappers = [find_dynamics_wrapper(env) for env in venv.envs]  # type: ignore[attr-defined]
        assert all(w is not None and w.randomizer is not None and w.randomizer.sampler for w in wrappers)
    finally:
        venv.close()
    env = make_domain_env(IDP, DomainSpec.from_config(config.source), seed=(0, 0))
    wrapper = find_dynamics_wrapper(env)
    assert wrapper is not None and wrapper.randomizer is not None and wrapper.randomizer.sampler is None
    trained = make_domain_env(IDP, DomainSpec.from_config(config.source, training=True), seed=(0, 0))
    check_env(trained, skip_render_check=True)
    randomizer = find_dynamics_wrapper(trained).randomizer  # type: ignore[union-attr]
    assert randomizer is not None and randomizer.sampler is not None
    trained.reset(seed=0)
    for _ in range(300):  # random actions fall within a few steps: the sampler remembers each episode
        if any(trained.step(trained.action_space.sample())[2:4]):
            trained.reset()
    assert len(randomizer.sampler._draws) >= 10


@pytest.mark.parametrize(
    ("sampling", "needle"),
    [
        ({"mode": "everywhere"}, "sampling.mode"),
        ({"mode": "failures", "floor": 0}, "sampling.floor"),
        ({"mode": "failures", "memory": 4, "neighbours": 5}, "neighbours 5 is more than the memory"),
    ],
)
def test_a_bad_sampling_setting_is_one_line(tmp_path: Path, cli: Any, sampling: dict[str, Any], needle: str) -> None:
    import yaml

    data = tiny_config_data(tmp_path)
    data["source"] = {"dynamics": [MASS], "sampling": sampling}
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(path)), "bad.yaml", needle)
    assert not (tmp_path / "runs").exists()


def test_sampling_a_quantity_not_drawn_at_reset_is_refused(tmp_path: Path, cli: Any) -> None:
    import yaml

    data = tiny_config_data(tmp_path)
    data["source"] = {"dynamics": [MASS], "sampling": {"mode": "steps", "quantities": ["joint_damping"]}}
    path = tmp_path / "other.yaml"
    path.write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(path)), "other.yaml", "sampling.quantities: joint_damping is not drawn")


def test_only_the_quantities_named_are_weighted() -> None:
    gear = {"quantity": "actuator_gear", "select": "all", "scale": {"dist": "uniform", "low": 0.5, "high": 1.0}}
    spec = DomainSpec(changes=(change_of(MASS), change_of(gear)),
                      sampling=SamplingSpec(mode="steps", quantities=("actuator_gear",)))  # fmt: skip
    randomizer = find_dynamics_wrapper(make_domain_env(IDP, spec, seed=(0, 0))).randomizer  # type: ignore[union-attr]
    assert randomizer is not None and randomizer.sampler is not None
    assert list(randomizer.sampler.columns) == [1]


def test_sampling_without_a_reset_draw_is_refused(tmp_path: Path, cli: Any) -> None:
    import yaml

    data = tiny_config_data(tmp_path)
    data["source"] = {"dynamics": [{**MASS, "scale": 1.2}], "sampling": {"mode": "steps"}}
    path = tmp_path / "fixed.yaml"
    path.write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(path)), "fixed.yaml", "none is")


def test_a_time_limit_outside_the_wrapper_ends_the_episode_the_sampler_remembers() -> None:
    """The Sim2Real/ ids register their time limit outside the dynamics wrapper: an episode cut there is still
    one the sampler learns from. A seeded reset forgets them all (the same seed draws the same)."""
    import gymnasium as gym

    spec = DomainSpec(changes=(change_of(MASS),), sampling=SamplingSpec(mode="steps"))
    env = make_domain_env("Sim2Real/InvertedDoublePendulum-v0", spec, seed=(0, 0), max_episode_steps=5)
    assert isinstance(env, gym.Wrapper)
    randomizer = find_dynamics_wrapper(env).randomizer  # type: ignore[union-attr]
    assert randomizer is not None and randomizer.sampler is not None
    env.reset(seed=0)
    for _ in range(4):
        while not any(env.step(np.zeros(env.action_space.shape))[2:4]):
            pass
        env.reset()
    assert len(randomizer.sampler._draws) == 4
    env.reset(seed=0)
    assert len(randomizer.sampler._draws) == 0


def test_an_interval_term_is_drawn_uniformly_beside_the_weighted_reset_terms() -> None:
    interval = {**MASS, "select": "pole2", "when": "interval", "every": 10}
    spec = DomainSpec(changes=(change_of(MASS), change_of(interval)), sampling=SamplingSpec(mode="failures"))
    randomizer = find_dynamics_wrapper(make_domain_env(IDP, spec, seed=(0, 0))).randomizer  # type: ignore[union-attr]
    assert randomizer is not None and randomizer.sampler is not None
    assert list(randomizer.sampler.columns) == [0]  # the pole's mass only
    assert set(randomizer.reset_shares()) == {"body_mass/pole"}
