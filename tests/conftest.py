"""Shared fixtures: a tiny training config that runs in seconds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sim2real.config import Config, parse_config

ROOT = Path(__file__).resolve().parents[1]


def tiny_config_data(root: Path, algo: str = "ppo", **train: Any) -> dict[str, Any]:
    """InvertedDoublePendulum with one target, a 16-unit network and a few hundred steps."""
    algos = {
        "ppo": {"name": "ppo", "n_steps": 64, "batch_size": 64, "n_epochs": 1, "net_arch": [16]},
        "sac": {
            "name": "sac",
            "net_arch": [16],
            "learning_starts": 32,
            "batch_size": 32,
            "buffer_size": 2000,
        },
    }
    return {
        "env": "InvertedDoublePendulum-v5",
        "targets": {"heavy": {"dynamics": [{"quantity": "body_mass", "select": "all", "scale": 2.0}]}},
        "algo": algos[algo],
        "train": {
            "total_timesteps": 256,
            "n_envs": 2,
            "normalize": {},
            "checkpoint_every": 128,
            "progress_bar": False,
            **train,
        },
        "eval": {"episodes": 2},
        "run": {"root": str(root), "experiment": "tiny"},
    }


@pytest.fixture
def tiny_config(tmp_path: Path) -> Config:
    return parse_config(tiny_config_data(tmp_path / "runs"))
