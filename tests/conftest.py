"""Shared fixtures and helpers: a tiny training config that runs in seconds, the command line run in-process,
the one-line error contract, and a real TensorBoard server on loopback."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from sim2real.cli import main
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


@pytest.fixture
def mujoco_log_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """MuJoCo writes compiler warnings (Ant's deprecated settotalmass, ...) to MUJOCO_LOG.TXT in the cwd."""
    monkeypatch.chdir(tmp_path)


# ------------------------------------------------------------------------------------------- the command line


@dataclass
class CliResult:
    """What a ``sim2real`` command gave: its exit code and what it printed."""

    returncode: int
    stdout: str
    stderr: str


def run_cli_process(*args: str, cwd: Path | None = None) -> CliResult:
    """``python -m sim2real ARGS`` in a process of its own: for the tests of the process contract itself."""
    done = subprocess.run(
        [sys.executable, "-m", "sim2real", *args], capture_output=True, text=True, timeout=300, cwd=cwd
    )
    return CliResult(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliResult]:
    """Runs ``sim2real ARGS`` in this process (``main([...])``), from ``cwd`` when given."""

    def run(*args: str, cwd: Path | None = None) -> CliResult:
        capsys.readouterr()
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            try:
                code = main(list(args))
            except SystemExit as exit_:  # argparse's usage errors
                code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def assert_one_line_error(result: CliResult, *needles: str) -> None:
    """Exit code 2, no traceback, one ``error:`` line holding every needle."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# ------------------------------------------------------------------------------------------- TensorBoard


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


@contextmanager
def tensorboard_server(logdir: Path) -> Iterator[str]:
    """A real TensorBoard server on loopback over ``logdir``; yields its base URL."""
    executable = shutil.which("tensorboard") or str(Path(sys.executable).with_name("tensorboard"))
    port = free_port()
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


def hparams_dashboard(logdir: Path) -> tuple[dict, dict]:
    """What TensorBoard's HPARAMS dashboard shows for ``logdir``, read by its own code in this process (the event
    multiplexer, its data provider and the hparams plugin's handlers, as the server answers ``/experiment`` and
    ``/session_groups``): the columns (``hparamInfos``, ``metricInfos``) and the rows (``sessionGroups``)."""
    from google.protobuf import json_format
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, get_experiment, list_session_groups

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    provider = data_provider.MultiplexerDataProvider(multiplexer, str(logdir))
    backend = backend_context.Context(base_plugin.TBContext(logdir=str(logdir), data_provider=provider))
    request = context.RequestContext()
    experiment = get_experiment.Handler(request, backend, "", api_pb2.GetExperimentRequest()).run()
    statuses = [api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS, api_pb2.STATUS_FAILURE, api_pb2.STATUS_RUNNING]
    query = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=1000, allowed_statuses=statuses)
    groups = list_session_groups.Handler(request, backend, "", query).run()
    return json_format.MessageToDict(experiment), json_format.MessageToDict(groups)
