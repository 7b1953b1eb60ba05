"""The ``sim2real`` command: bad input ends in one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sim2real.cli import main
from tests.conftest import ROOT, CliResult, assert_one_line_error, run_cli_process, tiny_config_data

Cli = Callable[..., CliResult]


def write_config(tmp_path: Path, **changes: object) -> Path:
    data = tiny_config_data(tmp_path / "runs")
    data.update(changes)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(
    ("content", "needles"),
    [
        ("env: [unclosed", ["bad.yaml", "malformed YAML at line 1"]),
        ("- just\n- a list\n", ["bad.yaml", "expected a mapping"]),
        ("env: Hopper-v5\nalgo: {name: dqn}\n", ["bad.yaml", "algo", "'ppo'", "'sac'"]),
        ("env: Hopper-v5\nalgo: {name: ppo, n_step: 8}\n", ["algo.n_step: unknown key", "n_steps"]),
        (
            "env: Hopper-v5\nalgo: {name: ppo}\ntrain: {n_envs: 0}\n",
            ["train.n_envs", "greater than or equal to 1"],
        ),
    ],
)
def test_invalid_config_files(tmp_path: Path, content: str, needles: list[str], cli: Cli) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(content)
    assert_one_line_error(cli("train", str(path)), *needles)


def test_missing_config_file(tmp_path: Path) -> None:
    assert_one_line_error(run_cli_process("train", str(tmp_path / "nope.yaml")), "nope.yaml", "no such config file")


def test_unknown_env_id(tmp_path: Path) -> None:
    result = run_cli_process("train", str(write_config(tmp_path, env="Hoper-v5")))
    assert_one_line_error(result, "unknown env 'Hoper-v5'", "Hopper-v5")
    assert not (tmp_path / "runs").exists(), "nothing may be written for a config that cannot run"


def test_unknown_element_lists_valid_names(tmp_path: Path, cli: Cli) -> None:
    targets = {"t": {"dynamics": [{"quantity": "body_mass", "select": "pole3", "scale": 2.0}]}}
    config = write_config(tmp_path, targets=targets)
    result = cli("train", str(config))
    assert_one_line_error(result, f"{config}: targets.t: ", "unknown body 'pole3'", "cart, pole, pole2")
    assert not (tmp_path / "runs").exists()


def test_invalid_physical_value_names_the_parameter(tmp_path: Path, cli: Cli) -> None:
    targets = {"t": {"dynamics": [{"quantity": "geom_friction", "select": "cart", "offset": -5.0}]}}
    config = write_config(tmp_path, targets=targets)
    result = cli("train", str(config))
    assert_one_line_error(result, f"{config}: targets.t: ", "geom_friction of geom 'cart'", ">= 0")


def test_override_of_a_field(tmp_path: Path, cli: Cli) -> None:
    result = cli("train", str(write_config(tmp_path)), "--set", "train.n_envs=abc")
    assert_one_line_error(result, "train.n_envs", "integer")
    result = cli("train", str(write_config(tmp_path)), "--set", "train.n_envs")
    assert_one_line_error(result, "expected FIELD=VALUE")


def test_unwritable_run_folder(tmp_path: Path, cli: Cli) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the run folder should go")
    result = cli("train", str(write_config(tmp_path)), "--set", f"run.root={blocker}")
    assert_one_line_error(result, "cannot write run folder", str(blocker))
    assert blocker.read_text() == "a file where the run folder should go"


def test_resume_of_a_missing_or_non_run_folder(tmp_path: Path, cli: Cli) -> None:
    assert_one_line_error(cli("train", "--resume", str(tmp_path / "gone")), "no such run folder")
    assert_one_line_error(cli("train", "--resume", str(tmp_path)), "not a run folder")


def test_train_then_refuse_to_overwrite_then_resume(tmp_path: Path, cli: Cli) -> None:
    config = write_config(tmp_path)
    first = cli("train", str(config))
    assert first.returncode == 0, first.stderr
    assert "tensorboard --logdir" in first.stdout
    assert "heavy" in first.stdout  # the evaluation table lists every target
    again = cli("train", str(config))
    assert_one_line_error(again, "already holds a run", "--resume")
    run = tmp_path / "runs" / "inverted_double_pendulum_v5" / "tiny" / "seed_0"
    resumed = cli("train", "--resume", str(run), "--set", "train.total_timesteps=512")
    assert resumed.returncode == 0, resumed.stderr
    assert "trained 512 steps" in resumed.stdout


def test_friction_that_cannot_take_effect_is_warned_on_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tiny_config_data(tmp_path / "runs")
    data["env"] = "Hopper-v5"
    data["targets"] = {"icy_floor": {"dynamics": [{"quantity": "geom_friction", "select": "floor", "scale": 0.2}]}}
    data["train"]["total_timesteps"] = 128
    path = tmp_path / "hopper.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["train", str(path)]) == 0
    err = capsys.readouterr().err
    assert "friction of geom 'floor'" in err and "'foot_geom' (2)" in err


def test_train_scripts_exist_for_every_config_folder() -> None:
    configs = {p.name for p in (ROOT / "configs").iterdir() if (p / "nominal.yaml").is_file()}
    scripts = {p.stem.removeprefix("train_") for p in (ROOT / "scripts").glob("train_*.py")}
    assert configs <= scripts
    assert {"inverted_double_pendulum", "hopper", "half_cheetah", "walker2d"} <= configs


def test_train_script_uses_its_env_config(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "train_block_push.py"),
            "--no-progress",
            "--set",
            f"run.root={tmp_path}",
            "--set",
            "train.total_timesteps=256",
            "--set",
            "eval.episodes=1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "sim2real_block_push_v0" / "nominal" / "seed_0"
    assert (run / "model.zip").is_file()
    assert "scripts/train_block_push.py" in (run / "command.txt").read_text()


@pytest.mark.parametrize(
    ("source", "needles"),
    [
        (
            {
                "dynamics": [
                    {"quantity": "body_mas", "select": "all", "scale": {"dist": "uniform", "low": 1, "high": 2}}
                ]
            },
            ["source.dynamics.0.quantity", "unknown quantity 'body_mas'"],
        ),
        (
            {
                "dynamics": [
                    {"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 2, "high": 1}}
                ]
            },
            ["source.dynamics.0", "inverted bounds, low 2.0 > high 1.0"],
        ),
        (
            {
                "dynamics": [
                    {"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 0, "high": 2}}
                ]
            },
            ["low end is invalid", "body_mass of body 'cart' would be 0.0", "> 0"],
        ),
        (
            {
                "dynamics": [
                    {
                        "quantity": "geom_friction",
                        "select": "all",
                        "offset": {"dist": "normal", "mean": 0, "std": 1, "low": -5, "high": 1},
                    }
                ]
            },
            ["low end is invalid", "geom_friction of geom", ">= 0"],
        ),
        (
            {
                "dynamics": [
                    {"quantity": "body_mass", "select": "pole3", "scale": {"dist": "uniform", "low": 1, "high": 2}}
                ]
            },
            ["unknown body 'pole3'", "cart, pole, pole2"],
        ),
        ({"reality_gap": {"action_latency": {"steps": 1000}}}, ["action_latency.steps", "1000 steps"]),
    ],
)
def test_invalid_randomization_is_refused_before_training(
    tmp_path: Path, source: dict, needles: list[str], cli: Cli
) -> None:
    result = cli("train", str(write_config(tmp_path, source=source)))
    assert_one_line_error(result, *needles)
    assert not (tmp_path / "runs").exists()


def test_resume_of_a_run_without_its_command_history_still_works(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    assert run_cli_process("train", str(config)).returncode == 0
    run = tmp_path / "runs" / "inverted_double_pendulum_v5" / "tiny" / "seed_0"
    (run / "command.txt").unlink()
    resumed = run_cli_process("train", "--resume", str(run), "--set", "train.total_timesteps=512")
    assert resumed.returncode == 0, resumed.stderr
    assert (run / "command.txt").read_text().count("--resume") == 1


@pytest.mark.parametrize(
    ("command", "flag", "kind"),
    [
        (["evaluate", "MODEL"], "--json", "file"),
        (["evaluate", "MODEL"], "--csv", "file"),
        (
            ["sweep", "MODEL", "--param", "{quantity: body_mass, select: all, scale: [1, 2], points: 2}"],
            "--out",
            "folder",
        ),
        (["compare", "MODEL"], "--out", "folder"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, cli: Cli, command: list[str], flag: str, kind: str
) -> None:
    """A file where a folder goes, a path under a file, a name too long: one line naming the user's path (not a
    temporary file's), before the model is even read."""
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "a_folder").mkdir()
    model = str(tmp_path / "no_model_needed")  # the path is checked first
    args = [model if a == "MODEL" else a for a in command]
    wrong = tmp_path / ("a_folder" if kind == "file" else "a_file")
    for path, needle in (
        (wrong, f"is a {'folder' if kind == 'file' else 'file'}"),
        (tmp_path / "a_file" / "x", "a_file is a file, so nothing can be written under it"),
        (tmp_path / ("n" * 300), "longer than a file name can be"),
    ):
        assert_one_line_error(cli(*args, flag, str(path)), f"{flag} {path}", needle)
    assert (tmp_path / "a_file").read_text() == "mine" and not any((tmp_path / "a_folder").iterdir())


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_on_the_command_line_are_usage_errors(cli: Cli, value: str) -> None:
    """argparse's float() takes nan and inf; a number option refuses them (usage, then the error, exit 2)."""
    result = cli("compare", "runs", f"--threshold={value}")
    assert result.returncode == 2 and "expected a finite number" in result.stderr
