"""``sim2real study``: every job runs once, re-runs skip or resume, the report holds what the runs measured,
and the numbers do not depend on the worker count or the backend."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from sim2real import board
from sim2real.cli import main
from sim2real.config import load_study
from sim2real.study import plan_study, study_lock
from tests.conftest import hparams_dashboard, tiny_config_data

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_study(folder: Path, **changes: Any) -> Path:
    """A tiny study: two sources (nominal, randomized mass), scratch/finetune/freeze on one target, 2 seeds."""
    folder.mkdir(parents=True, exist_ok=True)
    base = tiny_config_data(folder / "unused")
    base["train"]["n_envs"] = 1
    (folder / "nominal.yaml").write_text(yaml.safe_dump(base))
    randomized = {
        "extends": "nominal.yaml",
        "source": {"dynamics": [{"quantity": "body_mass", "select": "all",
                                 "scale": {"dist": "uniform", "low": 1.0, "high": 2.0}}]},
    }  # fmt: skip
    (folder / "randomized.yaml").write_text(yaml.safe_dump(randomized))
    study: dict[str, Any] = {
        "env": "InvertedDoublePendulum-v5",
        "config": "nominal.yaml",
        "sources": {"nominal": {"config": "nominal.yaml"}, "randomized": {"config": "randomized.yaml"}},
        "targets": ["heavy"],
        "methods": ["scratch", "finetune", "freeze"],
        "seeds": 2,
        "budgets": {"source": 128, "transfer": 128},
        "transfer": {"eval_every": 64, "eval_episodes": 1},
        "sweeps": [
            {"params": [{"quantity": "body_mass", "select": "all", "scale": [1.0, 2.0], "points": 2}], "episodes": 1}
        ],
        "output": str(folder / "study"),
        **changes,
    }
    path = folder / "study.yaml"
    path.write_text(yaml.safe_dump(study, sort_keys=False))
    return path


def _numbers(study_folder: Path) -> dict[str, Any]:
    """What a study measured, without where it ran (paths) or how long it took."""
    report = json.loads((study_folder / "report" / "study.json").read_text())
    return {key: report[key] for key in ("zero_shot", "after_transfer", "scorecard", "sweeps")}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A study run once with two local workers; returns the study file."""
    path = write_study(tmp_path_factory.mktemp("study"))
    assert main(["study", str(path), "--workers", "2"]) == 0
    return path


def test_every_job_runs_and_the_report_holds_the_runs_numbers(finished: Path) -> None:
    study = finished.parent / "study"
    runs = study / "runs" / "inverted_double_pendulum_v5"
    finished_runs = sorted(p.parent.relative_to(runs).as_posix() for p in runs.rglob("eval.json"))
    expected = ["nominal/seed_0", "randomized/seed_0"]
    expected += [f"scratch/heavy/scratch/seed_{s}" for s in (0, 1)]
    expected += [f"{src}/heavy/{m}/seed_{s}" for src in ("nominal", "randomized") for m in ("finetune", "freeze")
                 for s in (0, 1)]  # fmt: skip
    assert finished_runs == sorted(expected)
    report = json.loads((study / "report" / "study.json").read_text())
    nominal_eval = json.loads((runs / "nominal" / "seed_0" / "eval.json").read_text())["domains"]
    assert report["zero_shot"]["nominal"]["heavy"]["mean_reward"] == nominal_eval["heavy"]["mean_reward"]
    rows = {row["method"]: row for row in report["after_transfer"]}
    assert set(rows) == {"scratch", "nominal/finetune", "nominal/freeze", "randomized/finetune", "randomized/freeze"}
    finals = [json.loads((runs / "nominal/heavy/freeze" / f"seed_{s}" / "eval.json").read_text())["domains"]["heavy"]
              ["mean_reward"] for s in (0, 1)]  # fmt: skip
    assert sorted(rows["nominal/freeze"]["after_transfer"]["values"]) == sorted(finals)
    assert rows["nominal/freeze"]["zero_shot"] == nominal_eval["heavy"]["mean_reward"]
    methods = {m["method"]: m for m in report["scorecard"]["methods"]}
    assert methods["randomized/finetune"]["seeds"] == 2
    sweep = report["sweeps"][0]
    assert set(sweep["grid_iqm"]) == {"nominal", "randomized"}
    for name in ("study.md", "scorecard.md", "scorecard.json", "curves.png", sweep["image"]):
        assert (study / "report" / name).stat().st_size > 0, name
    markdown = (study / "report" / "study.md").read_text()
    assert "randomized/finetune" in markdown and "grid IQM" in markdown and "lowest decile" in markdown
    assert sweep["minimum"]["nominal"] == pytest.approx(min(sweep["grid"]["nominal"]))
    # The sources' sweep images also land in their TensorBoard runs.
    assert any((runs / "nominal" / "seed_0" / "tb").glob("events.*"))


def test_tensorboard_shows_the_whole_study_in_one_hparams_dashboard(finished: Path) -> None:
    # 12 runs (2 sources, 10 transfer and scratch) and 5 method summaries of the scorecard.
    experiment, groups = hparams_dashboard(finished.parent / "study")
    columns = {h["name"] for h in experiment["hparamInfos"]}
    # No experiment summary: TensorBoard's union of the sessions, with what differs marked (and shown first).
    assert {h["name"] for h in experiment["hparamInfos"] if h.get("differs")} >= {"study/method", "train/seed"}
    assert {"study/source", "study/method", "study/target", "study/role", "train/seed", "transfer/method"} <= columns
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"eval/heavy/mean_reward", "transfer/jumpstart", "scorecard/transfer_ratio"} <= metrics
    assert groups["totalSize"] == 17
    methods = sorted(g["hparams"]["study/method"] for g in groups["sessionGroups"])
    assert methods.count("pretrain") == 2 and methods.count("scratch") == 2 + 1
    names = [g["name"] for g in groups["sessionGroups"]]
    assert len(set(names)) == 17 and "summary scratch heavy" in names, names


def test_the_study_tensorboard_overlays_each_targets_methods_and_holds_the_report_images(finished: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.custom_scalar import layout_pb2

    tb = finished.parent / "study" / "report" / "tb"
    overview = EventAccumulator(str(tb)).Reload()
    stored = overview.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0]
    layout = layout_pb2.Layout.FromString(stored)
    charts = [chart for category in layout.category for chart in category.chart]
    assert [(c.title, list(c.multiline.tag)) for c in charts] == [("heavy", ["^scorecard/target_return/heavy$"])]
    # The chart's tag in every method's summary run: its IQM learning curve, by target steps.
    methods = sorted(p.relative_to(tb / "heavy").as_posix() for p in (tb / "heavy").iterdir())
    assert methods == ["nominal_finetune", "nominal_freeze", "randomized_finetune", "randomized_freeze", "scratch"]
    lengths = []
    for method in methods:
        curve = EventAccumulator(str(tb / "heavy" / method)).Reload().Scalars("scorecard/target_return/heavy")
        steps = [event.step for event in curve]
        assert steps and steps == sorted(set(steps)), (method, steps)
        lengths.append(len(steps))
    assert max(lengths) >= 2, lengths  # up to where every seed got: the tiny transfers' recalibration is most of it
    images = overview.Tags()["images"]
    assert "report/curves" in images and any(tag.startswith("report/sweep_") for tag in images), images
    assert overview.Images("report/curves")[0].width > 100


def test_sim2real_tensorboard_names_every_run_of_a_study_apart(finished: Path, tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.plugin_event_multiplexer import EventMultiplexer

    board.refresh_view(finished.parent / "study", tmp_path / "view")
    multiplexer = EventMultiplexer().AddRunsFromDirectory(str(tmp_path / "view"))
    multiplexer.Reload()
    names = set(multiplexer.Runs())
    assert len(names) == 12 + 5 + 1  # the runs, the summary rows and the report's overview
    assert {"summary randomized_freeze heavy", "freeze heavy s1 (randomized, inverted_double_pendulum_v5)",
            "randomized s0 (inverted_double_pendulum_v5)", "report/tb"} <= names, names  # fmt: skip
    assert len({name[:30] for name in names}) == len(names), sorted(names)


def test_a_rerun_trains_nothing_again(finished: Path, capsys: pytest.CaptureFixture[str]) -> None:
    study = finished.parent / "study"
    models = {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("model.zip")}
    capsys.readouterr()
    assert main(["study", str(finished)]) == 0
    out = capsys.readouterr().out
    assert "13 jobs; 13 done, 0 to resume, 0 to run" in out
    assert {p: p.stat().st_mtime_ns for p in (study / "runs").rglob("model.zip")} == models


def test_a_larger_budget_resumes_finished_runs_and_an_unstarted_folder_is_kept(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Training-step budgets keep the resume's step where the test puts it (a target-step budget moves it by the
    # evaluations' steps, tests/test_guard.py).
    path = write_study(
        tmp_path, methods=["scratch"], seeds=1, sweeps=[], sources={"nominal": {"config": "nominal.yaml"}},
        transfer={"eval_every": 64, "eval_episodes": 1, "budget": "training_steps"},
    )  # fmt: skip
    assert main(["study", str(path), "--workers", "1"]) == 0
    run = tmp_path / "study/runs/inverted_double_pendulum_v5/scratch/heavy/scratch/seed_0"
    first_curve = json.loads((run / "curve.json").read_text())["points"]
    # A run that died before its first checkpoint: kept aside, then trained anew.
    dead = tmp_path / "study/runs/inverted_double_pendulum_v5/nominal/seed_0"
    shutil.rmtree(dead / "checkpoints")
    (dead / "eval.json").unlink()
    capsys.readouterr()
    assert main(["study", str(path), "--workers", "1", "--set", "budgets.transfer=256"]) == 0
    out = capsys.readouterr().out
    assert "resuming at step 128" in out
    assert json.loads((run / "eval.json").read_text())["num_timesteps"] == 256
    curve = json.loads((run / "curve.json").read_text())["points"]
    assert curve[: len(first_curve)] == first_curve and curve[-1]["step"] == 256
    kept = list((tmp_path / "study" / "interrupted").iterdir())
    assert len(kept) == 1 and (kept[0] / "config.yaml").is_file()
    assert (dead / "eval.json").is_file()


def test_the_numbers_do_not_depend_on_the_worker_count(finished: Path, tmp_path: Path) -> None:
    path = write_study(tmp_path)
    assert main(["study", str(path), "--workers", "1"]) == 0
    assert _numbers(tmp_path / "study") == _numbers(finished.parent / "study")


@pytest.fixture(params=["open", "token"])
def ray_head(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A real Ray head on loopback, as `ray start --head` starts one on a cluster's first machine.

    "open": the machine has no Ray auth token, so the head runs without authentication. "token": the machine
    has one (as after any local `ray.init()`), so `ray start` turns token authentication on and the study must
    send it. Both run under a HOME of their own, so the machine's ~/.ray decides nothing.
    """
    pytest.importorskip("ray")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for name in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    if request.param == "token":
        token = tmp_path / "home" / ".ray" / "auth_token"
        token.parent.mkdir(parents=True)
        token.write_text(uuid.uuid4().hex)
    ray = Path(sys.executable).with_name("ray")
    port = _free_port()
    started = subprocess.run(
        [
            str(ray),
            "start",
            "--head",
            "--node-ip-address=127.0.0.1",
            f"--port={port}",
            "--num-cpus=2",
            "--include-dashboard=false",
            "--disable-usage-stats",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert started.returncode == 0, started.stderr[-2000:]
    try:
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([str(ray), "stop", "--force"], capture_output=True, timeout=120)


def test_the_ray_backend_gives_the_local_pools_numbers(finished: Path, tmp_path: Path, ray_head: str) -> None:
    path = write_study(tmp_path / "ray")
    assert main(["study", str(path), "--backend", "ray", "--address", ray_head]) == 0
    assert _numbers(tmp_path / "ray" / "study") == _numbers(finished.parent / "study")


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"methods": ["scratch", "distill"]}, "methods: 'distill' is neither a method nor a variant"),
        ({"variants": {"finetune": {"method": "freeze"}}}, "variants.finetune: a method's name"),
        ({"variants": {"slow": {"recipe": "plain"}}}, "variants.slow.method: name the transfer method it varies"),
        (
            {"variants": {"slow": {"method": "finetune", "transfer_from": ["sim"]}}},
            "variants.slow.transfer_from: no source named 'sim'",
        ),
        ({"variants": {"slow": {"method": "finetune", "action_std": -1}}}, "variants.slow.action_std"),
        ({"targets": ["moon"]}, "targets: no target 'moon'"),
        ({"env": "NoSuchEnv-v0"}, "env: unknown env 'NoSuchEnv-v0'"),
        ({"seeds": 0}, "seeds"),
        ({"seeds": []}, "seeds"),
        ({"transfer_from": ["sim"]}, "transfer_from: no source named 'sim'"),
        ({"transfer": {"method": "freeze"}}, "transfer.method: the study sets it"),
    ],
)
def test_bad_study_files_fail_in_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], changes: dict[str, Any], message: str
) -> None:
    path = write_study(tmp_path, **changes)
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()


def test_an_unreachable_ray_address_fails_before_any_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("ray")
    path = write_study(tmp_path)
    address = f"127.0.0.1:{_free_port()}"  # nothing listens there
    assert main(["study", str(path), "--backend", "ray", "--address", address]) == 2
    err = capsys.readouterr().err
    assert f"--address {address}: no Ray cluster answers there" in err and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()


def test_a_second_study_process_on_the_same_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_study(tmp_path)
    with study_lock(tmp_path / "study"):
        assert main(["study", str(path), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"another sim2real study (process {os.getpid()}) is running this study" in err
    assert not (tmp_path / "study" / "runs").exists()


@pytest.mark.parametrize("how", ["ctrl-c", "kill", "kill -INT"])
def test_ctrl_c_or_a_kill_keeps_checkpoints_and_the_rerun_resumes(tmp_path: Path, how: str) -> None:
    """Ctrl-C (SIGINT to the process group) or a kill of the coordinator alone (SIGTERM or SIGINT, as for a study
    in the background): every running job checkpoints and stops, no worker trains on, and a rerun resumes."""
    path = write_study(tmp_path, methods=["scratch"], seeds=1, sweeps=[], budgets={"source": 50000, "transfer": 128})
    source = tmp_path / "study/runs/inverted_double_pendulum_v5/nominal/seed_0"
    # A terminal's Ctrl-C: SIGINT to the whole process group (the coordinator and its workers).
    process = subprocess.Popen(
        [sys.executable, "-m", "sim2real", "study", str(path), "--workers", "2"],
        start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while not list(source.glob("checkpoints/step_*")) and time.monotonic() < deadline:
        time.sleep(0.2)
    if how == "ctrl-c":
        os.killpg(process.pid, signal.SIGINT)
    else:
        os.kill(process.pid, signal.SIGTERM if how == "kill" else signal.SIGINT)
    _, err = process.communicate(timeout=120)
    left = b"?"
    for _ in range(30):  # no worker trains on, orphaned (the pool's helpers take a moment to exit)
        left = subprocess.run(["pgrep", "-g", str(process.pid)], capture_output=True).stdout
        if not left:
            break
        time.sleep(0.5)
    assert left == b"", left
    assert process.returncode == 2
    assert "interrupted;" in err and "run the same command again to continue" in err, err
    assert not (source / "eval.json").exists()
    plan = plan_study(path, load_study(path))
    assert plan.status["source nominal"] == "resume" and plan.resume_step["source nominal"] > 0


def test_a_changed_study_does_not_mix_its_runs_with_the_old_ones(
    finished: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["study", str(finished), "--dry-run", "--set", "set=[algo.learning_rate=0.001]"]) == 2
    err = capsys.readouterr().err
    assert "made by another config (algo.learning_rate is 0.0003, the study asks for 0.001)" in err, err


# ------------------------------------------------------------------------------------------- identified sources

IDENTIFIED = {
    "config": "nominal.yaml",
    "identify": {
        "record": {"target": "heavy", "policy": "nominal", "episodes": 10, "stochastic": True},
        "params": [{"quantity": "body_mass", "select": "all", "scale": [0.5, 3.0]}],
    },
}


def test_an_identified_source_trains_on_what_a_recording_on_the_target_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """identify: records the nominal source on the target (every mass x2), fits the mass scale, and the source
    trains on the estimate; transfer runs start from it like from any source, the report shows the fit, and a
    re-run identifies nothing again."""
    sources = {"nominal": {"config": "nominal.yaml"}, "identified": IDENTIFIED}
    path = write_study(tmp_path, sources=sources, methods=["finetune"], seeds=1, sweeps=[])
    assert main(["study", str(path), "--workers", "2"]) == 0
    study = tmp_path / "study"
    trained = yaml.safe_load((study / "runs" / "inverted_double_pendulum_v5" / "identified" / "seed_0" /
                              "config.yaml").read_text())["source"]["dynamics"]  # fmt: skip
    assert trained[0]["quantity"] == "body_mass" and trained[0]["scale"] == pytest.approx(2.0, rel=0.02)
    assert (study / "recordings" / "identified.npz").is_file()
    assert (study / "identification" / "identified" / "identified.yaml").is_file()
    report = json.loads((study / "report" / "study.json").read_text())
    (param,) = report["identified"]["identified"]["parameters"]
    assert param["value"] == pytest.approx(2.0, rel=0.02) and param["identified"]
    assert "## Identified source: identified" in (study / "report" / "study.md").read_text()
    assert any(row["method"] == "identified/finetune" for row in report["after_transfer"])
    capsys.readouterr()
    assert main(["study", str(path)]) == 0
    assert "0 to run" in capsys.readouterr().out


def test_the_loop_is_a_study_method_charged_the_transfer_budget(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """methods: [..., adapt] runs sim2real adapt from each source on the study's transfer budget of target steps,
    beside the other methods; the report scores it as <source>/adapt, and a re-run runs nothing again."""
    path = write_study(tmp_path, sources={"nominal": {"config": "nominal.yaml"}}, methods=["scratch", "adapt"],
                       seeds=1, sweeps=[], budgets={"source": 128, "transfer": 3000})  # fmt: skip
    base = yaml.safe_load((tmp_path / "nominal.yaml").read_text())
    base["adapt"] = {"record_episodes": 2, "simulation_steps": 128, "max_generations": 100,
                     "params": [{"quantity": "body_mass", "select": "all", "scale": [0.5, 3.0]}]}  # fmt: skip
    (tmp_path / "nominal.yaml").write_text(yaml.safe_dump(base))
    assert main(["study", str(path), "--workers", "2"]) == 0
    loop = tmp_path / "study" / "runs" / "inverted_double_pendulum_v5" / "nominal" / "heavy" / "adapt" / "seed_0"
    state = json.loads((loop / "adapt.json").read_text())
    assert state["settings"]["budget"] == 3000 and state["final"]["target_steps"] <= 3000
    report = json.loads((tmp_path / "study" / "report" / "study.json").read_text())
    assert [row["seeds"] for row in report["after_transfer"] if row["method"] == "adapt"] == [1]
    capsys.readouterr()
    assert main(["study", str(path)]) == 0
    assert "0 to run" in capsys.readouterr().out
    # A changed budget is another loop: the study refuses the folder rather than report the old one as its own.
    changed = yaml.safe_load(path.read_text())
    changed["budgets"]["transfer"] = 4000
    path.write_text(yaml.safe_dump(changed, sort_keys=False))
    assert main(["study", str(path)]) == 2
    assert "holds a loop started with other adapt settings" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("identify", "message"),
    [
        ({"record": {"target": "heavy", "policy": "sim"}}, "sources.identified.identify.record.policy: no source named 'sim'"),
        ({"record": {"target": "windy"}}, "sources.identified.identify.record.target: no target 'windy'"),
        ({"params": [{"quantity": "body_mass", "select": "all", "scale": [-1.0, 2.0]}]},
         "sources.identified.identify.params: body_mass/all scale = -1"),
        ({"params": [{"quantity": "body_mass", "select": "nothing", "scale": [0.5, 2.0]}]},
         "sources.identified.identify.params: body_mass/nothing scale"),
        ({"params": []}, "sources.identified.identify.params"),
    ],
)  # fmt: skip
def test_a_bad_identification_fails_in_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], identify: dict[str, Any], message: str
) -> None:
    source = {**IDENTIFIED, "identify": {**IDENTIFIED["identify"], **identify}}
    path = write_study(tmp_path, sources={"nominal": {"config": "nominal.yaml"}, "identified": source})
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()


def test_an_identification_starts_from_a_fixed_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_study(tmp_path, sources={"randomized": {"config": "randomized.yaml"},
                                          "identified": {**IDENTIFIED, "config": "randomized.yaml"}})  # fmt: skip
    data = yaml.safe_load(path.read_text())
    data["sources"]["identified"]["identify"]["record"]["policy"] = "randomized"
    path.write_text(yaml.safe_dump(data))
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert (
        "sources.identified.identify: the source domain of" in err
        and "use a config whose source domain is fixed" in err
    )
    assert not (tmp_path / "study").exists()


def _write_teacher_and_student(folder: Path) -> dict[str, Any]:
    (folder / "teacher.yaml").write_text(yaml.safe_dump({"extends": "randomized.yaml", "privileged": True}))
    (folder / "student.yaml").write_text(yaml.safe_dump({"extends": "randomized.yaml", "history": {"steps": 2},
                                                         "student": {"batch_size": 32}}))  # fmt: skip
    return {"randomized": {"config": "randomized.yaml"}, "teacher": {"config": "teacher.yaml"},
            "student": {"config": "student.yaml", "teacher": "teacher"}}  # fmt: skip


def test_a_study_trains_a_student_after_its_teacher_and_compares_them_with_the_other_sources(
    tmp_path: Path,
) -> None:
    """The student learns from the study's own teacher run; both are evaluated on the target and swept beside
    the memoryless source; transfer goes from every source but the teacher (whose inputs no target run has)."""
    write_study(tmp_path)
    sources = _write_teacher_and_student(tmp_path)
    path = write_study(tmp_path, sources=sources, methods=["finetune"], seeds=1)
    assert main(["study", str(path), "--workers", "2"]) == 0
    study = tmp_path / "study"
    runs = study / "runs" / "inverted_double_pendulum_v5"
    student = yaml.safe_load((runs / "student" / "seed_0" / "config.yaml").read_text())
    assert student["student"]["teacher"] == str(runs / "teacher" / "seed_0")
    report = json.loads((study / "report" / "study.json").read_text())
    assert {"randomized", "teacher", "student"} <= set(report["zero_shot"])
    assert {row["method"] for row in report["after_transfer"]} == {"randomized/finetune", "student/finetune"}
    (sweep,) = report["sweeps"]
    assert set(sweep["grid_iqm"]) == {"randomized", "teacher", "student"}


@pytest.mark.parametrize(("change", "message"), [
    ({"teacher": {"config": "randomized.yaml"}}, "sources.student.teacher: source 'teacher' is not trained with "
                                                 "privileged inputs"),
    ({"student": {"config": "student.yaml", "teacher": "mentor"}}, "sources.student.teacher: 'mentor' is not another "
                                                                   "source"),
    ({"student": {"config": "randomized.yaml", "teacher": "teacher"}}, "has no student section"),
    ({"student": {"config": "student.yaml", "teacher": "teacher",
                  "identify": {**IDENTIFIED["identify"], "record": {"target": "heavy", "policy": "random"}}}},
     "sources.student: a student learns from its teacher's domain"),
])  # fmt: skip
def test_a_student_source_without_a_privileged_teacher_fails_in_one_line_before_any_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: dict[str, Any], message: str
) -> None:
    write_study(tmp_path)
    sources = _write_teacher_and_student(tmp_path) | change
    path = write_study(tmp_path, sources=sources)
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "study").exists()


def test_transfer_from_a_named_teacher_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_study(tmp_path)
    path = write_study(tmp_path, sources=_write_teacher_and_student(tmp_path), transfer_from=["teacher"])
    assert main(["study", str(path)]) == 2
    assert "transfer_from: 'teacher' is a privileged teacher" in capsys.readouterr().err
    assert not (tmp_path / "study").exists()
