"""Privileged teachers and adapting students: the teacher's inputs are the dynamics it is in (on its randomized
source and on any other domain), the student learns to act as it does from history alone, and what neither can
take is refused before anything is written."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from stable_baselines3 import PPO
from stable_baselines3.common.env_checker import check_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sim2real.api import sweep
from sim2real.config import Domain, PrivilegedTerm, SweepParam, parse_config
from sim2real.domain import PrivilegedObservation, TeacherView, make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.student import _Buffer, _fit
from sim2real.training import load_run_config, train
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data

IDP = "InvertedDoublePendulum-v5"
QUIET = Console(quiet=True)
RANDOMIZED = [
    {"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 0.5, "high": 2.0}, "shared": True},
    {"quantity": "actuator_gear", "select": "all", "scale": {"dist": "uniform", "low": 0.5, "high": 1.0}},
    {"quantity": "joint_damping", "select": ["hinge", "hinge2"], "set": {"dist": "uniform", "low": 0.0, "high": 0.5}},
]

pytestmark = pytest.mark.usefixtures("mujoco_log_in_tmp")


def _teacher_data(root: Path) -> dict[str, Any]:
    data = tiny_config_data(root)
    data["source"] = {"dynamics": RANDOMIZED}
    data["privileged"] = True
    data["run"]["experiment"] = "teacher"
    return data


def _student_data(root: Path, teacher: Path | str) -> dict[str, Any]:
    data = tiny_config_data(root)
    data["source"] = {"dynamics": RANDOMIZED}
    data["history"] = {"steps": 2}
    data["student"] = {"teacher": str(teacher), "batch_size": 32}
    data["run"]["experiment"] = "student"
    return data


def test_privileged_true_is_spelled_out_as_the_sources_randomized_quantities() -> None:
    config = parse_config(_teacher_data(Path("runs")))
    assert config.privileged_terms() == (
        PrivilegedTerm(quantity="body_mass", op="scale", select="all", shared=True),
        PrivilegedTerm(quantity="actuator_gear", op="scale", select="all"),
        PrivilegedTerm(quantity="joint_damping", op="set", select=["hinge", "hinge2"]),
    )
    assert parse_config(tiny_config_data(Path("runs"))).privileged_terms() is None


def test_the_teacher_sees_the_draws_of_its_source_and_the_values_of_any_other_domain() -> None:
    config = parse_config(_teacher_data(Path("runs")))
    terms = config.privileged_terms()
    env = make_domain_env(IDP, Domain.model_validate({"dynamics": RANDOMIZED}), seed=(0, 0), privileged=terms)
    assert isinstance(env, PrivilegedObservation)
    assert env.observation_space.shape == (9 + 1 + 1 + 2,)  # shared mass, one actuator, two hinges
    check_env(env)
    for episode in range(3):
        observation, info = env.reset(seed=episode)
        draws = info["randomization"]
        expected = [draws["body_mass/all"], draws["actuator_gear/slide"], draws["joint_damping/hinge"],
                    draws["joint_damping/hinge2"]]  # fmt: skip
        assert np.allclose(observation[9:], expected)
        stepped, *_ = env.step(np.zeros(1))
        assert np.allclose(stepped[9:], expected)  # the same episode, the same dynamics
    # A fixed target: what the teacher is told is that domain's values, in the same units.
    target = Domain.model_validate({"dynamics": [{"quantity": "body_mass", "select": "all", "scale": 2.0},
                                                 {"quantity": "joint_damping", "select": "hinge", "set": 0.3}]})  # fmt: skip
    fixed, _ = make_domain_env(IDP, target, privileged=terms).reset(seed=0)
    assert np.allclose(fixed[9:], [2.0, 1.0, 0.3, 0.05])  # hinge2's nominal damping is 0.05


def test_a_shared_scale_reads_as_its_draw_where_some_elements_have_nothing_to_scale() -> None:
    """Hopper's root joints have no damping: the shared factor is the total against the nominal total."""
    randomized = [{"quantity": "joint_damping", "select": "all", "shared": True,
                   "scale": {"dist": "uniform", "low": 0.5, "high": 2.0}}]  # fmt: skip
    data = tiny_config_data(Path("runs")) | {"env": "Hopper-v5", "targets": {}, "privileged": True,
                                            "source": {"dynamics": randomized}}  # fmt: skip
    terms = parse_config(data).privileged_terms()
    env = make_domain_env("Hopper-v5", Domain.model_validate({"dynamics": randomized}), seed=(0, 0), privileged=terms)
    for episode in range(3):
        observation, info = env.reset(seed=episode)
        assert np.isclose(observation[-1], info["randomization"]["joint_damping/all"])


def test_the_student_env_gives_the_policy_the_observation_and_the_teacher_the_rest() -> None:
    terms = parse_config(_teacher_data(Path("runs"))).privileged_terms()
    env = make_domain_env(IDP, Domain.model_validate({"dynamics": RANDOMIZED}), seed=(0, 0), teacher=terms)
    assert isinstance(env, TeacherView) and env.observation_space.shape == (9,)
    check_env(env)
    observation, info = env.reset(seed=0)
    assert np.array_equal(info["teacher_observation"][:9], observation)
    assert np.isclose(info["teacher_observation"][9], info["randomization"]["body_mass/all"])


@pytest.mark.parametrize(("change", "needle"), [
    ({"source": {}}, "privileged: true, but source.dynamics draws nothing"),
    ({"transfer": {"method": "finetune", "source": "x"}}, "privileged: a teacher trains from scratch"),
])  # fmt: skip
def test_a_teacher_without_randomized_dynamics_or_by_transfer_is_refused_before_any_folder(
    tmp_path: Path, cli: Callable[..., CliResult], change: dict[str, Any], needle: str
) -> None:
    data = _teacher_data(tmp_path / "runs") | change
    (tmp_path / "teacher.yaml").write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(tmp_path / "teacher.yaml")), "teacher.yaml", needle)
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize(("change", "needle"), [
    ({"history": None}, "student: needs history"),
    ({"algo": {"name": "sac", "net_arch": [16]}}, "student: the student is a PPO policy"),
    ({"privileged": True}, "student: a student sees no privileged inputs"),
])  # fmt: skip
def test_a_student_without_history_or_of_another_algorithm_is_refused(
    tmp_path: Path, cli: Callable[..., CliResult], change: dict[str, Any], needle: str
) -> None:
    data = _student_data(tmp_path / "runs", tmp_path / "teacher") | change
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(tmp_path / "student.yaml")), "student.yaml", needle)
    assert not (tmp_path / "runs").exists()


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(parse_config(_teacher_data(tmp_path_factory.mktemp("teacher"))), console=QUIET).run_dir


def test_a_student_whose_teacher_had_no_privileged_inputs_is_refused_before_any_folder(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    plain = train(parse_config(tiny_config_data(tmp_path / "plain")), console=QUIET).run_dir
    for teacher, needle in ((plain, "was not trained with privileged inputs"),
                            (tmp_path / "nowhere", "is not a finished run folder")):  # fmt: skip
        (tmp_path / "student.yaml").write_text(yaml.safe_dump(_student_data(tmp_path / "runs", teacher)))
        assert_one_line_error(cli("train", str(tmp_path / "student.yaml")), "student.teacher", needle)
        assert not (tmp_path / "runs").exists()


def test_a_student_on_another_env_than_its_teacher_is_refused_before_any_folder(
    teacher_run: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    data = _student_data(tmp_path / "runs", teacher_run)
    data["env_kwargs"] = {"reset_noise_scale": 0.2}
    (tmp_path / "student.yaml").write_text(yaml.safe_dump(data))
    assert_one_line_error(cli("train", str(tmp_path / "student.yaml")), "student.teacher", "the same env")
    assert not (tmp_path / "runs").exists()


def test_a_teacher_is_not_exported_or_recorded_for_a_robot(
    teacher_run: Path, tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    out = tmp_path / "policy.onnx"
    assert_one_line_error(cli("export", str(teacher_run), "--out", str(out)), "privileged teacher", "body_mass/all")
    assert not out.exists()
    recording = tmp_path / "recording.npz"
    assert_one_line_error(cli("record", str(teacher_run), "--out", str(recording)), "a privileged teacher")
    assert not recording.exists()


def test_a_student_learns_from_its_teacher_and_is_a_plain_ppo_run(teacher_run: Path, tmp_path: Path) -> None:
    data = _student_data(tmp_path / "runs", teacher_run)
    data["train"]["total_timesteps"] = 512
    result = train(parse_config(data), console=QUIET)
    run = result.run_dir
    assert result.num_timesteps == 512 and {r.domain for r in result.results} == {"source", "heavy"}
    student, teacher = PPO.load(run / "model.zip", device="cpu"), PPO.load(teacher_run / "model.zip", device="cpu")
    assert student.observation_space.shape == (3 * 9 + 2,)  # history only: no privileged input
    # The teacher's action std (the regression does not touch it), so PPO can fine-tune the student.
    assert torch.equal(student.policy.log_std, teacher.policy.log_std)
    own = yaml.safe_load((run / "config.yaml").read_text())
    assert own["student"]["teacher"] == str(teacher_run.resolve())
    events = EventAccumulator(str(run / "tb")).Reload()
    tags = events.Tags()["scalars"]
    assert {"distill/action_mse", "distill/value_mse", "distill/teacher_share"} <= set(tags)
    share = [e.value for e in events.Scalars("distill/teacher_share")]
    assert share[0] == 1.0 and share == sorted(share, reverse=True)  # the teacher acts less and less
    assert (run / "checkpoints").is_dir() and (run / "eval.json").is_file()


def test_a_student_resumes_from_its_checkpoint_with_its_teacher(teacher_run: Path, tmp_path: Path) -> None:
    run = train(parse_config(_student_data(tmp_path / "runs", teacher_run)), console=QUIET).run_dir
    first = PPO.load(run / "model.zip", device="cpu").policy.state_dict()
    resumed = train(load_run_config(run, ["train.total_timesteps=384"]), resume=run, console=QUIET)
    assert resumed.num_timesteps == 384
    after = PPO.load(run / "model.zip", device="cpu").policy.state_dict()
    assert not torch.equal(first["action_net.weight"], after["action_net.weight"])  # it went on learning
    assert torch.equal(first["log_std"], after["log_std"])


def test_a_resume_with_a_larger_budget_does_not_bring_the_teacher_back(teacher_run: Path, tmp_path: Path) -> None:
    """The teacher's share falls over the run's first budget; user callbacks see what they see under learn()."""
    from stable_baselines3.common.callbacks import BaseCallback

    class Seen(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.keys: set[str] = set()
            self.ended = False

        def _on_step(self) -> bool:
            self.keys |= set(self.locals)
            return True

        def _on_training_end(self) -> None:
            self.ended = True

    data = _student_data(tmp_path / "runs", teacher_run)
    data["student"]["teacher_steps"] = 1.0  # over the first 256 steps; over 512 it would still act at 256
    seen = Seen()
    run = train(parse_config(data), console=QUIET, callbacks=[seen]).run_dir
    assert {"infos", "dones", "rewards", "new_obs", "actions"} <= seen.keys and seen.ended
    train(load_run_config(run, ["train.total_timesteps=512"]), resume=run, console=QUIET)
    events = EventAccumulator(str(run / "tb")).Reload()
    share = {e.step: e.value for e in events.Scalars("distill/teacher_share")}
    assert share[128] == 1.0 and share[256] == 0.5  # each round's share, logged at its end
    assert [value for step, value in share.items() if step > 256] == [0.0, 0.0]


def test_the_regression_brings_the_students_actions_to_the_teachers() -> None:
    """On fixed labels, the minibatch regression lowers the action error (the student's update, alone)."""
    config = parse_config(_student_data(Path("runs"), "unused"))
    assert config.student is not None
    env = make_domain_env(IDP, (), history=config.history)
    model = PPO("MlpPolicy", env, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu")
    rng = np.random.default_rng(0)
    buffer = _Buffer(1024, 29, 1)
    obs = rng.normal(size=(1024, 29)).astype(np.float32)
    buffer.add(obs, np.tanh(obs[:, :1] - obs[:, 1:2]), obs[:, 2])
    first, _ = _fit(model.policy, model.policy.optimizer, buffer, config.student, 0.5, 0.5, rng, 256)
    for _ in range(20):
        last, _ = _fit(model.policy, model.policy.optimizer, buffer, config.student, 0.5, 0.5, rng, 256)
    assert last < 0.5 * first


def test_a_teacher_is_swept_on_its_own_inputs_beside_a_policy_without_them(teacher_run: Path, tmp_path: Path) -> None:
    plain = train(parse_config(tiny_config_data(tmp_path / "plain")), console=QUIET).run_dir
    axis = SweepParam(quantity="body_mass", select="all", scale=[1.0, 2.0], points=2)
    result = sweep([plain, teacher_run], [axis], episodes=1)
    assert len(result.models) == 2 and all(len(m.results) == 2 for m in result.models)


def test_a_privileged_env_needs_a_domain_env_and_quantities() -> None:
    import gymnasium as gym

    with pytest.raises(Sim2RealError, match="domain env"):
        PrivilegedObservation(gym.make(IDP), [PrivilegedTerm(quantity="body_mass", op="scale", select="all")])
