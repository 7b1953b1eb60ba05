"""Automatic domain randomization: boundary decisions, boundary episodes, training, resume, TensorBoard."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sim2real.callbacks import AdrCallback
from sim2real.config import parse_config
from sim2real.domain import DomainSpec, find_dynamics_wrapper, make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.randomization import AdrRange, RandomChange
from sim2real.runs import RunFolder
from sim2real.training import build_vec_env, load_run_config, train
from tests.conftest import tiny_config_data

IDP = "InvertedDoublePendulum-v5"
POLE = "body_mass/pole"
ADR_MASS = {"quantity": "body_mass", "select": "pole", "scale": {"dist": "adr", "low": 0.5, "high": 1.5}}
# Every boundary episode's return (IDP: about 9 per step, never negative) is above high_threshold: always widen.
ALWAYS_WIDEN = {"low_threshold": -2e9, "high_threshold": -1e9, "step": 0.01, "episodes": 1}


pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def callback(bounds: list[float], limits: tuple[float, float, float] = (0.5, 1.5, 1.0), **settings: Any) -> AdrCallback:
    """An ADR callback for one parameter ``p`` whose range is ``bounds`` now."""
    kwargs = {"low_threshold": 10.0, "high_threshold": 100.0, "step": 0.1, "episodes": 2, **settings}
    adr = AdrCallback(**kwargs)
    adr.limits = {"p": limits}
    adr.bounds = {"p": list(bounds)}
    return adr


def adr_env(bounds: list[float] | None = None, probability: float = 1.0, **change: Any):
    env = make_domain_env(
        IDP, [RandomChange("body_mass", "scale", AdrRange(0.5, 1.5, 1.0), select="pole", **change)], seed=(0, 0)
    )
    wrapper = find_dynamics_wrapper(env)
    wrapper.randomizer.adr_boundary_probability = probability
    if bounds is not None:
        wrapper.set_adr_bounds({POLE: bounds})
    return env, wrapper


def pole_scale(wrapper) -> float:
    return wrapper.dynamics.get("body_mass", "pole")["pole"] / wrapper.dynamics.nominal("body_mass")["pole"]


# ------------------------------------------------------------------------------------------ decisions


def test_a_boundary_widens_by_step_when_its_return_reaches_the_high_threshold():
    adr = callback([1.0, 1.0])
    assert adr._decide("p", "low", 100.0)
    assert adr.bounds["p"] == pytest.approx([0.9, 1.0])
    assert adr._decide("p", "high", 250.0)
    assert adr.bounds["p"] == pytest.approx([0.9, 1.1])


def test_a_boundary_narrows_by_step_when_its_return_falls_to_the_low_threshold():
    adr = callback([0.7, 1.3])
    assert adr._decide("p", "low", 10.0)
    assert adr.bounds["p"] == pytest.approx([0.8, 1.3])
    assert adr._decide("p", "high", -50.0)
    assert adr.bounds["p"] == pytest.approx([0.8, 1.2])


def test_a_return_between_the_thresholds_changes_nothing():
    adr = callback([0.7, 1.3])
    assert not adr._decide("p", "low", 50.0)
    assert not adr._decide("p", "high", 99.9)
    assert adr.bounds["p"] == [0.7, 1.3]


def test_widening_stops_at_the_limits_and_narrowing_at_the_start():
    adr = callback([0.55, 1.45])
    assert adr._decide("p", "low", 1e6) and adr.bounds["p"] == pytest.approx([0.5, 1.45])
    assert adr._decide("p", "high", 1e6) and adr.bounds["p"] == pytest.approx([0.5, 1.5])
    assert not adr._decide("p", "low", 1e6) and not adr._decide("p", "high", 1e6)
    assert adr.bounds["p"] == pytest.approx([0.5, 1.5])

    adr = callback([0.95, 1.05])
    assert adr._decide("p", "low", -1e6) and adr.bounds["p"] == pytest.approx([1.0, 1.05])
    assert adr._decide("p", "high", -1e6) and adr.bounds["p"] == pytest.approx([1.0, 1.0])
    assert not adr._decide("p", "low", -1e6) and not adr._decide("p", "high", -1e6)

    # A start that is not the middle (an offset starting at 0 in [0, 2]) bounds narrowing on its own side.
    adr = callback([0.0, 0.05], limits=(0.0, 2.0, 0.0))
    assert not adr._decide("p", "low", 1e6), "already at its limit"
    assert adr._decide("p", "high", -1e6) and adr.bounds["p"] == pytest.approx([0.0, 0.0])


class FakeVecEnv:
    """Records the ranges the callback sends to the envs."""

    def __init__(self) -> None:
        self.sent: list[dict[str, list[float]]] = []

    def env_method(self, name: str, bounds: dict[str, list[float]]) -> None:
        assert name == "set_adr_bounds"
        self.sent.append({k: list(v) for k, v in bounds.items()})


def step_with(adr: AdrCallback, *episodes: tuple[bool, dict[str, Any]]) -> None:
    adr.locals = {"dones": [done for done, _ in episodes], "infos": [info for _, info in episodes]}
    adr._on_step()


def test_decisions_take_the_mean_of_episodes_boundary_returns_and_reach_every_env():
    adr = callback([1.0, 1.0], episodes=3)
    env = FakeVecEnv()
    adr.model = SimpleNamespace(get_env=lambda: env)  # type: ignore[assignment]

    def ended(side: str, ret: float) -> tuple[bool, dict[str, Any]]:
        return True, {"adr_boundary": ("p", side), "episode": {"r": ret, "l": 10}}

    # Unfinished steps, episodes at no boundary and other parameters' boundaries do not count.
    step_with(adr, (False, {"adr_boundary": ("p", "low")}), (True, {"episode": {"r": 1e6, "l": 10}}))
    step_with(adr, (True, {"adr_boundary": ("other", "low"), "episode": {"r": 1e6, "l": 10}}))
    step_with(adr, ended("low", 150.0), ended("high", 0.0))
    step_with(adr, ended("low", 150.0))
    assert adr.bounds["p"] == [1.0, 1.0] and env.sent == [], "no decision before 3 boundary episodes"
    # Mean of 150, 150, 0 is 100 = high_threshold: widen.
    step_with(adr, ended("low", 0.0))
    assert adr.bounds["p"] == pytest.approx([0.9, 1.0])
    assert env.sent == [{"p": pytest.approx([0.9, 1.0])}]
    assert "p/low" not in adr.returns, "a decision starts a fresh batch"
    assert adr.returns["p/high"] == [0.0]
    assert adr.state() == {"bounds": {"p": pytest.approx([0.9, 1.0])}, "returns": {"p/high": [0.0]}}


# ------------------------------------------------------------------------------------------ boundary episodes


def test_without_a_curriculum_an_adr_parameter_stays_at_its_start():
    env, wrapper = adr_env(probability=0.5)
    assert wrapper.adr_bounds() == {POLE: [1.0, 1.0]}
    assert wrapper.adr_limits() == {POLE: (0.5, 1.5, 1.0)}
    for seed in range(10):
        _, info = env.reset(seed=seed)
        assert info["randomization"][POLE] == 1.0
        assert pole_scale(wrapper) == pytest.approx(1.0)


def test_boundary_episodes_pin_one_end_and_the_others_draw_inside_the_range():
    env, wrapper = adr_env([0.7, 1.2], probability=0.5)
    pinned = {"low": 0, "high": 0}
    inside = []
    for seed in range(400):
        _, info = env.reset(seed=seed) if seed == 0 else env.reset()
        value = info["randomization"][POLE]
        assert pole_scale(wrapper) == pytest.approx(value), "the model runs with the reported value"
        *_, step_info = env.step(np.zeros(1, dtype=np.float32))
        assert step_info.get("adr_boundary") == info.get("adr_boundary"), "the episode keeps its tag"
        if "adr_boundary" in info:
            parameter, side = info["adr_boundary"]
            assert parameter == POLE
            assert value == {"low": 0.7, "high": 1.2}[side]
            pinned[side] += 1
        else:
            inside.append(value)
    assert 0.4 < (pinned["low"] + pinned["high"]) / 400 < 0.6, "boundary_probability of the resets"
    assert 0.4 < pinned["low"] / (pinned["low"] + pinned["high"]) < 0.6, "either end as often"
    assert min(inside) >= 0.7 and max(inside) <= 1.2
    assert np.mean(inside) == pytest.approx(0.95, abs=0.03)


@pytest.mark.parametrize("when", ["startup", "interval"])
def test_adr_parameters_are_drawn_only_at_reset(when: str) -> None:
    # A boundary episode is tagged at reset; a draw at startup or mid-episode would make the tag lie.
    with pytest.raises(Sim2RealError, match="dist: adr is drawn at every reset"):
        adr_env([0.6, 1.4], when=when, every=2 if when == "interval" else None)


# ------------------------------------------------------------------------------------------ config


def test_adr_config_defaults_and_validation():
    def source(dynamics: list[dict[str, Any]], adr: dict[str, Any] | None) -> dict[str, Any]:
        section = {"dynamics": dynamics} if adr is None else {"dynamics": dynamics, "adr": adr}
        return {"env": IDP, "algo": {"name": "ppo"}, "source": section}

    thresholds = {"low_threshold": 0, "high_threshold": 100}
    offset = {"quantity": "geom_friction", "select": "cpole", "offset": {"dist": "adr", "low": -0.5, "high": 0.5}}
    config = parse_config(source([ADR_MASS, offset], {**thresholds, "boundary_probability": 0.25}))
    changes = DomainSpec.from_config(config.source).changes
    assert changes[0].distribution == AdrRange(0.5, 1.5, 1.0), "a scale starts at 1"
    assert changes[1].distribution == AdrRange(-0.5, 0.5, 0.0), "an offset starts at 0"
    assert DomainSpec.from_config(config.source).adr_boundary_probability == 0.25
    assert config.source.adr.step == 0.05 and config.source.adr.episodes == 10

    errors = {
        "source: dist: adr parameters need an 'adr' section": source([ADR_MASS], None),
        "source: 'adr' is set but no dynamics change uses dist: adr": source(
            [{**ADR_MASS, "scale": {"dist": "uniform", "low": 0.5, "high": 1.5}}], thresholds
        ),
        "source.adr: low_threshold 100.0 must be below high_threshold 100.0": source(
            [ADR_MASS], {"low_threshold": 100, "high_threshold": 100}
        ),
        "source.dynamics.0: scale: adr start 2.0 is outside [low, high]": source(
            [{**ADR_MASS, "scale": {**ADR_MASS["scale"], "start": 2.0}}], thresholds
        ),
        "source.dynamics.0: set: an adr distribution of absolute values needs 'start'": source(
            [{"quantity": "body_mass", "select": "pole", "set": {"dist": "adr", "low": 1, "high": 5}}], thresholds
        ),
        "source.adr.step: Input should be greater than 0": source([ADR_MASS], {**thresholds, "step": 0}),
    }
    for message, data in errors.items():
        with pytest.raises(Sim2RealError) as error:
            parse_config(data, "experiment.yaml")
        assert str(error.value).startswith("experiment.yaml: source") and message in str(error.value), message
        assert "\n" not in str(error.value)


def test_an_unknown_key_in_a_distribution_lists_that_distributions_keys():
    change = {
        "quantity": "body_mass",
        "select": "pole",
        "scale": {"dist": "uniform", "low": 0.5, "high": 1.5, "mean": 1},
    }
    with pytest.raises(Sim2RealError) as error:
        parse_config({"env": IDP, "algo": {"name": "ppo"}, "source": {"dynamics": [change]}}, "experiment.yaml")
    assert "source.dynamics.0.scale.mean: unknown key (allowed: dist, high, low)" in str(error.value)


# ------------------------------------------------------------------------------------------ training


def tiny_adr_config(root: Path, **train_settings: Any):
    data = tiny_config_data(root, **train_settings)
    data["source"] = {
        "dynamics": [
            ADR_MASS,
            {"quantity": "actuator_gear", "select": "all", "scale": {"dist": "uniform", "low": 0.8, "high": 1.2}},
        ],
        "adr": ALWAYS_WIDEN,
    }
    return parse_config(data)


def read_adr(checkpoint: Path) -> list[float]:
    return json.loads((checkpoint / "adr.json").read_text())["bounds"][POLE]


def events(run_dir: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    accumulator.Reload()
    return accumulator


@pytest.mark.slow
def test_training_widens_the_ranges_checkpoints_them_and_a_resume_continues_from_them(tmp_path):
    config = tiny_adr_config(tmp_path / "runs", total_timesteps=512)
    first = train(config)
    checkpoints = [c.path for c in RunFolder(first.run_dir).checkpoints()]
    assert all((c / "adr.json").is_file() for c in checkpoints)
    low, high = read_adr(checkpoints[-1])
    assert 0.5 <= low < 0.9 and 1.1 < high <= 1.5, "many boundary episodes, each widening its end"
    older = read_adr(checkpoints[0])
    assert low <= older[0] and high >= older[1], "widening only"

    tb = events(first.run_dir)
    lows = [e.value for e in tb.Scalars(f"adr/{POLE}/low")]
    highs = [e.value for e in tb.Scalars(f"adr/{POLE}/high")]
    assert lows == sorted(lows, reverse=True) and highs == sorted(highs)
    assert lows[-1] == pytest.approx(low) and highs[-1] == pytest.approx(high)

    # 128 more steps from a fresh start could not reach the saved range: the resumed run starts from it.
    resumed = train(load_run_config(first.run_dir, ["train.total_timesteps=640"]), resume=first.run_dir)
    assert resumed.num_timesteps == 640
    after = read_adr(RunFolder(first.run_dir).checkpoints()[-1].path)
    assert after[0] <= low and after[1] >= high
    assert after[1] - after[0] > high - low, "and keeps widening"


class BoundaryEpisodes(BaseCallback):
    """Keeps (adr_boundary, value) of every finished boundary episode."""

    def __init__(self) -> None:
        super().__init__()
        self.episodes: list[tuple[tuple[str, str], float]] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "adr_boundary" in info:
                self.episodes.append((info["adr_boundary"], info["randomization"][POLE]))
        return True


@pytest.mark.slow
def test_every_boundary_episode_of_a_resumed_curriculum_runs_at_its_boundary(tmp_path):
    data = tiny_config_data(tmp_path / "runs", normalize=None)
    data["source"] = {"dynamics": [ADR_MASS], "adr": {**ALWAYS_WIDEN, "episodes": 1000, "boundary_probability": 1.0}}
    venv = build_vec_env(parse_config(data))
    model = PPO("MlpPolicy", venv, n_steps=32, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0)
    adr = AdrCallback(-2e9, -1e9, 0.01, 1000, state={"bounds": {POLE: [0.7, 1.3]}, "returns": {}})
    adr.prepare(venv)  # as train() does: learn() resets the envs before any callback runs
    seen = BoundaryEpisodes()
    model.learn(64, callback=[adr, seen])
    assert len(seen.episodes) >= 4
    for (_, side), value in seen.episodes:
        assert value == {"low": 0.7, "high": 1.3}[side]


@pytest.mark.slow
def test_a_randomized_source_logs_histograms_and_means_of_its_draws(tmp_path):
    data = tiny_config_data(tmp_path / "runs")
    data["source"] = {
        "dynamics": [
            {"quantity": "body_mass", "select": "pole", "scale": {"dist": "uniform", "low": 0.5, "high": 2.0}}
        ],
        "reality_gap": {"action_scale": {"scale": {"dist": "uniform", "low": 0.8, "high": 0.9}}},
    }
    result = train(parse_config(data))
    tb = events(result.run_dir)
    histograms, scalars = set(tb.Tags()["histograms"]), set(tb.Tags()["scalars"])
    assert {"randomization/body_mass/pole", "randomization/action_scale/scale"} <= histograms
    assert {"randomization/body_mass/pole/mean", "randomization/action_scale/scale/mean"} <= scalars

    for tag, (low, high) in {"body_mass/pole": (0.5, 2.0), "action_scale/scale": (0.8, 0.9)}.items():
        hists = tb.Histograms(f"randomization/{tag}")
        means = tb.Scalars(f"randomization/{tag}/mean")
        assert [h.step for h in hists] == [m.step for m in means], "one histogram and one mean per rollout"
        assert all(h.step % 128 == 0 and 0 < h.step <= result.num_timesteps for h in hists)
        episodes = sum(h.histogram_value.num for h in hists)
        assert episodes >= 10, "one sample per finished episode"
        for h, m in zip(hists, means, strict=True):
            value = h.histogram_value
            assert low <= value.min <= value.max <= high
            assert m.value == pytest.approx(value.sum / value.num, rel=1e-5)
        assert hists[0].histogram_value.min < hists[0].histogram_value.max, "the draws vary"
    # How each third of the mass's range scores: the episodes' mean return there, every rollout with one.
    regions = {f"randomization/body_mass/pole/return_{r}" for r in ("low", "middle", "high")}
    assert regions <= scalars
    assert all(v.value > 0 for tag in regions for v in tb.Scalars(tag))  # IDP's returns: about 9 a step
