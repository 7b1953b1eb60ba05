"""sb3-contrib's RecurrentPPO as ``algo.name: recurrent_ppo``: training, safe loading in plain sb3-contrib, the
batched evaluator carrying an LSTM state per env copy, layer groups for the LSTMs, the transfer methods that
take it, resume, and clear refusals for what it cannot take."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from sb3_contrib import RecurrentPPO

from sim2real.config import parse_config
from sim2real.errors import Sim2RealError
from sim2real.evaluation.batched import BatchPolicy
from sim2real.models import load_policy
from sim2real.training import load_run_config, train
from sim2real.transfer.groups import layer_groups
from tests.conftest import tiny_config_data

QUIET = Console(quiet=True)
ALGO = {"name": "recurrent_ppo", "n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": [16],
        "lstm_hidden_size": 8}  # fmt: skip

pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def recurrent_data(root: Path, transfer: dict[str, Any] | None = None) -> dict[str, Any]:
    data = tiny_config_data(root)
    data["algo"] = dict(ALGO)
    if transfer is not None:
        data["transfer"] = transfer
    return data


@pytest.fixture(scope="module")
def recurrent_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(parse_config(recurrent_data(tmp_path_factory.mktemp("recurrent"))), console=QUIET).run_dir


def test_a_recurrent_run_loads_in_sb3_contrib_and_in_sim2real_as_the_same_policy(recurrent_source: Path) -> None:
    plain = RecurrentPPO.load(recurrent_source / "model.zip", device="cpu")
    ours, model_file = load_policy(load_run_config(recurrent_source), recurrent_source)  # weights-only
    assert model_file.algo == "recurrent_ppo" and isinstance(ours, RecurrentPPO)
    rng = np.random.default_rng(0)
    observations = rng.normal(size=(5, 4, 9)).astype(np.float32)  # 5 steps of 4 copies
    state_a = state_b = None
    starts = np.ones(4, dtype=bool)
    for step in observations:
        a, state_a = plain.predict(step, state=state_a, episode_start=starts, deterministic=True)
        b, state_b = ours.predict(step, state=state_b, episode_start=starts, deterministic=True)
        assert np.allclose(a, b, atol=1e-6)
        starts = np.zeros(4, dtype=bool)


def test_the_batched_evaluator_carries_each_copys_lstm_state_and_resets_it_per_episode(recurrent_source: Path) -> None:
    """Copies come and go in a batch: each keeps its own state, which starts afresh with its episode, so a
    subset of copies gets exactly what stepping them alone would give."""
    model, _ = load_policy(load_run_config(recurrent_source), recurrent_source)
    rng = np.random.default_rng(1)
    obs = rng.normal(size=(3, 2, 9)).astype(np.float32)
    together = BatchPolicy(model, deterministic=True)
    alone = BatchPolicy(model, deterministic=True)
    for slot in (0, 1):
        together.reset(slot)
        alone.reset(slot)
    for step in obs:
        both = together(step, [0, 1])
        assert np.allclose(both[1], alone(step[1:], [1]))
    together.reset(1)  # slot 1 starts a new episode; slot 0 keeps its memory
    fresh = BatchPolicy(model, deterministic=True)
    fresh.reset(1)
    assert np.allclose(together(obs[0], [0, 1])[1], fresh(obs[0][1:], [1]))


def test_the_lstms_are_layer_groups_below_the_mlp(recurrent_source: Path) -> None:
    model = RecurrentPPO.load(recurrent_source / "model.zip", device="cpu")
    groups = {g.name: g for g in layer_groups(model.policy)}
    assert groups["lstm_actor"].depth == 0 and groups["lstm_critic"].depth == 0
    assert groups["mlp_extractor.policy_net.0"].depth == 1
    assert len(groups["lstm_actor"].params) == 4  # weight_ih, weight_hh, bias_ih, bias_hh


@pytest.mark.parametrize(("method", "lstm_state"), [("finetune", "trainable"), ("freeze", "frozen")])
def test_finetune_and_freeze_take_a_recurrent_source_and_resume(
    tmp_path: Path, recurrent_source: Path, method: str, lstm_state: str
) -> None:
    """freeze's first layer is the LSTM: it keeps what the source remembered, and the MLP above it trains."""
    settings = {"method": method, "source": str(recurrent_source), "eval_every": 64, "budget": "training_steps"}
    run = train(parse_config(recurrent_data(tmp_path, settings)), console=QUIET).run_dir
    state = json.loads((run / "transfer.json").read_text())["groups"]
    assert state["lstm_actor"]["state"] == lstm_state and state["mlp_extractor.policy_net.0"]["state"] == "trainable"
    resumed = train(load_run_config(run, ["train.total_timesteps=384"]), resume=run, console=QUIET)
    assert resumed.num_timesteps == 384


def test_prognet_and_export_refuse_a_recurrent_policy(tmp_path: Path, recurrent_source: Path) -> None:
    with pytest.raises(Sim2RealError, match=r"transfer\.method: prognet has no recurrent column"):
        parse_config(recurrent_data(tmp_path, {"method": "prognet", "source": str(recurrent_source)}))
    from sim2real.api import export

    with pytest.raises(Sim2RealError, match="recurrent policy"):
        export(recurrent_source, "torchscript", tmp_path / "policy.pt")
    assert not (tmp_path / "policy.pt").exists()
