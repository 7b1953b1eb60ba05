"""A real TensorBoard server lists a run folder's run and the scalar tags users look for."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from sim2real.config import Config
from sim2real.training import train


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: dict) -> object:
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@contextmanager
def tensorboard_server(logdir: Path) -> Iterator[str]:
    """A real TensorBoard server on loopback over ``logdir``; yields its base URL."""
    executable = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    port = _free_port()
    server = subprocess.Popen(
        [
            executable,
            "--logdir",
            str(logdir),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--load_fast",
            "false",
            "--reload_interval",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=10)


def hparams_dashboard(logdir: Path, sessions: int) -> tuple[dict, dict]:
    """What TensorBoard's HPARAMS dashboard shows for ``logdir``: its columns and its rows (session groups),
    once ``sessions`` rows are loaded."""
    with tensorboard_server(logdir) as base:
        deadline = time.monotonic() + 90
        groups: dict = {}
        while time.monotonic() < deadline:
            try:
                groups = _post(
                    f"{base}/data/plugin/hparams/session_groups",
                    {  # type: ignore[assignment]
                        "experimentName": "",
                        "startIndex": 0,
                        "sliceSize": 1000,
                        "colParams": [],
                        "allowedStatuses": ["STATUS_UNKNOWN", "STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
                    },
                )
                if groups.get("totalSize", 0) >= sessions:
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        experiment = _post(f"{base}/data/plugin/hparams/experiment", {"experimentName": ""})
    return experiment, groups  # type: ignore[return-value]


@pytest.mark.slow
def test_tensorboard_serves_the_run_and_its_tags(tiny_config: Config) -> None:
    run_dir = train(tiny_config).run_dir
    tags: dict = {}
    with tensorboard_server(run_dir) as base:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                tags = _get(f"{base}/data/plugin/scalars/tags")  # type: ignore[assignment]
                if tags.get("tb", {}).get("eval/heavy/mean_reward"):
                    break
            except OSError:
                pass  # not listening yet
            time.sleep(0.5)
        runs = _get(f"{base}/data/runs")
        hparams_tags = _get(f"{base}/data/plugin/text/tags")
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
