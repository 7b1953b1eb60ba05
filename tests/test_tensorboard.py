"""Runs of every kind in one logdir, read back through TensorBoard's own loading: HPARAMS holds the union of
their columns with what differs marked, one distinctly named row per run, an evaluation curve over training,
and `sim2real tensorboard` names each run apart within the sidebar's 30 characters."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console
from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer
from torch.utils.tensorboard import SummaryWriter

from sim2real import board
from sim2real.cli import tensorboard as tensorboard_command
from sim2real.config import parse_config
from sim2real.runs import run_label
from sim2real.training import train
from tests.conftest import CliResult, assert_one_line_error, hparams_dashboard, tiny_config_data

QUIET = Console(quiet=True)
SIDEBAR = 30  # characters of a run's name that TensorBoard's sidebar shows


def _transfer_data(root: Path, **transfer: Any) -> dict[str, Any]:
    data = tiny_config_data(root)
    data["run"]["experiment"] = "transfer"
    data["transfer"] = {"method": "finetune", "recipe": "plain", "guard": None, "keep": "last", "budget": "training_steps",
                        "eval_every": 128, "eval_episodes": 1, **transfer}  # fmt: skip
    return data


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's sequence in one logdir: a source (640 steps, 5 rollouts: a 5-point curve), a fine-tuned and
    a frozen transfer from it; beside them another tool's run and a corrupt events file."""
    root = tmp_path_factory.mktemp("logdir")
    source = train(parse_config(tiny_config_data(root, total_timesteps=640)), console=QUIET).run_dir
    for method in ("finetune", "freeze"):
        train(parse_config(_transfer_data(root, method=method)), source=source, console=QUIET)
    writer = SummaryWriter(str(root / "other_tool" / "run_1"))
    for step in range(3):
        writer.add_scalar("loss", 1.0 / (step + 1), step)
    writer.close()
    (root / "broken").mkdir()
    (root / "broken" / "events.out.tfevents.0.host.1.1").write_bytes(b"\x00not an events file\xff" * 8)
    return root


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


@pytest.mark.slow
def test_hparams_holds_every_run_with_what_differs_first(logdir: Path) -> None:
    experiment, groups = hparams_dashboard(logdir)
    columns = {h["name"]: h for h in experiment["hparamInfos"]}
    # The union: transfer/source is a transfer's only, algo/* every run's.
    assert {"transfer/source", "transfer/freeze", "algo/n_steps", "train/total_timesteps", "env"} <= set(columns)
    differs = {name for name, h in columns.items() if h.get("differs")}
    assert {"train/total_timesteps", "transfer/method"} <= differs, differs
    assert "algo/n_steps" not in differs and "env" not in differs
    order = [h["name"] for h in experiment["hparamInfos"]]
    assert set(order[: len(differs)]) == differs  # the dashboard ticks its first five columns
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"eval/source/mean_reward", "eval/heavy/mean_reward", "transfer/jumpstart"} <= metrics

    rows = {g["name"]: g for g in groups["sessionGroups"]}
    assert set(rows) == {
        "tiny s0 (inverted_double_pendulum_v5)",
        "finetune heavy s0 (transfer, inverted_double_pendulum_v5)",
        "freeze heavy s0 (transfer, inverted_double_pendulum_v5)",
    }
    finetune = rows["finetune heavy s0 (transfer, inverted_double_pendulum_v5)"]
    assert finetune["hparams"]["transfer/method"] == "finetune"
    assert rows["tiny s0 (inverted_double_pendulum_v5)"]["hparams"]["transfer/method"] == "none"
    source = finetune["hparams"]["transfer/source"]
    assert source == "../../../../tiny/seed_0/model.zip"  # from the run folder: the same on any machine
    values = {m["name"]["tag"]: m.get("value", 0.0) for m in finetune["metricValues"]}  # proto3 omits 0
    final = json.loads((logdir / "inverted_double_pendulum_v5/transfer/heavy/finetune/seed_0/eval.json").read_text())
    assert values["eval/heavy/mean_reward"] == pytest.approx(final["domains"]["heavy"]["mean_reward"])


@pytest.mark.slow
def test_a_source_run_logs_an_evaluation_curve_on_every_domain(logdir: Path, tmp_path: Path) -> None:
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    run = "inverted_double_pendulum_v5/tiny/seed_0/tb"
    final = json.loads((logdir / run).with_name("eval.json").read_text())
    for domain in ("source", "heavy"):
        curve = multiplexer.Tensors(run, f"eval/{domain}/mean_reward")
        steps = [event.step for event in curve]
        assert steps == [0, 256, 384, 512, 640], steps  # step 0, the rollout past each fifth, the final
        last = float(np.asarray(curve[-1].tensor_proto.float_val)[0])
        assert last == pytest.approx(final["domains"][domain]["mean_reward"], rel=1e-6)
    # The curve's evaluations leave training as it was: the same run without them ends with the same returns.
    alone = tiny_config_data(tmp_path, total_timesteps=640)
    alone["eval"]["curve_points"] = 1
    result = train(parse_config(alone), console=QUIET)
    assert [r.returns for r in result.results] == [final["domains"][d]["returns"] for d in ("source", "heavy")]


@pytest.mark.slow
def test_the_view_names_every_run_apart_and_changes_nothing(logdir: Path, tmp_path: Path) -> None:
    before = _snapshot(logdir)
    view = tmp_path / "view"
    board.refresh_view(logdir, view)
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(view))
    multiplexer.Reload()
    names = set(multiplexer.Runs())
    ours = {
        "tiny s0 (inverted_double_pendulum_v5)",
        "finetune heavy s0 (transfer, inverted_double_pendulum_v5)",
        "freeze heavy s0 (transfer, inverted_double_pendulum_v5)",
    }
    assert ours | {"other_tool/run_1"} <= names, names
    assert len({name[:SIDEBAR] for name in names}) == len(names)
    assert "eval/heavy/mean_reward" in multiplexer.Runs()["tiny s0 (inverted_double_pendulum_v5)"]["tensors"]
    assert "loss" in multiplexer.Runs()["other_tool/run_1"]["tensors"]  # another tool's run is still shown

    # A run added later shows up at the next refresh, beside the others.
    writer = SummaryWriter(str(logdir / "other_tool" / "run_2"))
    writer.add_scalar("loss", 0.5, 0)
    writer.close()
    board.refresh_view(logdir, view)
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(view))
    multiplexer.Reload()
    assert ours | {"other_tool/run_1", "other_tool/run_2"} <= set(multiplexer.Runs())
    after = _snapshot(logdir)
    assert {k: v for k, v in after.items() if not k.startswith("other_tool/run_2")} == before


def test_run_labels_put_what_tells_runs_apart_first(tmp_path: Path) -> None:
    labels = []
    for seed in (0, 1):
        source = tiny_config_data(tmp_path, seed=seed)
        labels.append(run_label(parse_config(source)))
        for method in ("finetune", "freeze", "progressive"):
            transfer = _transfer_data(tmp_path, method=method)
            transfer["train"]["seed"] = seed
            labels.append(run_label(parse_config(transfer)))
    assert len({label[:SIDEBAR] for label in labels}) == len(labels) == 8, labels


def test_tensorboard_paths_are_relative_to_the_run(tmp_path: Path) -> None:
    data = _transfer_data(tmp_path / "runs", source=str(tmp_path / "runs" / "src" / "seed_0"))
    data["transfer"]["early_warning"] = {"reference": str(tmp_path / "scratch" / "curve.json")}
    config = parse_config(data)
    shown = config.paths_relative_to(tmp_path / "runs" / "env" / "transfer" / "heavy" / "finetune" / "seed_0")
    assert shown.transfer is not None and shown.transfer.early_warning is not None
    assert shown.transfer.source == "../../../../../src/seed_0"
    assert shown.transfer.early_warning.reference == "../../../../../../scratch/curve.json"
    assert shown.run.root == "../../../../.."


def test_the_tensorboard_command_serves_a_view_until_interrupted(
    tmp_path: Path, cli: Callable[..., CliResult], monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = SummaryWriter(str(tmp_path / "logs" / "a"))
    writer.add_scalar("x", 1.0, 0)
    writer.close()
    seen: list[set[str]] = []

    def serve(view: Path, host: str, port: int) -> str:
        seen.append({p.parent.name for p in view.rglob("events.out.tfevents.*")})
        return f"http://{host}:{port}/"

    def interrupt(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(board, "serve", serve)
    monkeypatch.setattr(tensorboard_command.time, "sleep", interrupt)
    result = cli("tensorboard", str(tmp_path / "logs"), "--port", "6100")
    assert result.returncode == 0, result.stderr
    assert seen == [{"a"}]
    assert "http://localhost:6100/" in result.stdout
    assert_one_line_error(cli("tensorboard", str(tmp_path / "nothing")), "no such folder")


def test_a_view_kept_inside_its_logdir_is_not_shown_twice(tmp_path: Path) -> None:
    writer = SummaryWriter(str(tmp_path / "a"))
    writer.add_scalar("x", 1.0, 0)
    writer.close()
    for _ in range(2):
        assert set(board.refresh_view(tmp_path, tmp_path / "view")) == {"a"}
    (tmp_path / "a" / next(p.name for p in (tmp_path / "a").iterdir())).unlink()
    board.refresh_view(tmp_path, tmp_path / "view")
    assert not any((tmp_path / "view").rglob("events.out.tfevents.*"))  # a removed run's links go too
