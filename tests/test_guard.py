"""The negative-transfer guard and the target-step budget: a transfer run keeps its best policy, rolls back when
training wrecks it, counts every target step, and resumes with all of it; bad input is one line.

A tiny source is trained once per module; a user callback of the kind ``train(callbacks=...)`` takes wrecks the
policy on purpose mid-run (every action saturated), so that the guard has something real to catch.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from rich.console import Console
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from sim2real.config import parse_config
from sim2real.evaluation.scorecard import read_run
from sim2real.modelfile import read_model
from sim2real.models import build_model
from sim2real.runs import RunFolder
from sim2real.training import build_vec_env, load_run_config, normalize_env, train
from sim2real.transfer.guard import Best, Guard, GuardState
from tests.conftest import assert_one_line_error, tiny_config_data

QUIET = Console(quiet=True)
GUARD = {"confirm_episodes": 2, "rollback": {"patience": 1, "margin": 0.2}}


def config_data(root: Path, transfer: dict[str, Any] | None = None, **train_settings: Any) -> dict[str, Any]:
    data = tiny_config_data(root, **train_settings)
    if transfer is not None:
        data["transfer"] = {"recipe": "plain", "eval_every": 128, "eval_episodes": 2, **transfer}
    return data


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(parse_config(config_data(tmp_path_factory.mktemp("source"))), console=QUIET).run_dir


@pytest.fixture(scope="module")
def sac_source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(parse_config(config_data(tmp_path_factory.mktemp("sac"), algo="sac")), console=QUIET).run_dir


class Wreck(BaseCallback):
    """Saturates every action (the action head's bias far past the action bounds) at the first rollout after
    ``at`` steps: a policy that fine-tuning destroyed, on cue."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at
        self.done = False

    def _on_rollout_start(self) -> None:
        if not self.done and self.num_timesteps >= self.at:
            with torch.no_grad():
                head = head_of(self.model.policy)
                head.weight.zero_()
                head.bias.fill_(10.0)
            self.done = True

    def _on_step(self) -> bool:
        return True


def head_of(policy: Any) -> Any:
    """The layer of the mean action: PPO's action_net, SAC's actor.mu."""
    return policy.actor.mu if hasattr(policy, "actor") else policy.action_net


def wrecked_run(root: Path, source: Path, transfer: dict[str, Any], **train_settings: Any) -> Path:
    config = parse_config(config_data(root, {"method": "finetune", **transfer}, total_timesteps=768, **train_settings))
    return train(config, callbacks=[Wreck(at=256)], source=source, console=QUIET).run_dir


def policy_of(path: Path) -> dict[str, torch.Tensor]:
    return read_model(path).policy


# ------------------------------------------------------------------------------------------- the guard in a run


def test_a_wrecked_run_rolls_back_and_ends_on_its_best_policy(tmp_path: Path, source: Path) -> None:
    """Training that destroys the policy is caught: the fall is confirmed, training goes back to the best policy
    with a lower learning rate (transfer.json, TensorBoard), and the run's result is the best policy: model.zip
    is best/'s, a plain stable-baselines3 zip, and eval.json evaluates it."""
    run = RunFolder(wrecked_run(tmp_path, source, {"guard": GUARD}))
    state = json.loads(run.transfer_state.read_text())["guard"]
    assert state["rollbacks"] >= 1 and state["alarms"][0]["applied"]
    assert state["alarms"][0]["reward"] < 0.8 * state["alarms"][0]["best_reward"]
    best = json.loads(run.best.guard_file.read_text())
    assert best == state["best"]
    final, kept = policy_of(run.path), policy_of(run.best.model)
    assert all(torch.equal(final[name], kept[name]) for name in final)
    assert float(final["action_net.bias"].abs().max()) < 10.0  # not the wrecked head
    PPO.load(run.best.model, device="cpu")  # plain stable-baselines3 reads it
    points = run.curve_points()
    assert all(p["kept_reward"] == pytest.approx(best["reward"]) for p in points if p["step"] >= best["step"])
    scalars = EventAccumulator(str(run.tensorboard)).Reload()
    assert scalars.Scalars("transfer/guard/rollbacks")[-1].value == state["rollbacks"]
    assert scalars.Scalars("transfer/guard/lr_factor")[-1].value == pytest.approx(0.5 ** state["rollbacks"])


def test_keep_last_hands_over_what_training_ended_on(tmp_path: Path, source: Path) -> None:
    """keep: last with the rollback off: the run ends on the wrecked policy, and the guard only records the fall."""
    guard = {"confirm_episodes": 2, "rollback": {"patience": 1, "limit": 0}}
    run = RunFolder(wrecked_run(tmp_path, source, {"guard": guard, "keep": "last"}))
    state = json.loads(run.transfer_state.read_text())["guard"]
    assert state["rollbacks"] == 0 and state["alarms"] and not state["alarms"][0]["applied"]
    assert float(policy_of(run.path)["action_net.bias"].min()) > 9.0  # still the wrecked head
    assert run.best.model.is_file()  # the best policy is there for the user all the same


def test_a_run_that_only_improves_keeps_its_last_policy_and_never_rolls_back(tmp_path: Path, source: Path) -> None:
    """Without a fall, the guard changes nothing: no rollback, no alarm, and every point's kept return is the
    best so far on the curve."""
    config = parse_config(config_data(tmp_path, {"method": "finetune", "guard": GUARD}, total_timesteps=512))
    run = RunFolder(train(config, source=source, console=QUIET).run_dir)
    state = json.loads(run.transfer_state.read_text())["guard"]
    assert state["rollbacks"] == 0
    kept = [p["kept_reward"] for p in run.curve_points()]
    assert kept == sorted(kept)  # the kept policy's return never falls


def test_sac_runs_keep_their_best_policy_too(tmp_path: Path, sac_source: Path) -> None:
    """SAC: the wrecked actor is rolled back (with its temperature), and the run hands over its best policy."""
    run = RunFolder(wrecked_run(tmp_path, sac_source, {"guard": GUARD}, algo="sac"))
    state = json.loads(run.transfer_state.read_text())["guard"]
    assert state["alarms"] and state["rollbacks"] >= 1
    final, kept = policy_of(run.path), policy_of(run.best.model)
    assert all(torch.equal(final[name], kept[name]) for name in final)
    assert float(final["actor.mu.bias"].abs().max()) < 10.0


# ------------------------------------------------------------------------------------------- the guard's rules


@pytest.fixture
def guard(tmp_path: Path) -> Guard:
    """A guard on a real model whose confirmations return what the test queues."""
    config = parse_config(config_data(tmp_path, {"method": "scratch"}))
    assert config.transfer is not None and config.transfer.guard is not None
    model = build_model(config, normalize_env(config, build_vec_env(config)))
    confirmations: list[float] = []
    made = Guard(model, config.transfer.guard, True, RunFolder(tmp_path).best, lambda: (confirmations.pop(0), 1, 100))
    made.queue = confirmations  # type: ignore[attr-defined]
    return made


def point(step: int, reward: float) -> dict[str, Any]:
    """A curve point of one episode (the guard's confirmations here are one episode too)."""
    return {"step": step, "target_steps": 2 * step, "mean_reward": reward, "episodes": 1}


def test_a_lucky_point_is_not_taken_for_a_better_policy(guard: Any) -> None:
    """A point above the best is a candidate; its return over its curve and confirmation episodes decides, and
    is what the run reports for the policy it keeps."""
    guard.queue += [100.0, 20.0, 130.0]
    assert guard.judge(point(0, 100.0)) == 100  # the start is the first best, confirmed (100 target steps)
    assert guard.state.best == Best(0, 100, 100.0, 2, 100.0, 100.0)
    guard.judge(point(128, 160.0))  # lucky: confirmed at 20, (160 + 20) / 2 = 90 is below the best's 100
    assert guard.state.best.step == 0
    guard.judge(point(256, 140.0))  # confirmed at 130: 135
    assert guard.state.best == Best(256, 612, 135.0, 2, 140.0, 130.0)
    assert guard.kept_reward(point(384, 50.0)) == 135.0
    assert guard.state.confirmation_steps == 300


def test_a_point_that_does_not_beat_the_best_costs_no_confirmation(guard: Any) -> None:
    guard.queue += [100.0]
    guard.judge(point(0, 100.0))
    assert guard.judge(point(128, 100.0)) == 0 and guard.judge(point(256, 90.0)) == 0


def test_a_fall_the_confirmation_does_not_bear_out_is_averted(guard: Any) -> None:
    guard.queue += [100.0, 120.0]
    guard.judge(point(0, 100.0))
    guard.judge(point(128, 50.0))
    guard.judge(point(256, 50.0))  # patience 2: with its confirmation, 85, within 20% of 100
    assert guard.state.averted == 1 and not guard.pending_rollback and not guard.state.alarms


def test_a_confirmed_fall_rolls_back_to_the_best_weights_statistics_and_a_lower_rate(guard: Any) -> None:
    model = guard.model
    guard.queue += [100.0, 10.0]
    guard.judge(point(0, 100.0))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    venv = model.get_vec_normalize_env()
    mean = venv.obs_rms.mean.copy()
    with torch.no_grad():
        for param in model.policy.parameters():
            param.add_(1.0)
    venv.obs_rms.mean += 3.0
    model.policy.optimizer.state[next(model.policy.parameters())] = {"step": torch.tensor(1.0)}
    guard.judge(point(128, 10.0))
    guard.judge(point(256, 10.0))
    assert guard.pending_rollback and guard.roll_back() and not guard.pending_rollback
    after = model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert (venv.obs_rms.mean == mean).all()
    assert not model.policy.optimizer.state
    assert guard.caution == 0.5 and guard.state.rollbacks == 1


def test_the_guard_never_rolls_back_past_its_limit(guard: Any) -> None:
    guard.settings = guard.settings.model_copy(
        update={"rollback": guard.settings.rollback.model_copy(update={"limit": 0})}
    )
    guard.queue += [100.0, 10.0]
    guard.judge(point(0, 100.0))
    guard.judge(point(128, 10.0))
    guard.judge(point(256, 10.0))
    assert not guard.pending_rollback and guard.state.alarms[0]["applied"] is False


# ------------------------------------------------------------------------------------------- target steps


def test_every_target_step_counts_and_the_budget_is_one_of_target_steps(tmp_path: Path, source: Path) -> None:
    """A point's target_steps is its training steps plus the recalibration, every evaluation so far (its own
    included) and the guard's confirmations; training stops so that the run stays within its budget, with
    room left for the last point; the scorecard's x-axis is target steps."""
    transfer = {"method": "finetune", "normalization": "recalibrate", "recalibration_steps": 64, "guard": GUARD}
    config = parse_config(config_data(tmp_path, transfer, total_timesteps=1024))
    run = RunFolder(train(config, source=source, console=QUIET).run_dir)
    points = run.curve_points()
    state = json.loads(run.transfer_state.read_text())
    evaluations = sum(p["eval_steps"] for p in points)
    assert points[-1]["target_steps"] == (points[-1]["step"] + 64 + evaluations + state["guard"]["confirmation_steps"])
    assert points[-1]["step"] < 1024  # training gave up steps to the evaluations
    assert points[-1]["target_steps"] - points[-1]["eval_steps"] <= 1024
    curve = read_run(run.path).curve
    assert list(curve.steps) == [p["target_steps"] for p in points]
    assert list(curve.returns) == [p["kept_reward"] for p in points]


def test_the_last_points_worst_case_is_reserved_so_the_budget_holds(tmp_path: Path, source: Path) -> None:
    """Where the last point's worst case (its episodes and the guard's confirmation, each to the env's time
    limit) is a small share of the budget, training leaves room for all of it: however long the last
    evaluation's episodes grow, the run stays within its budget of target steps."""
    data = config_data(tmp_path, {"method": "finetune", "guard": GUARD}, total_timesteps=1600)
    data["env_kwargs"] = {"max_episode_steps": 40}  # worst case (2 + 2) x 40 = 160, a tenth of the budget
    run = RunFolder(train(parse_config(data), source=source, console=QUIET).run_dir)
    last = run.curve_points()[-1]
    before_last = last["target_steps"] - last["eval_steps"] - last.get("charged_steps", 0)
    assert before_last + 160 <= 1600
    assert last["target_steps"] <= 1600


def test_a_source_that_works_is_measured_once_and_that_measurement_is_its_first_point(
    tmp_path: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """auto's check that the source works on the target is the curve's step-0 evaluation (the same policy, the
    same seeded episodes), so it is measured and charged once: no steps go to a separate check, and the first
    point is that measurement; a source that does not work is checked as before, on top of that evaluation."""
    from sim2real.transfer.recipe import RecipeCheck

    transfer = {"method": "finetune", "recipe": "auto", "recalibration_steps": 64}
    monkeypatch.setattr(RecipeCheck, "works", property(lambda self: True))
    run = RunFolder(train(parse_config(config_data(tmp_path / "works", transfer, total_timesteps=512)),
                          source=source, console=QUIET).run_dir)  # fmt: skip
    state, first = json.loads(run.transfer_state.read_text()), run.curve_points()[0]
    assert state["recipe_check"]["source_works"] is True
    assert state["recipe_check"]["carried_return"] == pytest.approx(first["mean_reward"])
    assert state["recipe_check"]["episodes"][0] == first["episodes"]
    assert first["step"] == 0 and first["target_steps"] == first["eval_steps"] + first.get("charged_steps", 0)

    monkeypatch.setattr(RecipeCheck, "works", property(lambda self: False))
    run = RunFolder(train(parse_config(config_data(tmp_path / "broken", transfer, total_timesteps=512)),
                          source=source, console=QUIET).run_dir)  # fmt: skip
    state, first = json.loads(run.transfer_state.read_text()), run.curve_points()[0]
    # Before its first point: the evaluation that found it broken, the recalibration and the check's sides.
    assert first["target_steps"] - first["eval_steps"] - first.get("charged_steps", 0) > 64 + first["eval_steps"]


def test_a_short_runs_points_take_the_episodes_its_budget_has_room_for(tmp_path: Path) -> None:
    """Where a point's worst case (5 + 5 episodes of 1,000 steps) is more than a tenth of the budget, one
    episode of each is reserved, and a point takes as many of its episodes as fit the budget left at the time
    limit (one at least), so the budget holds however long the episodes grow; a long run's points take all of
    theirs, and their worst case is reserved whole."""
    from sim2real.transfer.callbacks import EvalCurveCallback

    def curve(budget: int) -> EvalCurveCallback:
        point = {"step": 0, "target_steps": 100, "mean_reward": 0.0, "episodes": 5, "eval_steps": 100}
        made = EvalCurveCallback(lambda **_: None, "d", 0, tmp_path / "curve.json", [point], budget=budget,
                                 point_episodes=(5, 5))  # type: ignore[arg-type,return-value]  # fmt: skip
        made._limit, made._ending = 1000, True  # the last point; a point before it below
        return made

    short = curve(12_500)
    assert short._reserve() == 2000
    assert short.fitting(5, after=True) == 5 and short.fitting(5) == 5  # 12,400 left: room for 12
    short.overhead = 9_900  # 2,500 left
    assert short.fitting(5, after=True) == 1 and short.fitting(5) == 2
    short.overhead = 12_450
    assert short.fitting(5) == 1  # one at least: the reserve kept room for it
    long = curve(200_000)
    assert long._reserve() == 10_000 and long.fitting(5) == 5
    before_last = curve(12_500)
    before_last._ending = False
    before_last.model = type("Model", (), {"n_envs": 4})()  # type: ignore[assignment]
    before_last.overhead = 6_000  # 6,400 left: the last point's 2 episodes and the step after training kept
    assert before_last.fitting(5, after=True) == 3


def test_a_budget_the_recalibration_uses_up_trains_nothing_and_says_so(tmp_path: Path, source: Path) -> None:
    """The recalibration alone takes more target steps than the budget: the run says so, trains nothing, and
    still hands over the measured start (its curve point, best/ and eval.json)."""

    transfer = {"method": "finetune", "normalization": "recalibrate", "recalibration_steps": 512}
    out = io.StringIO()
    config = parse_config(config_data(tmp_path, transfer, total_timesteps=256))
    run = RunFolder(train(config, source=source, console=Console(file=out, width=300)).run_dir)
    assert "the budget of 256 target steps went to the recalibration" in out.getvalue()
    assert [p["step"] for p in run.curve_points()] == [0]
    assert run.best.model.is_file() and run.finished()


def test_a_budget_of_training_steps_trains_them_all(tmp_path: Path, source: Path) -> None:
    config = parse_config(
        config_data(tmp_path, {"method": "finetune", "budget": "training_steps"}, total_timesteps=512)
    )
    run = RunFolder(train(config, source=source, console=QUIET).run_dir)
    assert run.curve_points()[-1]["step"] == 512
    assert run.curve_points()[-1]["target_steps"] > 512


# ------------------------------------------------------------------------------------------- resume


def test_a_resumed_run_keeps_its_best_policy_and_rollbacks(tmp_path: Path, source: Path) -> None:
    """The guard's state (best, rollbacks, confirmations) lives in each checkpoint's transfer.json and the best
    policy in best/: a run interrupted and resumed to a larger budget carries on from both, with no pickle read."""
    folder = wrecked_run(tmp_path, source, {"guard": GUARD})
    run = RunFolder(folder)
    before = json.loads(run.transfer_state.read_text())["guard"]
    config = load_run_config(folder, ["train.total_timesteps=1280"])
    train(config, resume=folder, console=QUIET)
    after = json.loads(run.transfer_state.read_text())["guard"]
    assert after["rollbacks"] >= before["rollbacks"] >= 1
    assert after["best"]["confirmed_reward"] >= before["best"]["confirmed_reward"]
    assert after["confirmation_steps"] > before["confirmation_steps"]


@pytest.mark.parametrize("damage", ["missing", "corrupt"])
def test_a_broken_best_folder_stops_a_resume_with_one_line_and_changes_nothing(
    tmp_path: Path, source: Path, cli: Any, damage: str
) -> None:
    folder = wrecked_run(tmp_path, source, {"guard": GUARD})
    best = RunFolder(folder).best
    if damage == "missing":
        shutil.rmtree(best.path)
    else:
        best.model.write_bytes(b"not a zip")
    files = {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    result = cli("transfer", "--resume", str(folder), "--set", "train.total_timesteps=1024")
    assert_one_line_error(result, "best")
    assert {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()} == files


# ------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("transfer", "needle"),
    [
        ({"keep": "best", "guard": None}, "keep: best needs the guard"),
        ({"guard": {"rollback": {"margin": 1.5}}}, "transfer.guard.rollback.margin"),
        ({"guard": {"confirm_episodes": 0}}, "transfer.guard.confirm_episodes"),
        ({"guard": {"rollback": {"lr_factor": 0}}}, "transfer.guard.rollback.lr_factor"),
        ({"keep": "first"}, "transfer.keep"),
        ({"budget": "steps"}, "transfer.budget"),
    ],
)
def test_a_guard_setting_out_of_range_is_one_line_naming_the_field(
    tmp_path: Path, source: Path, cli: Any, transfer: dict[str, Any], needle: str
) -> None:
    import yaml

    file = tmp_path / "config.yaml"
    file.write_text(yaml.safe_dump(config_data(tmp_path / "runs", {"method": "finetune", **transfer})))
    result = cli("transfer", str(file), "--source", str(source))
    assert_one_line_error(result, "config.yaml", needle)
    assert not (tmp_path / "runs").exists()


def test_guard_state_round_trips_through_transfer_json() -> None:
    state = GuardState(Best(3, 9, 1.5, 6, 1.0, 2.0), 1, 0, 2, 40, [{"step": 3, "applied": True}])
    assert GuardState.of(json.loads(json.dumps(state.as_dict()))) == state


def test_each_side_of_autos_check_takes_a_sixteenth_of_a_budget_and_the_recalibration_its_steps() -> None:
    """The four sides of auto's check take a quarter of the run's target steps in all; the recalibration keeps
    the steps it was given (cut, it changed what fine-tuning reached), within the budget."""
    from sim2real.transfer.recipe import _within

    assert _within(2048, 12_500) == (2048, 781)
    assert _within(2048, None) == (2048, None)
    assert _within(512, 256) == (256, 16)
