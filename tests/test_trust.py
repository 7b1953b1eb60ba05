"""No code from a file runs unless the user says so: a run folder made by someone else (a downloaded study, a
colleague's run) with a pickle payload planted in every file that can hold one is read by every command
without running it."""

from __future__ import annotations

import base64
import json
import pickle
import shutil
import zipfile
from pathlib import Path

import pytest
import yaml

from sim2real.config import parse_config
from sim2real.training import train
from tests.conftest import CliResult, tiny_config_data


class Payload:
    """Unpickling this touches ``marker``: proof that a file's code ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (self.marker,))


def plant(run: Path, marker: Path) -> list[Path]:
    """Puts the payload into every pickle of a run folder: the statistics' pickles, old-style replay buffers,
    and the model zips' serialized entries (which stable-baselines3's full ``load`` unpickles)."""
    payload = pickle.dumps(Payload(marker))
    planted = []
    for pkl in [
        *run.rglob("vecnormalize.pkl"),
        *(p.parent / "replay_buffer.pkl" for p in run.rglob("replay_buffer.npz")),
    ]:
        pkl.write_bytes(payload)
        planted.append(pkl)
    for archive in run.rglob("*.zip"):
        with zipfile.ZipFile(archive) as old:
            files = {name: old.read(name) for name in old.namelist()}
        data = json.loads(files["data"])
        for entry in data.values():
            if isinstance(entry, dict) and ":serialized:" in entry:
                entry[":serialized:"] = base64.b64encode(payload).decode()
        files["data"] = json.dumps(data).encode()
        with zipfile.ZipFile(archive, "w") as new:
            for name, content in files.items():
                new.writestr(name, content)
        planted.append(archive)
    return planted


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A PPO source run, a SAC run with a replay buffer in its checkpoints and a transfer run, all planted."""
    root = tmp_path_factory.mktemp("planted")
    ppo = train(parse_config(tiny_config_data(root / "runs"))).run_dir
    sac_data = tiny_config_data(root / "runs", algo="sac", total_timesteps=96, n_envs=1, checkpoint_every=48)
    sac_data["run"]["experiment"] = "sac"
    sac = train(parse_config(sac_data)).run_dir
    transfer_data = {**tiny_config_data(root / "runs"), "transfer": {"method": "finetune", "eval_every": 128}}
    transfer = train(parse_config(transfer_data), source=ppo).run_dir
    marker = root / "the_payload_ran"
    for run in (ppo, sac, transfer):
        assert plant(run, marker)
    config = root / "transfer.yaml"
    config.write_text(yaml.safe_dump({**tiny_config_data(root / "new"), "transfer": {"method": "finetune"}}))
    return {"ppo": ppo, "sac": sac, "transfer": transfer, "marker": marker, "config": config, "root": root}


def _commands(p: dict[str, Path]) -> dict[str, list[str]]:
    sweep = "{quantity: body_mass, select: all, scale: [1, 2], points: 2}"
    return {
        "source": ["transfer", str(p["config"]), "--source", str(p["ppo"])],
        "resume": ["train", "--resume", str(p["sac"]), "--set", "train.total_timesteps=144"],
        "transfer resume": ["transfer", "--resume", str(p["transfer"]), "--set", "train.total_timesteps=384"],
        "evaluate": ["evaluate", str(p["ppo"]), "--episodes", "1"],
        "sweep": ["sweep", str(p["ppo"]), "--param", sweep, "--episodes", "1", "--out", str(p["root"] / "sweep")],
        "inspect": ["inspect", str(p["transfer"])],
        "compare": ["compare", str(p["transfer"]), "--out", str(p["root"] / "card")],
    }


@pytest.mark.parametrize("path", ["source", "resume", "transfer resume", "evaluate", "sweep", "inspect", "compare"])
def test_no_read_path_runs_a_planted_pickle(planted: dict[str, Path], cli: object, path: str) -> None:
    result: CliResult = cli(*_commands(planted)[path])  # type: ignore[operator]
    assert result.returncode == 0, result.stderr
    assert not planted["marker"].exists(), f"{path} ran the payload"


def test_the_payload_is_real(planted: dict[str, Path], tmp_path: Path) -> None:
    """The planted files do run code when unpickled (so the test above proves something)."""
    copy = tmp_path / "copy"
    shutil.copy(planted["ppo"] / "vecnormalize.pkl", copy)
    pickle.loads(copy.read_bytes())
    assert planted["marker"].exists()
    planted["marker"].unlink()


def test_a_study_resumes_planted_runs_without_running_them(tmp_path: Path) -> None:
    """A downloaded study folder, every pickle planted, extended to a larger budget: its runs resume from
    their checkpoints, and nothing in them runs."""
    from sim2real.cli import main
    from tests.test_study import write_study

    path = write_study(tmp_path, methods=["scratch", "finetune"], seeds=1, sweeps=[],
                       sources={"nominal": {"config": "nominal.yaml"}})  # fmt: skip
    assert main(["study", str(path), "--workers", "1"]) == 0
    marker = tmp_path / "the_payload_ran"
    assert plant(tmp_path / "study" / "runs", marker)
    assert main(["study", str(path), "--workers", "1", "--set", "budgets.transfer=256"]) == 0
    assert not marker.exists()
