"""sim2real as a library: the names it exports, the verbs the CLI is made of, errors that name arguments."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from rich.console import Console
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy

import sim2real
from sim2real.cli import flag_spelling
from sim2real.errors import Sim2RealError
from sim2real.evaluation.scorecard import header, markdown
from tests.conftest import tiny_config_data

QUIET = Console(quiet=True)


def test_every_exported_name_resolves_and_importing_stays_cheap() -> None:
    for name in sim2real.__all__:
        assert getattr(sim2real, name) is not None, name
    assert {"train", "train_transfer", "evaluate", "sweep", "compare", "make_domain_env", "Dynamics"} <= set(
        sim2real.__all__
    )
    # The CLI's one-line errors for a bad flag come before torch is ever imported.
    probe = "import sys, sim2real; sim2real.Sim2RealError; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "False"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("library")
    return sim2real.train(sim2real.parse_config(tiny_config_data(root / "runs")), console=QUIET).run_dir


def test_the_verbs_compose_from_a_config_to_a_scorecard(source: Path, tmp_path: Path) -> None:
    """train -> evaluate -> sweep -> train_transfer (scratch and freeze) -> compare, with no CLI in between."""
    results = sim2real.evaluate(source, episodes=2)
    assert [r.domain for r in results] == ["source", "heavy"]
    axis = sim2real.SweepParam(quantity="body_mass", select="all", scale=[1.0, 2.0], points=2)
    grid = sim2real.sweep([source], [axis], episodes=1)
    assert len(grid.models[0].results) == 2

    config = tmp_path / "transfer.yaml"
    config.write_text(yaml.safe_dump({**tiny_config_data(tmp_path / "runs"), "transfer": {"eval_every": 128}}))
    scratch = sim2real.train_transfer(config, method="scratch", console=QUIET)
    freeze = sim2real.train_transfer(config, source, method="freeze", console=QUIET)
    assert yaml.safe_load((freeze.run_dir / "config.yaml").read_text())["transfer"]["source"] == str(
        (source / "model.zip").resolve()
    )
    card = sim2real.compare([str(scratch.run_dir.parents[2])])
    assert {s.method for s in card.scores} == {"scratch", "freeze"}

    # Against a reference (here the source run stands in for a policy trained on the target): two more columns.
    heavy = {r.domain: r.mean_reward for r in results}["heavy"]
    versus = sim2real.compare([str(scratch.run_dir.parents[2])], reference=source)
    assert versus.references == {"heavy": pytest.approx(heavy, rel=0.5)}
    for s in versus.scores:
        fraction = s.estimates["fraction_of_reference"]
        assert fraction is not None and s.reached_reference is not None
        assert fraction.values == pytest.approx(
            [v / versus.references["heavy"] for v in s.estimates["final_return"].values]
        )
    assert "return / reference" in header(versus) and "steps to 95% of reference" in markdown(versus)


def test_user_callbacks_and_policy_class_reach_stable_baselines3(tmp_path: Path) -> None:
    class Count(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.steps = 0

        def _on_step(self) -> bool:
            self.steps += 1
            return True

    count = Count()
    config = sim2real.parse_config(tiny_config_data(tmp_path / "runs", n_envs=1, normalize=None))
    result = sim2real.train(config, callbacks=[count], policy=ActorCriticPolicy, console=QUIET)
    assert count.steps == result.num_timesteps == 256
    assert PPO.load(result.run_dir / "model.zip").num_timesteps == 256  # a plain stable-baselines3 zip


def test_a_bad_transfer_setup_leaves_no_run_folder(source: Path, tmp_path: Path) -> None:
    """The run folder appears only once the model and its transfer are set up."""
    data = tiny_config_data(tmp_path / "runs")
    data["algo"]["net_arch"] = [16, 16]
    data["transfer"] = {"method": "freeze", "freeze": {"groups": ["policy_net.9"]}}
    with pytest.raises(Sim2RealError, match=r"transfer\.freeze\.groups"):
        sim2real.train(sim2real.parse_config(data), source=source, console=QUIET)
    assert not (tmp_path / "runs").exists()


def test_errors_name_arguments_in_the_library_and_flags_on_the_command_line(source: Path) -> None:
    config = sim2real.parse_config(yaml.safe_load((source / "config.yaml").read_text()))
    with pytest.raises(Sim2RealError) as caught:
        sim2real.train(config, console=QUIET)
    assert f"resume='{source}'" in str(caught.value)
    assert f"--resume {source}" in caught.value.render(flag_spelling)
    assert "--" not in str(caught.value)


def test_export_writes_a_checked_policy_from_the_library(source: Path, tmp_path: Path) -> None:
    result = sim2real.export(source, "torchscript", tmp_path / "policy.pt", check_steps=200)
    assert result.path.is_file() and result.observations == 200 and result.max_abs_difference <= 1e-5
    with pytest.raises(sim2real.Sim2RealError, match="format='tflite': unknown export format"):
        sim2real.export(source, "tflite")


def test_a_wheel_holds_every_package() -> None:
    """A non-editable install (``pip install .``) ships only the packages pyproject lists: each folder of
    sim2real/ and envs/ must be one of them."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    listed = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "sim2real").rglob("__init__.py")}
    found |= {"sim2real_envs" + "".join("." + part for part in p.parent.relative_to(root / "envs").parts)
              for p in (root / "envs").rglob("__init__.py")}  # fmt: skip
    assert found <= listed, f"pyproject.toml leaves out {sorted(found - listed)}"
