"""A real TensorBoard server lists a run folder's run and the scalar tags users look for."""

from __future__ import annotations

import json
import time

import pytest

from sim2real.config import Config
from sim2real.training import train
from tests.conftest import get_json, tensorboard_server


@pytest.mark.slow
def test_tensorboard_serves_the_run_and_its_tags(tiny_config: Config) -> None:
    run_dir = train(tiny_config).run_dir
    tags: dict = {}
    with tensorboard_server(run_dir) as base:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                tags = get_json(f"{base}/data/plugin/scalars/tags")  # type: ignore[assignment]
                if tags.get("tb", {}).get("eval/heavy/mean_reward"):
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        runs = get_json(f"{base}/data/runs")
        hparams_tags = get_json(f"{base}/data/plugin/text/tags")
    assert runs == ["tb"]
    scalars = set(tags["tb"])
    expected = {
        "eval/source/mean_reward",
        "eval/heavy/mean_reward",
        "eval/heavy/std_reward",
        "train/loss",
        "rollout/ep_rew_mean",
        "time/fps",
    }
    assert expected <= scalars, sorted(scalars)
    assert "config" in json.dumps(hparams_tags)
