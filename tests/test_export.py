"""``sim2real export``: a run's policy as ONNX or TorchScript for a control loop, with the run's normalization
and action bounds built in; onnxruntime (or TorchScript) gives the actions ``predict`` gives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
import pytest
import torch

from sim2real.config import parse_config
from sim2real.deploy import record_observations, reference_actions
from sim2real.evaluation.batched import ObservationNormalizer
from sim2real.modelfile import read_model
from sim2real.models import load_policy
from sim2real.training import load_run_config, train
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PPO and a SAC source (normalized observations), and a prognet transfer run from the PPO one."""
    root = tmp_path_factory.mktemp("export")
    ppo = train(parse_config(tiny_config_data(root / "runs"))).run_dir
    sac_data = tiny_config_data(root / "runs", algo="sac", total_timesteps=96, n_envs=1)
    sac_data["run"]["experiment"] = "sac"
    sac = train(parse_config(sac_data)).run_dir
    prognet = train(parse_config({**tiny_config_data(root / "runs"), "transfer": {"method": "prognet"}}), source=ppo)
    return {"ppo": ppo, "sac": sac, "prognet": prognet.run_dir}


def _expected(run: Path) -> tuple[np.ndarray, np.ndarray]:
    """1,000 observations recorded on the source domain, and what sim2real's evaluation sends for them."""
    config = load_run_config(run)
    model, _ = load_policy(config, run)
    normalizer = ObservationNormalizer.from_state(read_model(run).normalization)
    observations = record_observations(model, config, normalizer, 1000, seed=3)
    return observations, reference_actions(model, normalizer, observations)


@pytest.mark.parametrize("run_name", ["ppo", "sac", "prognet"])
def test_an_onnx_policy_gives_predicts_actions_in_onnxruntime(runs: dict[str, Path], cli: Any, run_name: str) -> None:
    run = runs[run_name]
    result: CliResult = cli("export", str(run), "--format", "onnx")
    assert result.returncode == 0, result.stderr
    observations, expected = _expected(run)
    session = onnxruntime.InferenceSession(str(run / "policy.onnx"), providers=["CPUExecutionProvider"])
    actions = session.run(None, {"observation": observations})[0]
    assert actions.shape == expected.shape
    assert np.max(np.abs(actions - expected)) <= 1e-5
    assert "matches predict within" in result.stdout


@pytest.mark.parametrize("run_name", ["ppo", "sac"])
def test_a_torchscript_policy_gives_predicts_actions(
    runs: dict[str, Path], cli: Any, run_name: str, tmp_path: Path
) -> None:
    out = tmp_path / "deploy" / "policy.pt"
    result: CliResult = cli("export", str(runs[run_name]), "--format", "torchscript", "--out", str(out))
    assert result.returncode == 0, result.stderr
    observations, expected = _expected(runs[run_name])
    actions = torch.jit.load(str(out))(torch.as_tensor(observations)).numpy()
    assert np.max(np.abs(actions - expected)) <= 1e-5


def test_export_refuses_bad_input_in_one_line(runs: dict[str, Path], cli: Any, tmp_path: Path) -> None:
    (tmp_path / "a_folder").mkdir()
    assert_one_line_error(cli("export", str(runs["ppo"]), "--out", str(tmp_path / "a_folder")), "--out", "is a folder")
    assert_one_line_error(cli("export", str(tmp_path / "nothing")), "nothing")
    result = cli("export", str(runs["ppo"]), "--format", "tflite")
    assert result.returncode == 2 and "invalid choice" in result.stderr  # argparse's usage-then-error
