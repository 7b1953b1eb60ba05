"""Training runs: the run folder, TensorBoard contents, checkpoints and resume."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from rich.console import Console
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sim2real.config import Config, load_config, parse_config
from sim2real.errors import Sim2RealError
from sim2real.runs import RunFolder, run_dir
from sim2real.training import load_run_config, train
from tests.conftest import ROOT, tiny_config_data


def _events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_run_folder_holds_model_stats_config_and_evaluation(tiny_config: Config) -> None:
    result = train(tiny_config, command="sim2real train tiny.yaml")
    run = result.run_dir
    assert run == Path(tiny_config.run.root) / "inverted_double_pendulum_v5" / "tiny" / "seed_0"
    assert parse_config(yaml.safe_load((run / "config.yaml").read_text())) == tiny_config
    assert (run / "command.txt").read_text().strip() == "sim2real train tiny.yaml"

    # The final model is a plain SB3 zip, and the statistics a plain VecNormalize file.
    model = PPO.load(run / "model.zip", device="cpu")
    assert model.num_timesteps == result.num_timesteps >= 256
    venv = DummyVecEnv([lambda: __import__("gymnasium").make("InvertedDoublePendulum-v5")])
    stats = VecNormalize.load(str(run / "vecnormalize.pkl"), venv)
    assert stats.obs_rms.count > 256
    action, _ = model.predict(stats.normalize_obs(venv.reset()), deterministic=True)
    assert action.shape == (1, 1)

    # Checkpoints are complete folders, at most two kept, the newest at the final step.
    checkpoints = [c.path for c in RunFolder(run).checkpoints()]
    assert 1 <= len(checkpoints) <= 2
    assert checkpoints[-1].name == f"step_{result.num_timesteps:012d}"
    assert {p.name for p in checkpoints[-1].iterdir()} == {"model.zip", "vecnormalize.pkl", "vecnormalize.json"}
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]

    evaluation = json.loads((run / "eval.json").read_text())
    assert list(evaluation["domains"]) == ["source", "heavy"]
    for domain in evaluation["domains"].values():
        assert domain["episodes"] == 2 and len(domain["returns"]) == 2
        assert domain["mean_reward"] == pytest.approx(np.mean(domain["returns"]))
    assert sorted(p.name for p in (run / "monitor").iterdir()) == ["0.monitor.csv", "1.monitor.csv"]


def test_tensorboard_has_training_eval_hparams_and_config(tiny_config: Config) -> None:
    result = train(tiny_config)
    events = _events(result.run_dir)
    scalars = set(events.Tags()["scalars"])
    for domain in ("source", "heavy"):
        for metric in ("mean_reward", "std_reward", "mean_ep_length"):
            assert f"eval/{domain}/{metric}" in scalars
    assert {"train/loss", "train/learning_rate", "time/fps"} <= scalars
    last = events.Scalars("eval/heavy/mean_reward")[-1]
    assert last.step == result.num_timesteps
    assert last.value == pytest.approx(result.results[1].mean_reward)

    plugins = events.PluginTagToContent("hparams")
    # A session only: an experiment summary would hide the other runs' columns (sim2real.logging.write_session).
    assert "_hparams_/experiment" not in plugins and "_hparams_/session_start_info" in plugins
    from tensorboard.plugins.hparams import plugin_data_pb2

    start = plugin_data_pb2.HParamsPluginData.FromString(plugins["_hparams_/session_start_info"])
    hparams = start.session_start_info.hparams
    assert hparams["algo/n_steps"].number_value == 64
    assert hparams["env"].string_value == "InvertedDoublePendulum-v5"
    assert hparams["transfer/method"].string_value == "none"
    assert start.session_start_info.group_name == "tiny s0 (inverted_double_pendulum_v5)"

    texts = events.PluginTagToContent("text")
    assert any(tag.startswith("config") for tag in texts)


def test_existing_run_folder_is_never_overwritten(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    before = (run / "model.zip").read_bytes()
    with pytest.raises(Sim2RealError, match="already holds a run; continue it with resume="):
        train(tiny_config)
    assert (run / "model.zip").read_bytes() == before


def test_resume_continues_the_step_counter_and_one_tensorboard_curve(tmp_path: Path) -> None:
    config = parse_config(tiny_config_data(tmp_path / "runs"))
    first = train(config, command="first")
    resumed_config = load_run_config(first.run_dir, ["train.total_timesteps=512"])
    second = train(resumed_config, command="second", resume=first.run_dir)
    assert second.num_timesteps == 512
    assert (first.run_dir / "command.txt").read_text().splitlines() == ["first", "second"]
    steps = [e.step for e in _events(first.run_dir).Scalars("train/learning_rate")]
    assert steps == sorted(set(steps)), "a resumed run must not log a step twice"
    assert steps[0] <= 256 < steps[-1] == 512, "one curve from the first run's steps to the resumed run's"
    # The step counter continued: the resumed run trained 256 more steps, not 512.
    assert second.num_timesteps - first.num_timesteps == 256


def test_resume_refuses_config_changes_other_than_budget(tiny_config: Config) -> None:
    run = train(tiny_config).run_dir
    with pytest.raises(Sim2RealError, match="a resumed run keeps its config"):
        load_run_config(run, ["algo.n_steps=128"])


def test_resume_without_checkpoint_or_with_corrupt_one(tiny_config: Config, tmp_path: Path) -> None:
    with pytest.raises(Sim2RealError, match="no such run folder"):
        load_run_config(tmp_path / "nothing")
    run = train(tiny_config).run_dir
    config = load_run_config(run, ["train.total_timesteps=512"])
    latest = [c.path for c in RunFolder(run).checkpoints()][-1]
    (latest / "model.zip").write_bytes(b"not a zip")
    with pytest.raises(Sim2RealError, match=re.escape(f"{latest / 'model.zip'}: not a stable-baselines3 model zip")):
        train(config, resume=run)
    for checkpoint in [c.path for c in RunFolder(run).checkpoints()]:
        for f in checkpoint.iterdir():
            f.unlink()
        checkpoint.rmdir()
    with pytest.raises(Sim2RealError, match="no checkpoint to resume from"):
        train(config, resume=run)


def test_sac_run_checkpoints_its_replay_buffer_and_resumes(tmp_path: Path) -> None:
    config = parse_config(
        tiny_config_data(
            tmp_path / "runs", algo="sac", total_timesteps=96, n_envs=1, checkpoint_every=48, normalize=None
        )
    )
    first = train(config)
    latest = [c.path for c in RunFolder(first.run_dir).checkpoints()][-1]
    # Plain arrays (read with allow_pickle=False), not SB3's pickle of the buffer object.
    assert (latest / "replay_buffer.npz").is_file() and not (latest / "replay_buffer.pkl").exists()
    with np.load(latest / "replay_buffer.npz", allow_pickle=False) as saved:
        assert int(saved["pos"]) == 96 and saved["observations"].shape[1:] == (1, 9)  # every step so far
    resumed = train(load_run_config(first.run_dir, ["train.total_timesteps=160"]), resume=first.run_dir)
    model = SAC.load(first.run_dir / "model.zip", device="cpu")
    assert model.num_timesteps == resumed.num_timesteps == 160


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    data = tiny_config_data(tmp_path / "runs", total_timesteps=200_000, checkpoint_every=512)
    config_path = tmp_path / "kill.yaml"
    config_path.write_text(yaml.safe_dump(data))
    config = load_config(config_path)
    run = run_dir(config)
    process = subprocess.Popen(
        [sys.executable, "-m", "sim2real", "train", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while len([c.path for c in RunFolder(run).checkpoints()]) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len([c.path for c in RunFolder(run).checkpoints()]) >= 2, "no checkpoints appeared"
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    assert not (run / "model.zip").exists()
    last = [c.path for c in RunFolder(run).checkpoints()][-1]
    step = int(last.name.removeprefix("step_"))

    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "sim2real",
            "train",
            "--resume",
            str(run),
            "--set",
            f"train.total_timesteps={step + 512}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from step {step:,}" in " ".join(resumed.stdout.split())
    model = PPO.load(run / "model.zip", device="cpu")
    assert model.num_timesteps == step + 512


@pytest.mark.slow
def test_quick_start_default_learns_the_source_and_the_hardest_target_breaks_it(tmp_path: Path) -> None:
    """The README's main job on its built-in default: a good source policy that heavy_weak takes apart."""
    config = load_config(
        ROOT / "configs" / "inverted_double_pendulum" / "nominal.yaml",
        [f"run.root={tmp_path}", "train.progress_bar=false"],
    )
    results = {r.domain: r.mean_reward for r in train(config).results}
    assert results["source"] > 8000  # the maximum is about 9,360 (1,000 steps of ~9.36)
    assert results["heavy_weak"] < 0.2 * results["source"]


def test_torch_threads_caps_the_threads_torch_uses_while_training_only(tmp_path: Path) -> None:
    """train.torch_threads holds while the run trains; a library caller gets its own setting back."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback

    class Threads(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.seen: set[int] = set()

        def _on_step(self) -> bool:
            self.seen.add(torch.get_num_threads())
            return True

    before = torch.get_num_threads()
    threads = Threads()
    train(parse_config(tiny_config_data(tmp_path / "runs", torch_threads=1)), callbacks=[threads])
    assert threads.seen == {1}
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_a_run_folders_files_follow_the_users_umask(tiny_config: Config, umask: int) -> None:
    """A teammate's TensorBoard (or the user's group) reads a run as their umask allows, like any file they make."""
    before = os.umask(umask)
    try:
        run_dir = train(tiny_config, console=Console(quiet=True)).run_dir
    finally:
        os.umask(before)
    modes = {p.relative_to(run_dir): stat.S_IMODE(p.stat().st_mode) for p in run_dir.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o666 & ~umask}, modes
