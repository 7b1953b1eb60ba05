"""Policies that see their recent past (``history``): the wrapper's layout, the config through every path a
policy acts on (training, the transfer curve, evaluation, sweeps, plain stable-baselines3), and transfer from a
memoryless source."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from gymnasium.utils.env_checker import check_env
from rich.console import Console
from stable_baselines3 import PPO, SAC

from sim2real.config import Domain, HistoryConfig, parse_config
from sim2real.domain import make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.models import build_model
from sim2real.runs import RunFolder
from sim2real.training import build_vec_env, normalize_env, train
from sim2real.transfer import read_source, start_transfer
from sim2real.wrappers import ObservationHistory
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data

IDP = "InvertedDoublePendulum-v5"
QUIET = Console(quiet=True)
ALGORITHMS = {"ppo": PPO, "sac": SAC}

pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def test_the_observation_is_followed_by_the_past_observations_and_actions_newest_first() -> None:
    env = ObservationHistory(gym.make(IDP), steps=2)
    assert env.observation_space.shape == (3 * 9 + 2 * 1,)
    first, _ = env.reset(seed=0)
    current = first[:9]
    # Before the episode has a past: the first observation (at rest) and the midpoint action (no command).
    assert np.array_equal(first, np.concatenate([current, current, current, [0.0, 0.0]]))
    second, *_ = env.step(np.array([0.5]))
    third, *_ = env.step(np.array([-0.25]))
    assert np.array_equal(third[9:18], second[:9]) and np.array_equal(third[18:27], current)
    assert np.array_equal(third[27:], [-0.25, 0.5])
    again, _ = env.reset(seed=1)
    assert np.array_equal(again[9:18], again[:9]) and np.array_equal(again[27:], [0.0, 0.0])  # a new episode


def test_the_history_env_passes_check_env_and_its_bounds_hold_every_part() -> None:
    env = ObservationHistory(gym.make("Hopper-v5"), steps=3)
    check_env(env, skip_render_check=True)
    space = env.observation_space
    assert space.shape == (4 * 11 + 3 * 3,) and space.dtype == np.float64
    assert np.array_equal(space.low[-9:], -np.ones(9)) and np.array_equal(space.high[-9:], np.ones(9))
    observations_only = ObservationHistory(gym.make(IDP), steps=3, actions=False)
    assert observations_only.observation_space.shape == (4 * 9,)


def test_the_history_holds_what_the_policy_saw_the_noisy_observations() -> None:
    """Outside the reality-gap wrappers: the past is the observations the policy was given, noise included."""
    domain = Domain.model_validate({"reality_gap": {"observation_noise": {"std": 0.5}}})
    env = make_domain_env(IDP, domain, seed=0, history=HistoryConfig(steps=1))
    assert isinstance(env, ObservationHistory)
    first, _ = env.reset(seed=0)
    second, *_ = env.step(np.zeros(1))
    assert np.array_equal(second[9:18], first[:9])  # the noisy observation, not a fresh clean one
    clean = np.asarray(env.unwrapped._get_obs())  # type: ignore[attr-defined]
    assert not np.allclose(second[:9], clean)


@pytest.mark.parametrize(("history", "needle"), [
    ({"steps": 0}, "history.steps"),
    ({"steps": 1000}, "history.steps is 1000, not less than the episode (1000 steps)"),
    ({"steps": 2, "frames": 3}, "history.frames"),
])  # fmt: skip
def test_a_history_of_zero_steps_or_as_long_as_an_episode_is_refused_before_any_folder(
    tmp_path: Path, cli: Callable[..., CliResult], history: dict[str, Any], needle: str
) -> None:
    data = tiny_config_data(tmp_path / "runs")
    data["history"] = history
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(tmp_path / "config.yaml")), needle)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def history_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("history")
    data = tiny_config_data(root)
    data["history"] = {"steps": 2}
    return train(parse_config(data), console=QUIET).run_dir


def test_a_history_policy_trains_evaluates_and_sweeps_and_loads_in_plain_sb3(
    history_run: Path, cli: Callable[..., CliResult], tmp_path: Path
) -> None:
    model = PPO.load(history_run / "model.zip", device="cpu")
    assert model.observation_space.shape == (29,)
    assert cli("evaluate", str(history_run), "--episodes", "2").returncode == 0
    out = tmp_path / "sweep"
    swept = cli("sweep", str(history_run), "--param", "{quantity: body_mass, select: all, scale: [1.0, 2.0], points: 2}",
                "--episodes", "1", "--out", str(out))  # fmt: skip
    assert swept.returncode == 0, swept.stderr
    env = make_domain_env(IDP, (), history=HistoryConfig(steps=2))
    observation, _ = env.reset(seed=0)
    model.predict(observation, deterministic=True)  # the env a user builds from the config feeds the policy


@pytest.mark.parametrize("algo", ["ppo", "sac"])
def test_a_memoryless_source_transfers_to_a_history_policy_that_acts_as_it_did(tmp_path: Path, algo: str) -> None:
    """The source's input columns go to the current observation, zeros to the past, and its statistics to every
    observation in the history: at step 0 the target computes what the source did, on any history."""
    source = train(parse_config(tiny_config_data(tmp_path / "source", algo=algo)), console=QUIET).run_dir
    data = tiny_config_data(tmp_path / "target", algo=algo)
    data["history"] = {"steps": 2}
    data["transfer"] = {"method": "finetune", "source": str(source), "recipe": "plain"}
    config = parse_config(data)
    assert config.transfer is not None
    model = build_model(config, normalize_env(config, build_vec_env(config)))
    (tmp_path / "run").mkdir()
    start_transfer(model, config.transfer, read_source(config, source), RunFolder(tmp_path / "run"), config.history)
    first = "mlp_extractor.policy_net.0.weight" if algo == "ppo" else "actor.latent_pi.0.weight"
    original = ALGORITHMS[algo].load(source / "model.zip", device="cpu")
    weight = model.policy.state_dict()[first]
    assert torch.equal(weight[:, :9], original.policy.state_dict()[first]) and not weight[:, 9:].any()
    saved = json.loads((source / "vecnormalize.json").read_text())["obs_rms"]
    rms = model.get_vec_normalize_env().obs_rms
    assert np.allclose(rms.mean[:9], saved["mean"]) and np.allclose(rms.mean[18:27], saved["mean"])
    rng = np.random.default_rng(0)
    raw = rng.normal(saved["mean"], np.sqrt(saved["var"]), size=(32, 9))
    past = rng.normal(size=(32, 20))  # any past at all

    def acts(policy: Any, obs: np.ndarray, mean: Any, var: Any) -> np.ndarray:
        normalized = np.clip((obs - np.asarray(mean)) / np.sqrt(np.asarray(var) + 1e-8), -10, 10)
        return policy.predict(normalized.astype(np.float32), deterministic=True)[0]

    before = acts(original, raw, saved["mean"], saved["var"])
    after = acts(model, np.hstack([raw, past]), rms.mean, rms.var)
    assert np.allclose(before, after, atol=1e-5)


def test_a_history_policy_records_what_identification_replays(history_run: Path, tmp_path: Path) -> None:
    """The recording holds the env's own observation (the policy acts on its history), so it identifies like
    any other; sensor noise would have to be on the policy's past too and is refused for it, not for random
    actions."""
    from sim2real.config import IdentifyParam, load_config
    from sim2real.identification import identify, record

    config = load_config(history_run / "config.yaml").model_copy(update={"history": None})  # e.g. a study's
    with pytest.raises(Sim2RealError, match="sees its past"):
        record(config, model_path=history_run, domain="heavy", episodes=1, noise=0.01)
    record(config, model_path=None, domain="heavy", episodes=1, noise=0.01)  # random actions: no past to keep
    recording = record(config, model_path=history_run, domain="heavy", episodes=10, deterministic=False)
    assert recording.observation is not None and recording.observation.shape[1] == 9
    recording.write(tmp_path / "rec.npz")
    param = IdentifyParam(quantity="body_mass", select="all", scale=[0.5, 3.0])
    result = identify(tmp_path / "rec.npz", config, [param], max_generations=100)
    assert result.fit.estimates[0].value == pytest.approx(2.0, rel=0.02)


def test_a_study_lists_a_history_source_beside_memoryless_ones(tmp_path: Path) -> None:
    """The sweep gives each source the input it was trained on, and transfer runs from the history source keep
    its history; the report compares them like any sources."""
    from sim2real.cli import main
    from tests.test_study import write_study

    path = write_study(tmp_path, methods=["finetune"], seeds=1)
    (tmp_path / "history.yaml").write_text(yaml.safe_dump({"extends": "randomized.yaml", "history": {"steps": 2}}))
    data = yaml.safe_load(path.read_text())
    data["sources"]["history"] = {"config": "history.yaml"}
    path.write_text(yaml.safe_dump(data))
    assert main(["study", str(path), "--workers", "1"]) == 0
    report = json.loads((tmp_path / "study" / "report" / "study.json").read_text())
    (swept,) = report["sweeps"]
    assert set(swept["grid_iqm"]) == {"nominal", "randomized", "history"}
    run = next((tmp_path / "study" / "runs").rglob("history/heavy/finetune/seed_0"))
    assert yaml.safe_load((run / "config.yaml").read_text())["history"] == {"steps": 2, "actions": True}


def test_freezing_the_layer_that_takes_the_history_is_refused(tmp_path: Path) -> None:
    """Frozen, the widened input layer's weights on the past would stay zero for good: one line, nothing run."""
    source = train(parse_config(tiny_config_data(tmp_path / "source")), console=QUIET).run_dir
    data = tiny_config_data(tmp_path / "target")
    data["history"] = {"steps": 2}
    data["transfer"] = {"method": "freeze", "source": str(source), "recipe": "plain"}
    with pytest.raises(Sim2RealError, match=r"transfer.freeze: .*policy_net.0.* takes the history"):
        train(parse_config(data), console=QUIET)
    assert not (tmp_path / "target").exists()
