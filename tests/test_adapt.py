"""``sim2real adapt``: the loop records, identifies, trains in simulation, chooses its start and fine-tunes on the
target within a budget of target steps; a stopped loop resumes without repeating a stage; bad input is one line
and writes nothing.

A tiny source is trained once per module on InvertedDoublePendulum; its target doubles every mass, which a
recording of a few steps identifies exactly.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rich.console import Console
from stable_baselines3 import PPO

from sim2real.adapt import adapt
from sim2real.config import parse_config
from sim2real.identification import Trajectories, read_trajectories
from sim2real.runs import AdaptFolder, RunFolder
from sim2real.training import train
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data

QUIET = Console(quiet=True)
ADAPT = {"budget": 6000, "record_episodes": 3, "max_generations": 100, "simulation_steps": 256,
         "params": [{"quantity": "body_mass", "select": "all", "scale": [0.5, 3.0]}]}  # fmt: skip


def config_data(root: Path, **adapt_settings: Any) -> dict[str, Any]:
    data = tiny_config_data(root, total_timesteps=512)
    data["adapt"] = {**ADAPT, **adapt_settings}
    data["transfer"] = {"eval_every": 256, "eval_episodes": 2}
    return data


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(parse_config(tiny_config_data(tmp_path_factory.mktemp("source"))), console=QUIET).run_dir


@pytest.fixture(scope="module")
def loop(tmp_path_factory: pytest.TempPathFactory, source: Path) -> AdaptFolder:
    root = tmp_path_factory.mktemp("loop")
    adapt(parse_config(config_data(root)), source, console=QUIET)
    return AdaptFolder(AdaptFolder.default(parse_config(config_data(root)), "heavy", 0))


def test_the_loop_runs_every_stage_within_its_budget_of_target_steps(loop: AdaptFolder) -> None:
    state = json.loads(loop.state.read_text())
    stages = state["stages"]
    assert list(stages) == ["record", "identify", "simulate", "choose", "finetune"]
    assert stages["identify"]["estimates"]["body_mass/all"] == pytest.approx(2.0, rel=0.02)
    assert stages["simulate"]["simulation_steps"] == 256 and stages["simulate"]["target_steps"] == 0
    assert stages["choose"]["chosen"] in ("simulation", "source")
    spent = sum(stage.get("target_steps", 0) for stage in stages.values())
    assert spent == state["final"]["target_steps"] <= 6000
    # What a robot logs: observations and commands, not MuJoCo's state.
    assert not read_trajectories(loop.recording).has_states
    points = json.loads(loop.curve_file.read_text())["points"]
    assert [p["stage"] for p in points][:2] == ["record", "choose"] and points[-1]["stage"] == "finetune"
    steps = [p["target_steps"] for p in points]
    assert steps == sorted(steps) and steps[0] == stages["record"]["target_steps"]
    assert points[-1]["mean_reward"] == pytest.approx(state["final"]["return"])
    PPO.load(RunFolder(loop.target).model, device="cpu")  # plain stable-baselines3 loads the policy handed over
    assert (loop.path / state["final"]["policy"]).resolve() == loop.target.resolve()
    assert not any(Path(p).is_absolute() for p in (state["source"], state["final"]["policy"]))


def test_the_loop_folder_is_a_transfer_run_of_the_policy_it_hands_over(loop: AdaptFolder) -> None:
    """evaluate, export, compare and the scorecard take the loop as any transfer run: method adapt, from the
    source's experiment, its curve in target steps across the stages."""
    from sim2real.api import evaluate
    from sim2real.evaluation.scorecard import read_run

    run = read_run(loop.path)
    assert (run.method, run.source, run.target, run.seed) == ("adapt", "tiny", "heavy", 0)
    assert list(run.curve.steps) == [p["target_steps"] for p in json.loads(loop.curve_file.read_text())["points"]]
    assert RunFolder(loop.path).model.read_bytes() == RunFolder(loop.target).model.read_bytes()
    [result] = evaluate(loop.path, domains=["heavy"], episodes=2)
    assert np.isfinite(result.mean_reward)


def test_a_finished_loop_run_again_repeats_nothing(loop: AdaptFolder, source: Path) -> None:
    before = loop.state.read_text()
    recorded = loop.recording.stat().st_mtime_ns
    root = loop.path.parents[4]
    result = adapt(parse_config(config_data(root)), source, console=QUIET)
    assert result.folder == loop.path and loop.recording.stat().st_mtime_ns == recorded
    assert json.loads(loop.state.read_text())["stages"] == json.loads(before)["stages"]


def test_a_stopped_loop_resumes_at_the_stage_it_stopped_at(tmp_path: Path, source: Path) -> None:
    config = parse_config(config_data(tmp_path, simulation_steps=0))
    first = adapt(config, source, console=QUIET)
    folder = AdaptFolder(first.folder)
    state = json.loads(folder.state.read_text())
    recorded = folder.recording.stat().st_mtime_ns
    # As if it had stopped after identifying: its later stages not yet written.
    state["stages"] = {name: state["stages"][name] for name in ("record", "identify")}
    del state["final"]
    folder.state.write_text(json.dumps(state))
    import shutil

    shutil.rmtree(folder.target)
    again = adapt(config, source, console=QUIET)
    assert folder.recording.stat().st_mtime_ns == recorded  # not recorded again
    assert again.state["stages"]["identify"] == state["stages"]["identify"]
    assert again.state["stages"]["simulate"] == {"skipped": "simulation_steps: 0", "seconds": 0.0}
    assert RunFolder(folder.target).finished()


def test_a_loop_started_otherwise_is_not_resumed_from_its_folder(tmp_path: Path, source: Path) -> None:
    config = parse_config(config_data(tmp_path, simulation_steps=0))
    folder = adapt(config, source, console=QUIET).folder
    from sim2real.errors import Sim2RealError

    with pytest.raises(Sim2RealError, match="another settings"):
        adapt(parse_config(config_data(tmp_path, simulation_steps=0, budget=7000)), source, console=QUIET)
    assert json.loads(AdaptFolder(folder).state.read_text())["settings"]["budget"] == 6000


# ------------------------------------------------------------------------------------------- bad input


def write_config(tmp_path: Path, data: dict[str, Any]) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_budget_smaller_than_one_episode_is_one_line_and_writes_nothing(
    cli: Callable[..., CliResult], tmp_path: Path, source: Path
) -> None:
    config = write_config(tmp_path, config_data(tmp_path / "runs", budget=999))
    result = cli("adapt", str(source), "--config", str(config), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "adapt.budget", "999", "1,000")
    assert not (tmp_path / "out").exists() and not (tmp_path / "runs").exists()


def test_a_target_of_another_env_is_one_line_and_writes_nothing(
    cli: Callable[..., CliResult], tmp_path: Path, source: Path
) -> None:
    data = config_data(tmp_path / "runs")
    data["env"] = "InvertedPendulum-v5"
    result = cli("adapt", str(source), "--config", str(write_config(tmp_path, data)), "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "InvertedDoublePendulum-v5", "InvertedPendulum-v5")
    assert not (tmp_path / "out").exists()


def test_a_recording_of_another_env_is_one_line_and_writes_nothing(
    cli: Callable[..., CliResult], tmp_path: Path, source: Path
) -> None:
    rows = 20
    other = Trajectories(episode=np.zeros(rows, dtype=np.int64), qpos=np.zeros((rows, 2)), qvel=np.zeros((rows, 2)),
                         action=np.zeros((rows, 1)), header={"env": "InvertedPendulum-v5", "control_period": 0.04})  # fmt: skip
    other.write(tmp_path / "other.npz")
    config = write_config(tmp_path, config_data(tmp_path / "runs"))
    result = cli("adapt", str(source), "--config", str(config), "--recording", str(tmp_path / "other.npz"),
                 "--out", str(tmp_path / "out"))  # fmt: skip
    assert_one_line_error(result, "other.npz", "InvertedPendulum-v5")
    assert not (tmp_path / "out").exists()


def test_an_unknown_target_is_one_line_naming_the_targets(
    cli: Callable[..., CliResult], tmp_path: Path, source: Path
) -> None:
    config = write_config(tmp_path, config_data(tmp_path / "runs"))
    result = cli("adapt", str(source), "--config", str(config), "--target", "moon", "--out", str(tmp_path / "out"))
    assert_one_line_error(result, "adapt.target", "moon", "heavy")
    assert not (tmp_path / "out").exists()


def test_a_loop_saved_before_a_setting_existed_is_taken_where_nothing_it_ran_changed(tmp_path: Path) -> None:
    """A field a loop saved no value of counts as its default: an older loop resumes (and a study takes it as
    finished); one whose saved value differs is refused."""
    from sim2real.adapt import adapt_finished
    from sim2real.config import AdaptConfig
    from sim2real.errors import Sim2RealError

    settings = AdaptConfig(budget=6000)
    saved = settings.model_dump(mode="json", exclude={"target"})
    del saved["record_share"]
    folder = AdaptFolder(tmp_path / "loop")
    folder.path.mkdir()
    folder.state.write_text(json.dumps({"settings": saved, "stages": {}, "final": {}}))
    assert adapt_finished(folder.path, settings)
    with pytest.raises(Sim2RealError, match="other adapt settings"):
        adapt_finished(folder.path, settings.model_copy(update={"record_share": 0.1}))
