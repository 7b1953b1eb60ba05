"""The ``sim2real`` command: bad input ends in one line on stderr, exit code 2, no traceback, nothing written."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from sim2real.cli import main, run_train_script
from sim2real.config import load_config
from sim2real.identification import read_trajectories
from sim2real.io import write_text
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
    assert "sim2real tensorboard" in first.stdout
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


SWEEP_AXIS = "{quantity: body_mass, select: all, scale: [1, 2], points: 2}"


@pytest.mark.parametrize(
    ("command", "flag", "kind"),
    [
        (["evaluate", "MODEL"], "--json", "file"),
        (["evaluate", "MODEL"], "--csv", "file"),
        (["sweep", "MODEL", "--param", SWEEP_AXIS], "--out", "folder"),
        (["sweep", "MODEL", "--param", SWEEP_AXIS], "--logdir", "folder"),
        (["compare", "MODEL"], "--out", "folder"),
        (["study", "MODEL"], "--output", "folder"),
        (["export", "MODEL"], "--out", "file"),
        (["record", "MODEL"], "--out", "file"),
        (["identify", "MODEL", "--param", "{quantity: body_mass, select: all, scale: [1, 2]}"], "--out", "folder"),
    ],
)
def test_an_output_path_that_cannot_be_written_is_refused_before_any_work(
    tmp_path: Path, cli: Cli, command: list[str], flag: str, kind: str
) -> None:
    """A file where a folder goes, a path under a file, a name too long, a folder where nothing can be made: one
    line naming the user's path (not a temporary file's), before the model is even read."""
    (tmp_path / "a_file").write_text("mine")
    (tmp_path / "a_folder").mkdir()
    model = str(tmp_path / "no_model_needed")  # the path is checked first
    args = [model if a == "MODEL" else a for a in command]
    wrong = tmp_path / ("a_folder" if kind == "file" else "a_file")
    cases = [
        (wrong, f"is a {'folder' if kind == 'file' else 'file'}"),
        (tmp_path / "a_file" / "x", "a_file is a file, so nothing can be written under it"),
        (tmp_path / ("n" * 300), "longer than a file name can be"),
    ]
    if Path("/proc/self").is_dir():  # Linux: permission bits let root "write" in /proc, where no file can be made
        cases.append((Path("/proc") / ("s2r.npz" if kind == "file" else "s2r_out"), "cannot write in /proc"))
    for path, needle in cases:
        assert_one_line_error(cli(*args, flag, str(path)), f"{flag} {path}", needle)
    assert (tmp_path / "a_file").read_text() == "mine" and not any((tmp_path / "a_folder").iterdir())


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc, where no file can be made")
def test_a_write_that_fails_names_the_path_given_not_a_temporary_file() -> None:
    with pytest.raises(OSError) as caught:
        write_text(Path("/proc/s2r.csv"), "domain\n")
    assert caught.value.filename == "/proc/s2r.csv"


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_on_the_command_line_are_usage_errors(cli: Cli, value: str) -> None:
    """argparse's float() takes nan and inf; a number option refuses them (usage, then the error, exit 2)."""
    result = cli("compare", "runs", f"--threshold={value}")
    assert result.returncode == 2 and "expected a finite number" in result.stderr


# ------------------------------------------------------------------------------------------- scripts/train_<env>.py


def test_a_train_script_says_its_own_name_and_default_config() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "train_hopper.py"), "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: train_hopper.py ")
    assert "default: configs/hopper/nominal.yaml" in done.stdout
    assert "inverted_double_pendulum" not in done.stdout


def test_a_train_script_takes_its_config_after_an_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``train_hopper.py --set ... CONFIG`` trains CONFIG, as ``sim2real train --set ... CONFIG`` does."""
    config = write_config(tmp_path)
    assert run_train_script("hopper", ["--set", "train.total_timesteps=128", str(config)]) == 0, capsys.readouterr()
    run = tmp_path / "runs" / "inverted_double_pendulum_v5" / "tiny" / "seed_0"
    assert "trained 128 steps" in capsys.readouterr().out and (run / "model.zip").is_file()


# ------------------------------------------------------------------------------------------- --set in every verb

LIGHT = "targets.light={dynamics: [{quantity: body_mass, select: all, scale: 0.5}]}"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny run folder (normalized observations), its config file, and a plain stable-baselines3 zip (raw
    observations) that the normalizing config refuses."""
    import gymnasium as gym
    from stable_baselines3 import PPO

    import sim2real

    folder = tmp_path_factory.mktemp("verbs")
    config = folder / "tiny.yaml"
    config.write_text(yaml.safe_dump(tiny_config_data(folder / "runs")))
    run = sim2real.train(sim2real.load_config(config)).run_dir
    plain = PPO("MlpPolicy", gym.make("InvertedDoublePendulum-v5"), policy_kwargs={"net_arch": [16]}, device="cpu")
    plain.save(folder / "plain.zip")
    return {"run": run, "config": config, "plain": folder / "plain.zip"}


def test_evaluate_set_lets_a_plain_zip_run_on_a_normalizing_config(models: dict[str, Path], cli: Cli) -> None:
    args = ["evaluate", str(models["plain"]), "--config", str(models["config"]), "--episodes", "1"]
    assert_one_line_error(cli(*args), "train.normalize: null")
    done = cli(*args, "--set", "train.normalize=null")
    assert done.returncode == 0, done.stderr
    assert "heavy" in done.stdout


def test_evaluate_set_overrides_a_run_folders_config_for_this_command_only(
    models: dict[str, Path], tmp_path: Path, cli: Cli
) -> None:
    saved = (models["run"] / "config.yaml").read_bytes()
    out = tmp_path / "eval.json"
    done = cli("evaluate", str(models["run"]), "--set", "eval.episodes=3", "--set", LIGHT, "--json", str(out))
    assert done.returncode == 0, done.stderr
    domains = json.loads(out.read_text())["domains"]
    assert set(domains) == {"source", "heavy", "light"} and len(domains["light"]["returns"]) == 3
    assert (models["run"] / "config.yaml").read_bytes() == saved
    assert_one_line_error(cli("evaluate", str(models["run"]), "--set", "eval.episodes"), "--set", "FIELD=VALUE")


def test_sweep_set_adds_the_domain_the_shifts_apply_to(models: dict[str, Path], tmp_path: Path, cli: Cli) -> None:
    saved = (models["run"] / "config.yaml").read_bytes()
    args = ["sweep", str(models["run"]), "--param", SWEEP_AXIS, "--episodes", "1", "--domain", "light"]
    args += ["--out", str(tmp_path / "sweep"), "--logdir", str(tmp_path / "tb")]
    assert_one_line_error(cli(*args), "--domain light: no such domain")
    done = cli(*args, "--set", LIGHT)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "sweep" / "sweep.json").is_file()
    assert (models["run"] / "config.yaml").read_bytes() == saved


def test_record_set_adds_the_domain_recorded_on(models: dict[str, Path], tmp_path: Path, cli: Cli) -> None:
    saved = (models["run"] / "config.yaml").read_bytes()
    args = ["record", str(models["run"]), "--domain", "light", "--episodes", "1", "--out", str(tmp_path / "r.npz")]
    assert_one_line_error(cli(*args), "no domain 'light'")
    done = cli(*args, "--set", LIGHT)
    assert done.returncode == 0, done.stderr
    assert read_trajectories(tmp_path / "r.npz").header["domain"] == "light"
    assert (models["run"] / "config.yaml").read_bytes() == saved


def test_export_set_lets_a_plain_zip_be_exported(models: dict[str, Path], tmp_path: Path, cli: Cli) -> None:
    out = tmp_path / "policy.pt"
    args = ["export", str(models["plain"]), "--config", str(models["config"]), "--format", "torchscript"]
    args += ["--out", str(out), "--check-steps", "50"]
    assert_one_line_error(cli(*args), "train.normalize: null")
    assert not out.exists()
    done = cli(*args, "--set", "train.normalize=null")
    assert done.returncode == 0, done.stderr
    assert out.is_file()


def test_identify_set_starts_from_the_overridden_config_and_writes_it(
    models: dict[str, Path], tmp_path: Path, cli: Cli
) -> None:
    """The fit starts from the overridden source, and identified.yaml holds the overridden config (not an
    ``extends:`` of the file, which would lose the overrides)."""
    damping = "source.dynamics=[{quantity: joint_damping, select: [hinge, hinge2], set: 0.2}]"
    overrides = ["--set", damping, "--set", "algo.net_arch=[8]"]
    recording = tmp_path / "r.npz"
    done = cli("record", "random", "--config", str(models["config"]), *overrides, "--episodes", "20",
               "--out", str(recording))  # fmt: skip
    assert done.returncode == 0, done.stderr
    out = tmp_path / "identified"
    done = cli("identify", str(recording), "--config", str(models["config"]), *overrides,
               "--param", "{quantity: body_mass, select: [pole, pole2], scale: [0.5, 2.0]}", "--out", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr
    identified = load_config(out / "identified.yaml")
    assert identified.algo.net_arch == [8]
    assert [change.quantity for change in identified.source.dynamics] == ["joint_damping", "body_mass"]


def test_an_override_s_error_names_the_override_not_the_file(cli: Cli, tmp_path: Path) -> None:
    result = cli("train", "configs/inverted_double_pendulum/nominal.yaml", "--set", "run.experiment=" + "e" * 300,
                 "--set", f"run.root={tmp_path}")  # fmt: skip
    assert_one_line_error(result, "nominal.yaml: run.experiment (--set run.experiment='eeee", "(300 characters)",
                          "at most 100 characters")  # fmt: skip
    assert not any(tmp_path.iterdir())
