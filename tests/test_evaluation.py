"""Evaluation: transfer metrics, the scorecard, the batched evaluator, and the evaluate, sweep and compare commands.

Metrics and the scorecard run on synthetic curves with answers worked out by hand. The evaluator runs an
untrained 16-unit PPO on InvertedDoublePendulum (episodes of ~10 steps whose returns differ per reset seed). The
commands run in-process (``main([...])``) on one tiny trained source and four tiny transfer runs made once per
module.
"""

from __future__ import annotations

import csv
import json
import shutil
from functools import partial
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
import yaml
from rich.console import Console
from scipy import stats
from stable_baselines3 import PPO
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from sim2real.cli import main
from sim2real.config import parse_config
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.dynamics import Change
from sim2real.errors import Sim2RealError
from sim2real.evaluation import evaluate_domain, evaluation_seed, normalizer_of, write_results
from sim2real.evaluation.batched import ObservationNormalizer, episode_seeds, run_episodes
from sim2real.evaluation.metrics import (
    Curve,
    area,
    common_end,
    estimate,
    final_return,
    iqm,
    stratified_ci,
    time_to_threshold,
)
from sim2real.evaluation.scorecard import HEADER, Run, markdown, score
from sim2real.modelfile import normalization_state
from sim2real.training import train
from sim2real.transfer.callbacks import NegativeTransferCallback
from tests.conftest import CliResult, assert_one_line_error, tiny_config_data

QUIET = Console(quiet=True)
ENV = "InvertedDoublePendulum-v5"
TARGET = "heavy"  # the tiny config's one target


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Any:
    """16-unit networks gain nothing from threads; on a busy 2-core machine torch's pool only waits."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_idp(spec: DomainSpec | tuple = ()) -> gym.Env:
    return make_domain_env(ENV, spec, seed=0, check_friction=False)


@pytest.fixture(scope="module")
def untrained() -> PPO:
    """A deterministic but untrained policy: episodes end after ~10 steps with returns that vary by seed."""
    return PPO("MlpPolicy", make_idp(), policy_kwargs={"net_arch": [16]}, n_steps=64, seed=0, device="cpu")


@pytest.fixture(scope="module")
def source_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny trained source (normalized observations), the model the commands evaluate and sweep."""
    root = tmp_path_factory.mktemp("source")
    return train(parse_config(tiny_config_data(root)), console=QUIET).run_dir


@pytest.fixture(scope="module")
def transfer_runs(tmp_path_factory: pytest.TempPathFactory, source_run: Path) -> Path:
    """scratch and finetune on 'heavy', 2 seeds each, a learning-curve point every update; returns the runs root."""
    root = tmp_path_factory.mktemp("transfer")
    for method in ("scratch", "finetune"):
        for seed in (0, 1):
            data = tiny_config_data(root, seed=seed)
            data["transfer"] = {"method": method, "eval_every": 128, "eval_episodes": 2}
            train(parse_config(data), source=None if method == "scratch" else source_run, console=QUIET)
    return root


def target_folder(root: Path) -> Path:
    return root / "inverted_double_pendulum_v5" / "tiny" / TARGET


def write_config(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    """Runs ``sim2real ARGS`` in this process: (exit code, stdout, stderr)."""
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def events(folder: Path) -> EventAccumulator:
    accumulator = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    accumulator.Reload()
    return accumulator


# ------------------------------------------------------------------------------------------- 1. metrics


def test_final_return_is_the_mean_of_the_last_points() -> None:
    """Asymptotic performance: the last evaluation, or the mean of the last few to smooth noise."""
    curve = Curve.of([0, 10, 20, 30], [1.0, 2.0, 4.0, 8.0])
    assert final_return(curve) == 8.0
    assert final_return(curve, points=2) == 6.0
    assert final_return(curve, points=4) == 3.75


def test_time_to_threshold_counts_ties_and_reports_never_as_none() -> None:
    """The first evaluated step at or above the threshold; a curve that never gets there has no time."""
    curve = Curve.of([0, 10, 20, 30], [5.0, 8.0, 10.0, 10.0])
    assert time_to_threshold(curve, 10.0) == 20.0  # exactly equal counts as reached
    assert time_to_threshold(curve, 9.0) == 20.0
    assert time_to_threshold(curve, 8.0) == 10.0
    assert time_to_threshold(curve, 10.5) is None
    assert time_to_threshold(curve, 5.0) == 0.0  # reached before any training
    assert time_to_threshold(curve, -100.0) == 0.0


def test_area_is_the_mean_of_the_piecewise_linear_curve() -> None:
    """Area under the interpolated curve divided by the step range, worked out by hand for a ramp and a plateau."""
    curve = Curve.of([0, 10, 20], [0.0, 10.0, 10.0])
    assert area(curve, 20) == pytest.approx((50 + 100) / 20)  # 7.5
    assert area(curve, 10) == pytest.approx(50 / 10)  # 5.0
    assert area(curve, 15) == pytest.approx((50 + 50) / 15)  # ramp, then half the plateau
    assert area(curve, 5) == pytest.approx(12.5 / 5)  # half the ramp: up to 5 at step 5
    assert area(curve, 1_000) == area(curve, 20)  # until beyond the curve is clipped to its end
    assert area(curve, 0) == 0.0  # no range: the start return


def test_common_end_is_the_last_step_every_curve_reaches() -> None:
    """Curves of unequal lengths are compared up to the shortest."""
    curves = [Curve.of([0, 100, 200], [0, 1, 2]), Curve.of([0, 150, 300], [0, 1, 2]), Curve.of([0, 250], [0, 1])]
    assert common_end(curves) == 200.0


@pytest.mark.parametrize(
    ("steps", "returns"),
    [([0, 10, 10], [1, 2, 3]), ([0, 20, 10], [1, 2, 3]), ([0, 10], [1, 2, 3]), ([], [])],
    ids=["repeated step", "decreasing step", "length mismatch", "empty"],
)
def test_curve_refuses_malformed_points(steps: list[float], returns: list[float]) -> None:
    """A learning curve with steps out of order or returns that do not line up is refused, not misread."""
    with pytest.raises(ValueError, match="curve"):
        Curve.of(steps, returns)


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    """The interquartile mean ignores the best and worst quarter of seeds."""
    assert iqm(np.arange(1, 9)) == 4.5  # mean of 3, 4, 5, 6
    assert iqm([1, 2, 3, 4, 5, 6, 7, 1000]) == 4.5  # one outlier seed changes nothing
    assert iqm([[1, 2, 3, 4], [5, 6, 7, 8]], axis=1) == pytest.approx([2.5, 6.5])


def test_stratified_ci_without_spread() -> None:
    """No interval without two values in a group; identical values give a point interval."""
    assert stratified_ci([[1.0], [2.0], [3.0]]) is None
    assert stratified_ci([[]]) is None
    assert stratified_ci([[4.0, 4.0, 4.0], [4.0, 4.0]]) == (4.0, 4.0)


def test_stratified_ci_contains_the_iqm_and_is_reproducible() -> None:
    """The interval brackets the point estimate and a given bootstrap seed gives the same interval."""
    values = [3.0, 9.0, 4.0, 7.0, 5.0, 12.0, 1.0, 6.0]
    low, high = stratified_ci([values], seed=3)
    assert low < iqm(values) < high
    assert min(values) <= low and high <= max(values)
    assert stratified_ci([values], seed=3) == (low, high)


def test_stratified_ci_resamples_within_each_group() -> None:
    """Seeds are resampled within their task: two tasks of constant returns (0 and 10) always resample to the
    same pooled set, so the interval is a point, where a pooled bootstrap would mix the tasks freely."""
    groups = [[0.0, 0.0, 0.0, 0.0], [10.0, 10.0, 10.0, 10.0]]
    assert stratified_ci(groups) == (5.0, 5.0)
    pooled = stats.bootstrap(
        (np.concatenate(groups),),
        lambda x, axis=-1: iqm(x, axis=axis),
        method="percentile",
        vectorized=True,
        rng=np.random.default_rng(0),
    ).confidence_interval
    assert pooled.high - pooled.low >= 5.0


def test_stratified_ci_accepts_a_group_with_a_single_seed() -> None:
    """A target run with one seed next to a target with three still gives an interval over the three."""
    interval = stratified_ci([[1.0, 2.0, 3.0], [5.0]])
    assert interval is not None and interval[0] <= iqm([1.0, 2.0, 3.0, 5.0]) <= interval[1]


def test_estimate_below_needs_the_whole_interval_below() -> None:
    """Negative transfer is flagged only when the entire CI lies below the reference; one seed never is."""
    spread = estimate([[0.2, 0.4, 0.5, 0.6, 0.8]])
    assert spread.ci is not None
    assert spread.values == [0.2, 0.4, 0.5, 0.6, 0.8]
    assert spread.below(1.0)
    assert not spread.below(0.6)  # the point estimate is below, the interval is not
    single = estimate([[0.1]])
    assert single.ci is None and single.iqm == 0.1
    assert not single.below(1.0)


# ------------------------------------------------------------------------------------------- 2. scorecard


def synthetic(method: str, curves: list[list[float]], steps: tuple[float, ...] = (0, 100, 200)) -> list[Run]:
    return [
        Run(Path(f"runs/{TARGET}/{method}/seed_{seed}"), TARGET, method, "tiny", seed, Curve.of(steps, returns))
        for seed, returns in enumerate(curves)
    ]


# Scratch: starts IQM 10, final IQM 110 (threshold 99), areas 50, 60, 70 (IQM 60).
SCRATCH = synthetic("scratch", [[0, 50, 100], [10, 60, 110], [20, 70, 120]])
# Better: starts 50, 60, 70 (jumpstart 40, 50, 60); reaches 99 at step 100; areas 92.5, 102.5, 112.5.
BETTER = synthetic("finetune", [[50, 100, 120], [60, 110, 130], [70, 120, 140]])
# Worse: never reaches 99; areas 5, 6, 7.
WORSE = synthetic("freeze", [[0, 5, 10], [1, 6, 11], [2, 7, 12]])


def scores_by_method(runs: list[Run], **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    card = score(runs, **kwargs)
    return card, {s.method: s for s in card.scores}


def test_scorecard_jumpstart_is_start_minus_scratch_start() -> None:
    """Jumpstart: each seed's return before target training minus the IQM of scratch's."""
    _, by = scores_by_method(SCRATCH + BETTER + WORSE)
    assert by["finetune"].estimates["jumpstart"].values == [40.0, 50.0, 60.0]
    assert by["finetune"].estimates["jumpstart"].iqm == 50.0
    assert by["freeze"].estimates["jumpstart"].values == [-10.0, -9.0, -8.0]
    assert by["scratch"].estimates["jumpstart"].values == [-10.0, 0.0, 10.0]


def test_scorecard_default_threshold_is_a_fraction_of_scratch_final() -> None:
    """Without --threshold the level is 0.9 x scratch's final IQM, or the fraction given."""
    card, _ = scores_by_method(SCRATCH + BETTER)
    assert card.thresholds == {TARGET: pytest.approx(0.9 * 110)}
    card, _ = scores_by_method(SCRATCH + BETTER, threshold_fraction=0.5)
    assert card.thresholds == {TARGET: pytest.approx(55.0)}
    card, _ = scores_by_method(SCRATCH + BETTER, threshold=42.0)
    assert card.thresholds == {TARGET: 42.0}


def test_scorecard_unreached_seeds_count_as_the_budget() -> None:
    """A seed that never reaches the threshold counts as its whole budget, and ``reached`` says how many did."""
    mixed = synthetic("progressive", [[0, 50, 80], [0, 100, 120], [0, 40, 80]])
    _, by = scores_by_method(SCRATCH + BETTER + WORSE + mixed)
    assert by["finetune"].estimates["time_to_threshold"].values == [100.0, 100.0, 100.0]
    assert by["finetune"].reached == 3
    assert by["freeze"].estimates["time_to_threshold"].values == [200.0, 200.0, 200.0]
    assert by["freeze"].reached == 0
    assert by["progressive"].estimates["time_to_threshold"].values == [200.0, 100.0, 200.0]
    assert by["progressive"].reached == 1


def test_scorecard_threshold_reached_exactly_counts() -> None:
    """A return equal to an explicit threshold counts as reached at that step."""
    _, by = scores_by_method(SCRATCH, threshold=70.0)  # seed 2 returns exactly 70 at step 100
    assert by["scratch"].estimates["time_to_threshold"].values == [200.0, 200.0, 100.0]
    assert by["scratch"].reached == 3


def test_scorecard_transfer_ratio_is_area_over_scratch_area() -> None:
    """Transfer ratio: each seed's area over the IQM of scratch's areas (60); scratch itself scores about 1."""
    _, by = scores_by_method(SCRATCH + BETTER + WORSE)
    assert by["finetune"].estimates["area"].values == pytest.approx([92.5, 102.5, 112.5])
    assert by["finetune"].estimates["transfer_ratio"].values == pytest.approx([92.5 / 60, 102.5 / 60, 112.5 / 60])
    assert by["freeze"].estimates["transfer_ratio"].values == pytest.approx([5 / 60, 6 / 60, 7 / 60])
    assert by["scratch"].estimates["transfer_ratio"].iqm == pytest.approx(1.0)


def test_scorecard_flags_negative_transfer_only_for_a_worse_method() -> None:
    """A method whose ratio interval lies below 1 is flagged; a better one and scratch are not."""
    _, by = scores_by_method(SCRATCH + BETTER + WORSE)
    assert by["freeze"].negative_transfer
    assert not by["finetune"].negative_transfer
    assert not by["scratch"].negative_transfer


def test_scorecard_does_not_flag_a_better_method_when_returns_are_negative() -> None:
    """With negative returns a method closer to zero than scratch at every step is still better."""
    scratch = synthetic("scratch", [[-300, -200, -100], [-310, -210, -110], [-290, -190, -90]])
    better = synthetic("finetune", [[-150, -100, -50], [-160, -110, -60], [-140, -90, -40]])
    _, by = scores_by_method(scratch + better)
    assert by["finetune"].estimates["jumpstart"].iqm == 150.0  # it is better from the first point on
    assert not by["finetune"].negative_transfer


def test_scorecard_compares_unequal_curves_over_their_common_steps() -> None:
    """A method trained longer is scored on the budget every run of the target reached, not its own."""
    longer = synthetic("finetune", [[0, 50, 100, 1000, 1000]] * 3, steps=(0, 100, 200, 300, 400))
    card, by = scores_by_method(SCRATCH + longer)
    assert card.budgets == {TARGET: 200.0}
    assert by["finetune"].estimates["area"].values == [50.0, 50.0, 50.0]  # area until 200, not 400


def test_scorecard_with_one_seed_has_no_intervals_and_says_so() -> None:
    """One seed per method still scores, with a note instead of an interval and no negative-transfer flag."""
    card, by = scores_by_method(SCRATCH[:1] + WORSE[:1])
    assert f"{TARGET}/freeze: 1 seed, so no confidence interval (needs 2)" in card.notes
    assert f"{TARGET}/scratch: 1 seed, so no confidence interval (needs 2)" in card.notes
    for s in by.values():
        assert s.seeds == 1
        assert all(e is not None and e.ci is None for e in s.estimates.values())
    assert by["freeze"].estimates["transfer_ratio"].iqm == pytest.approx(5 / 50)
    assert not by["freeze"].negative_transfer


def test_scorecard_without_scratch_says_so_and_leaves_relative_metrics_out() -> None:
    """No scratch runs: no jumpstart, no default threshold, no transfer ratio, and a note saying why."""
    card, by = scores_by_method(BETTER)
    assert card.notes == [f"{TARGET}: no scratch runs, so no jumpstart, default threshold or transfer ratio"]
    assert card.thresholds == {TARGET: None}
    estimates = by["finetune"].estimates
    assert estimates["jumpstart"] is None and estimates["transfer_ratio"] is None
    assert estimates["time_to_threshold"] is None
    assert estimates["final_return"].values == [120.0, 130.0, 140.0]
    _, by = scores_by_method(BETTER, threshold=110.0)  # an explicit threshold still works
    assert by["finetune"].estimates["time_to_threshold"].values == [200.0, 100.0, 100.0]


def test_scorecard_markdown_has_the_table_and_every_method() -> None:
    """scorecard.md: the header row, one row per method, the negative-transfer mark and the notes."""
    text = markdown(score(SCRATCH + BETTER + WORSE[:1]))
    assert "| " + " | ".join(HEADER) + " |" in text
    rows = [line for line in text.splitlines() if line.startswith(f"| {TARGET} |")]
    assert [row.split(" | ")[1] for row in rows] == ["scratch", "finetune", "freeze"]
    assert "(3/3 reached)" in rows[1]
    assert "- heavy/freeze: 1 seed, so no confidence interval (needs 2)" in text
    assert "(negative transfer)" in markdown(score(SCRATCH + WORSE))


# ------------------------------------------------------------------------------------------- 3. batched evaluator


def manual_returns(model: PPO, seeds: list[int]) -> list[float]:
    """One env, one episode after another, one observation per forward pass: the reference the evaluator matches."""
    env = make_idp()
    returns = []
    for seed in seeds:
        observation, _ = env.reset(seed=seed)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(observation, deterministic=True)
            observation, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def test_run_episodes_returns_exactly_the_requested_episodes(untrained: PPO) -> None:
    """Every requested episode runs to its end, in episode order, with more episodes than env copies."""
    returns, lengths = run_episodes(untrained, make_idp, 13, seed=7, n_envs=4)
    assert returns.shape == lengths.shape == (13,)
    assert np.all(lengths > 0) and np.all(returns > 0)
    assert len(set(returns.tolist())) > 5, "returns should differ from seed to seed"


def test_episode_k_is_a_rollout_from_its_own_seed(untrained: PPO) -> None:
    """Episode k equals a plain rollout reset with episode_seeds(seed, n)[k]: no bias toward short episodes."""
    seeds = episode_seeds(7, 12)
    assert len(set(seeds)) == 12
    returns, _ = run_episodes(untrained, make_idp, 12, seed=7, n_envs=1)
    assert returns.tolist() == manual_returns(untrained, seeds)


def test_returns_do_not_depend_on_the_number_of_env_copies(untrained: PPO) -> None:
    """1, 3 or 16 copies give the same episodes: identical lengths, and returns equal up to the float32 rounding
    of a batched forward pass (torch's matmul rounds differently for batches of 1, 3 and 12 rows: ~1e-8)."""
    one = run_episodes(untrained, make_idp, 12, seed=7, n_envs=1)
    for n_envs in (3, 16):
        returns, lengths = run_episodes(untrained, make_idp, 12, seed=7, n_envs=n_envs)
        assert lengths.tolist() == one[1].tolist()
        assert returns == pytest.approx(one[0], rel=1e-7)


def test_same_seed_same_returns_other_seed_other_returns(untrained: PPO) -> None:
    """An evaluation is reproducible bit for bit, and its seed picks which episodes run."""
    first, _ = run_episodes(untrained, make_idp, 6, seed=1, n_envs=3)
    again, _ = run_episodes(untrained, make_idp, 6, seed=1, n_envs=3)
    other, _ = run_episodes(untrained, make_idp, 6, seed=2, n_envs=3)
    assert first.tolist() == again.tolist()
    assert first.tolist() != other.tolist()


def test_randomized_domains_are_reproducible_per_episode(untrained: PPO) -> None:
    """A domain drawn at each reset (masses, observation noise) draws from the episode's seed, whichever copy runs it."""
    data = tiny_config_data(Path("unused"))
    data["source"] = {
        "dynamics": [{"quantity": "body_mass", "select": "all", "scale": {"dist": "uniform", "low": 0.5, "high": 2}}],
        "reality_gap": {"observation_noise": {"std": 0.05}},
    }
    spec = DomainSpec.from_config(parse_config(data).source)
    make = partial(make_idp, spec)
    one, one_lengths = run_episodes(untrained, make, 10, seed=5, n_envs=1)
    many, many_lengths = run_episodes(untrained, make, 10, seed=5, n_envs=4)
    assert one_lengths.tolist() == many_lengths.tolist()
    assert many == pytest.approx(one, rel=1e-7)
    nominal, _ = run_episodes(untrained, make_idp, 10, seed=5, n_envs=1)
    assert one.tolist() != nominal.tolist()


def test_observation_normalizer_matches_vecnormalize() -> None:
    """Saved statistics normalize exactly as the training env's VecNormalize did (clipping included)."""
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(ENV)]), clip_obs=3.0)
    rng = np.random.default_rng(0)
    venv.obs_rms.mean = rng.normal(size=9)
    venv.obs_rms.var = rng.uniform(0.01, 4.0, size=9)
    observations = rng.normal(scale=5.0, size=(32, 9))
    expected = venv.normalize_obs(observations)
    assert np.abs(expected).max() == 3.0, "the sample should reach the clip"
    # VecNormalize hands the policy float32, and the policy casts the normalizer's float64 to float32 itself.
    assert np.array_equal(normalizer_of(venv)(observations).astype(np.float32), expected)
    from_file = ObservationNormalizer.from_state(json.loads(json.dumps(normalization_state(venv))))
    assert from_file is not None and np.array_equal(from_file(observations).astype(np.float32), expected)
    venv.close()


def test_stochastic_evaluation_leaves_torch_global_generator_alone(untrained: PPO) -> None:
    """Sampling actions is seeded by the evaluation's seed, and the caller's torch generator is restored."""
    torch.manual_seed(1234)
    before = torch.random.get_rng_state()
    first, _ = run_episodes(untrained, make_idp, 6, seed=3, deterministic=False, n_envs=2)
    assert torch.equal(torch.random.get_rng_state(), before)
    again, _ = run_episodes(untrained, make_idp, 6, seed=3, deterministic=False, n_envs=2)
    assert first.tolist() == again.tolist()
    greedy, _ = run_episodes(untrained, make_idp, 6, seed=3, deterministic=True, n_envs=2)
    assert first.tolist() != greedy.tolist()


# ------------------------------------------------------------------------------------------- 4. evaluate_domain


def test_evaluate_domain_summarizes_its_returns(untrained: PPO) -> None:
    """Mean, std, IQM and episode length agree with the returns, the CI brackets the mean, success is a share."""
    heavy = [Change(quantity="body_mass", op="scale", value=2.0, select="all")]
    first = evaluate_domain(untrained, ENV, heavy, episodes=8, seed=4, n_envs=4)
    returns = np.array(first.returns)
    threshold = float(np.sort(returns)[5])  # 3 of the 8 returns are at least this
    result = evaluate_domain(untrained, ENV, heavy, episodes=8, seed=4, n_envs=4, success_threshold=threshold)
    assert result.returns == first.returns and result.episodes == 8 and len(result.lengths) == 8
    assert result.mean_reward == pytest.approx(returns.mean())
    assert result.std_reward == pytest.approx(returns.std())
    assert result.iqm_reward == pytest.approx(np.mean(np.sort(returns)[2:6]))
    assert result.mean_ep_length == pytest.approx(np.mean(result.lengths))
    assert result.ci_low is not None and result.ci_high is not None
    assert returns.min() <= result.ci_low < result.mean_reward < result.ci_high <= returns.max()
    assert result.success_rate == 3 / 8
    assert first.success_rate is None


def test_evaluate_domain_with_one_episode_has_no_interval(untrained: PPO) -> None:
    """A single episode gives a return but no confidence interval."""
    result = evaluate_domain(untrained, ENV, (), episodes=1, seed=0)
    assert result.episodes == 1 and result.ci_low is None and result.ci_high is None
    assert result.std_reward == 0.0 and result.mean_reward == result.iqm_reward == result.returns[0]


def test_write_results_csv_has_a_header_and_a_row_per_domain(untrained: PPO, tmp_path: Path) -> None:
    """The CSV holds one row per domain; a missing interval is an empty cell, not 'None'."""
    results = [
        evaluate_domain(untrained, ENV, (), episodes=3, seed=0, name="source"),
        evaluate_domain(untrained, ENV, (), episodes=1, seed=0, name="single"),
    ]
    write_results(results, {"seed": 0}, csv_path=tmp_path / "r.csv")
    rows = read_csv(tmp_path / "r.csv")
    assert [r["domain"] for r in rows] == ["source", "single"]
    assert float(rows[0]["mean_reward"]) == results[0].mean_reward
    assert rows[1]["ci_low"] == rows[1]["ci_high"] == rows[1]["success_rate"] == ""


# ------------------------------------------------------------------------------------------- 5. sim2real evaluate


def evaluate_json(capsys: pytest.CaptureFixture[str], model: Path, out: Path, *args: str) -> dict[str, Any]:
    code, _, err = cli(capsys, "evaluate", model, "--json", out, *args)
    assert code == 0, err
    return json.loads(out.read_text())


def test_evaluate_writes_json_and_csv_for_every_domain(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """JSON has every domain's returns and summary; CSV one row per domain; the table names each domain."""
    code, out, err = cli(
        capsys, "evaluate", source_run, "--episodes", "3", "--json", tmp_path / "e.json", "--csv", tmp_path / "e.csv"
    )
    assert code == 0, err
    assert "source" in out and TARGET in out
    result = json.loads((tmp_path / "e.json").read_text())
    assert list(result["domains"]) == ["source", TARGET]
    for domain in result["domains"].values():
        assert len(domain["returns"]) == domain["episodes"] == 3
        assert domain["iqm_reward"] == pytest.approx(iqm(domain["returns"]))
        assert domain["ci_low"] <= domain["mean_reward"] <= domain["ci_high"]
    rows = read_csv(tmp_path / "e.csv")
    assert [r["domain"] for r in rows] == ["source", TARGET]
    assert [float(r["mean_reward"]) for r in rows] == [d["mean_reward"] for d in result["domains"].values()]


def test_evaluate_reproduces_the_runs_own_evaluation(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """With the run's seed, `sim2real evaluate` gives the returns train() wrote to eval.json."""
    result = evaluate_json(capsys, source_run, tmp_path / "e.json")
    saved = json.loads((source_run / "eval.json").read_text())["domains"]
    assert {name: d["returns"] for name, d in result["domains"].items()} == {
        name: d["returns"] for name, d in saved.items()
    }


def test_evaluate_one_domain_gives_the_same_result_as_in_the_full_evaluation(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """--domain heavy evaluates only heavy, with the same seed (and returns) it has in the full evaluation."""
    full = evaluate_json(capsys, source_run, tmp_path / "full.json", "--episodes", "3", "--seed", "5")
    one = evaluate_json(capsys, source_run, tmp_path / "one.json", "--episodes", "3", "--seed", "5", "--domain", TARGET)
    assert list(one["domains"]) == [TARGET]
    assert one["domains"][TARGET] == full["domains"][TARGET]


def test_evaluate_twice_writes_identical_json(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """The same command twice gives byte-identical results."""
    args = ("--episodes", "4", "--seed", "9", "--n-envs", "3")
    cli(capsys, "evaluate", source_run, "--json", tmp_path / "a.json", *args)
    cli(capsys, "evaluate", source_run, "--json", tmp_path / "b.json", *args)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()


def test_evaluate_applies_the_saved_normalization_statistics(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """The returns are those of the model with its training VecNormalize (in evaluation mode), not raw inputs."""
    result = evaluate_json(capsys, source_run, tmp_path / "e.json", "--episodes", "4", "--domain", TARGET)
    model = PPO.load(source_run / "model.zip", device="cpu")
    venv = VecNormalize.load(str(source_run / "vecnormalize.pkl"), DummyVecEnv([lambda: gym.make(ENV)]))
    heavy = DomainSpec.from_config(
        parse_config(yaml.safe_load((source_run / "config.yaml").read_text())).targets[TARGET]
    )
    seed = evaluation_seed(0)  # --seed 0
    with_stats = evaluate_domain(model, ENV, heavy, episodes=4, seed=seed, normalization=venv)
    raw = evaluate_domain(model, ENV, heavy, episodes=4, seed=seed)
    assert result["domains"][TARGET]["returns"] == with_stats.returns
    assert with_stats.returns != raw.returns, "the statistics should matter for this check to mean anything"


def test_a_target_identical_to_the_source_scores_the_source_return_exactly(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """Every domain starts from the same episode seeds: an unchanged target reports no gain or loss."""
    data = yaml.safe_load((source_run / "config.yaml").read_text())
    data["targets"]["same"] = {"dynamics": []}
    config = write_config(tmp_path / "same.yaml", data)
    result = evaluate_json(capsys, source_run, tmp_path / "e.json", "--config", config, "--episodes", "3")
    assert result["domains"]["same"]["returns"] == result["domains"]["source"]["returns"]


def test_evaluate_refuses_a_model_for_another_observation_space(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An InvertedPendulum model (4 observations) with an InvertedDoublePendulum config (9): one line, both spaces."""
    pendulum = PPO("MlpPolicy", gym.make("InvertedPendulum-v5"), policy_kwargs={"net_arch": [16]}, device="cpu")
    pendulum.save(tmp_path / "pendulum.zip")
    config = write_config(tmp_path / "idp.yaml", tiny_config_data(tmp_path / "runs"))
    code, _, err = cli(capsys, "evaluate", tmp_path / "pendulum.zip", "--config", config, "--json", tmp_path / "e.json")
    assert_one_line_error(CliResult(code, "", err), "pendulum.zip", ENV, "observation space", "(4,)", "(9,)")
    assert not (tmp_path / "e.json").exists()


def test_evaluate_refuses_a_model_without_statistics_for_a_config_that_normalizes(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """A zip taken out of its run folder has no statistics: on raw observations it would report a number that
    means nothing. One line saying so; a config without normalization evaluates it."""
    shutil.copy(source_run / "model.zip", tmp_path / "alone.zip")
    config = write_config(tmp_path / "idp.yaml", tiny_config_data(tmp_path / "runs"))
    code, _, err = cli(capsys, "evaluate", tmp_path / "alone.zip", "--config", config, "--json", tmp_path / "e.json")
    assert_one_line_error(CliResult(code, "", err), "alone.zip", "no normalization statistics", "train.normalize")
    assert not (tmp_path / "e.json").exists()
    raw = write_config(tmp_path / "raw.yaml", tiny_config_data(tmp_path / "runs", normalize=None))
    code, _, err = cli(capsys, "evaluate", tmp_path / "alone.zip", "--config", raw, "--episodes", "1")
    assert code == 0, err


def test_evaluate_refuses_an_unknown_domain(capsys: pytest.CaptureFixture[str], source_run: Path) -> None:
    """A misspelt --domain lists the domains there are."""
    code, _, err = cli(capsys, "evaluate", source_run, "--domain", "hevy")
    assert_one_line_error(CliResult(code, "", err), "--domain hevy", "no such domain", "source, heavy")


# ------------------------------------------------------------------------------------------- 6. sim2real sweep

MASS = "{quantity: body_mass, select: all, scale: [1.0, 2.0], points: 3}"
MASS_LABEL = "body_mass/all scale"
MASS_TAG = "body_mass_all_scale"
GEAR = "{quantity: actuator_gear, select: all, scale: [0.5, 1.0], points: 2}"


def sweep(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str, str]:
    return cli(capsys, "sweep", *args, "--episodes", "2")


def test_sweep_grid_includes_both_ends_exactly(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """points: 3 over [1, 2] evaluates 1.0, 1.5 and 2.0 and writes CSV, JSON and PNG."""
    code, out, err = sweep(capsys, source_run, "--param", MASS, "--out", tmp_path / "s", "--logdir", tmp_path / "tb")
    assert code == 0, err
    assert "sweep.csv" in out
    rows = read_csv(tmp_path / "s" / "sweep.csv")
    assert [float(r[MASS_LABEL]) for r in rows] == [1.0, 1.5, 2.0]
    assert {r["model"] for r in rows} == {"tiny/seed_0"}
    result = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert result["params"][0]["values"] == [1.0, 1.5, 2.0]
    points = result["models"]["tiny/seed_0"]
    assert [p["point"] for p in points] == [[1.0], [1.5], [2.0]]
    assert all(len(p["returns"]) == 2 for p in points)
    assert [float(r["mean_reward"]) for r in rows] == [p["mean_reward"] for p in points]
    assert (tmp_path / "s" / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_sweep_point_equals_an_evaluation_of_that_domain(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """A grid point is a plain evaluation of that domain (mass x2) with the sweep's seed and the saved statistics."""
    sweep(capsys, source_run, "--param", MASS, "--out", tmp_path / "s", "--logdir", tmp_path / "tb", "--seed", "3")
    points = json.loads((tmp_path / "s" / "sweep.json").read_text())["models"]["tiny/seed_0"]
    venv_stats = json.loads((source_run / "vecnormalize.json").read_text())
    model = PPO.load(source_run / "model.zip", device="cpu")
    heavy = [Change(quantity="body_mass", op="scale", value=2.0, select="all")]
    direct = evaluate_domain(
        model, ENV, heavy, episodes=2, seed=3, normalization=ObservationNormalizer.from_state(venv_stats)
    )
    assert points[2]["returns"] == direct.returns


def test_sweep_in_two_dimensions_covers_the_whole_grid(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """Two --param give points1 x points2 rows (first axis slowest) and a heatmap PNG."""
    code, _, err = sweep(
        capsys, source_run, "--param", MASS, "--param", GEAR, "--out", tmp_path / "s", "--logdir", tmp_path / "tb"
    )
    assert code == 0, err
    rows = read_csv(tmp_path / "s" / "sweep.csv")
    grid = [(float(r[MASS_LABEL]), float(r["actuator_gear/all scale"])) for r in rows]
    assert grid == [(m, g) for m in (1.0, 1.5, 2.0) for g in (0.5, 1.0)]
    assert (tmp_path / "s" / "sweep.png").read_bytes().startswith(b"\x89PNG")


def test_sweep_of_two_models_has_rows_for_both(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """Several models in one call share the grid and the episode seeds; each has its rows and its TensorBoard run."""
    checkpoint = sorted((source_run / "checkpoints").iterdir())[0] / "model.zip"
    code, out, err = sweep(
        capsys, source_run, checkpoint, "--param", MASS, "--out", tmp_path / "s", "--logdir", tmp_path / "tb"
    )
    assert code == 0, err
    rows = read_csv(tmp_path / "s" / "sweep.csv")
    assert [r["model"] for r in rows] == ["tiny/seed_0"] * 3 + ["model"] * 3
    written = json.loads((tmp_path / "s" / "sweep.json").read_text())
    assert set(written["models"]) == {"tiny/seed_0", "model"}
    assert sorted(p.name for p in (tmp_path / "tb").iterdir()) == ["model", "tiny_seed_0"]
    # The grid's worst points beside its IQM, for every model, in the file and in what is printed.
    for label, points in written["models"].items():
        returns = [p["mean_reward"] for p in points]
        stats = written["grid"][label]
        assert stats["minimum"] == pytest.approx(min(returns))
        assert min(returns) <= stats["lowest_decile"] <= stats["iqm"] <= max(returns)
    assert "lowest decile" in out and "minimum" in out


def test_sweep_goes_to_the_runs_tensorboard(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """By default the figure (IMAGES) and values (SCALARS) land in the run's tb/ and the files in <run>/sweeps/."""
    run = shutil.copytree(source_run, tmp_path / "tiny" / "seed_0")
    code, _, err = sweep(capsys, run, "--param", MASS)
    assert code == 0, err
    assert (run / "sweeps" / MASS_TAG / "sweep.csv").is_file()
    accumulator = events(run / "tb")
    assert f"sweep/{MASS_TAG}" in accumulator.Tags()["images"]
    means = accumulator.Scalars(f"sweep/{MASS_TAG}/mean_reward")
    points = json.loads((run / "sweeps" / MASS_TAG / "sweep.json").read_text())["models"]["tiny/seed_0"]
    assert [e.step for e in means] == [0, 1, 2]
    assert [e.value for e in means] == pytest.approx([p["mean_reward"] for p in points])
    assert f"sweep/{MASS_TAG}/iqm_reward" in accumulator.Tags()["scalars"]


@pytest.mark.parametrize(
    ("params", "needles"),
    [
        (["quantity body_mass"], ["--param", "expected a mapping"]),
        (["{quantity: [unclosed"], ["--param", "not a YAML mapping"]),
        (["{quantity: body_mas, select: all, scale: [1, 2]}"], ["unknown quantity 'body_mas'"]),
        (["{quantity: body_mass, select: nosuchbody, scale: [1, 2]}"], ["unknown body 'nosuchbody'", "cart"]),
        (["{quantity: body_mass, select: all, scale: [2, 1]}"], ["low 2.0 must be below high 1.0"]),
        (["{quantity: body_mass, select: all, scale: [-1, 2]}"], ["--param body_mass/all scale = -1", "> 0"]),
        ([MASS, GEAR, MASS], ["one or two --param (got 3)"]),
    ],
    ids=["not a mapping", "malformed", "unknown quantity", "unknown element", "low >= high", "impossible", "3 axes"],
)
def test_sweep_refuses_bad_params_in_one_line_writing_nothing(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path, params: list[str], needles: list[str]
) -> None:
    """A bad --param ends in one error line and exit 2, before any evaluation or file."""
    args = [a for p in params for a in ("--param", p)]
    code, _, err = sweep(capsys, source_run, *args, "--out", tmp_path / "s", "--logdir", tmp_path / "tb")
    assert_one_line_error(CliResult(code, "", err), *needles)
    assert not (tmp_path / "s").exists() and not (tmp_path / "tb").exists()


# ------------------------------------------------------------------------------------------- 7. sim2real compare


def test_compare_writes_the_scorecard_of_real_transfer_runs(
    capsys: pytest.CaptureFixture[str], transfer_runs: Path
) -> None:
    """scorecard.md/json, curves.png and tb/<target>/<method> with HPARAMS, from the runs' learning curves."""
    folder = target_folder(transfer_runs)
    code, out, err = cli(capsys, "compare", transfer_runs)
    assert code == 0, err
    assert "note:" not in err  # two seeds per method: intervals everywhere
    assert "scratch" in out and "finetune" in out
    card = folder / "scorecard"  # beside the runs by default
    assert "| target | method |" in (card / "scorecard.md").read_text()
    assert (card / "curves.png").read_bytes().startswith(b"\x89PNG")
    methods = {m["method"]: m for m in json.loads((card / "scorecard.json").read_text())["methods"]}
    assert set(methods) == {"scratch", "finetune"}

    def points(method: str, seed: int) -> list[dict[str, Any]]:
        return json.loads((folder / method / f"seed_{seed}" / "curve.json").read_text())["points"]

    # Cut where every run of the target got, whatever its method (runs end where their budgets let them).
    budget = min(points(m, s)[-1]["target_steps"] for m in methods for s in (0, 1))
    for method, entry in methods.items():
        assert entry["target"] == TARGET and entry["seeds"] == 2
        curves = [points(method, s) for s in (0, 1)]
        # What each run hands over (kept_reward) by the target steps it took.
        kept = [np.interp(budget, [p["target_steps"] for p in c], [p["kept_reward"] for p in c]) for c in curves]
        assert entry["final_return"]["values"] == pytest.approx(kept)
        assert entry["final_return"]["ci_low"] is not None
        accumulator = events(card / "tb" / TARGET / method)
        start = plugin_data_pb2.HParamsPluginData.FromString(
            accumulator.PluginTagToContent("hparams")["_hparams_/session_start_info"]
        )
        assert start.session_start_info.hparams["method"].string_value == method
        assert accumulator.Scalars("scorecard/final_return")[0].value == pytest.approx(entry["final_return"]["iqm"])


def test_compare_with_one_seed_per_method_notes_the_missing_interval(
    capsys: pytest.CaptureFixture[str], transfer_runs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A glob picking seed 0 of each method still scores (exit 0) and says on stderr there is no interval."""
    monkeypatch.chdir(transfer_runs)
    code, _, err = cli(capsys, "compare", f"inverted_double_pendulum_v5/tiny/{TARGET}/*/seed_0", "--out", tmp_path)
    assert code == 0, err
    assert "finetune: 1 seed, so no confidence interval" in " ".join(err.split())
    methods = json.loads((tmp_path / "scorecard.json").read_text())["methods"]
    assert [m["seeds"] for m in methods] == [1, 1]


def test_compare_accepts_an_absolute_glob_pattern(
    capsys: pytest.CaptureFixture[str], transfer_runs: Path, tmp_path: Path
) -> None:
    """An absolute pattern works like a relative one."""
    pattern = str(target_folder(transfer_runs) / "*" / "seed_0")
    code, _, err = cli(capsys, "compare", pattern, "--out", tmp_path)
    assert code == 0, err


def test_compare_refuses_folders_without_transfer_runs(
    capsys: pytest.CaptureFixture[str], source_run: Path, tmp_path: Path
) -> None:
    """An empty folder, a folder of plain training runs, a plain run and a missing folder: one line, exit 2."""
    (tmp_path / "empty").mkdir()
    code, _, err = cli(capsys, "compare", tmp_path / "empty", "--out", tmp_path / "card")
    assert_one_line_error(CliResult(code, "", err), "no transfer runs with a learning curve found")
    code, _, err = cli(capsys, "compare", source_run.parent.parent, "--out", tmp_path / "card")
    assert_one_line_error(CliResult(code, "", err), "no transfer runs with a learning curve found")
    code, _, err = cli(capsys, "compare", source_run, "--out", tmp_path / "card")
    assert_one_line_error(CliResult(code, "", err), "not a transfer run")
    code, _, err = cli(capsys, "compare", tmp_path / "nothing", "--out", tmp_path / "card")
    assert_one_line_error(CliResult(code, "", err), "no such run folder")
    assert not (tmp_path / "card").exists()


def test_compare_refuses_a_corrupt_run_in_a_pattern_unless_told_to_skip_it(
    capsys: pytest.CaptureFixture[str], transfer_runs: Path, tmp_path: Path
) -> None:
    """A run whose curve is corrupt does not drop out of the scorecard unseen: compare stops naming the file,
    or with --skip-unreadable scores the rest and lists what it left out."""
    copy = tmp_path / "runs"
    shutil.copytree(transfer_runs, copy)
    corrupt = target_folder(copy) / "finetune" / "seed_1" / "curve.json"
    corrupt.write_text("{not json")
    code, _, err = cli(capsys, "compare", copy, "--out", tmp_path / "card")
    assert_one_line_error(CliResult(code, "", err), str(corrupt), "unreadable learning curve")
    assert not (tmp_path / "card").exists()
    code, _, err = cli(capsys, "compare", copy, "--skip-unreadable", "--out", tmp_path / "card")
    assert code == 0, err
    assert "skipped, unreadable" in err and str(corrupt) in " ".join(err.split()).replace(" ", "")
    methods = {
        m["method"]: m["seeds"] for m in json.loads((tmp_path / "card" / "scorecard.json").read_text())["methods"]
    }
    assert methods == {"scratch": 2, "finetune": 1}


# ------------------------------------------------------------------------------------------- 8. negative transfer


class Watch:
    """A NegativeTransferCallback driven by hand: append a learning-curve point, end the rollout, take a step."""

    def __init__(self, margin: float = 0.1, patience: int = 2, **kwargs: Any) -> None:
        self.curve = SimpleNamespace(points=[])
        self.model = SimpleNamespace(logger=Logger(folder=None, output_formats=[]), num_timesteps=0)
        self.messages: list[str] = []
        self.callback = NegativeTransferCallback(
            self.curve,
            margin,
            patience,
            announce=self.messages.append,
            **kwargs,  # type: ignore[arg-type]
        )
        self.callback.init_callback(self.model)  # type: ignore[arg-type]

    def point(self, step: int, value: float) -> bool:
        """Adds a point; returns whether training goes on."""
        self.curve.points.append({"step": step, "mean_reward": value})
        self.model.num_timesteps = step
        self.callback.on_rollout_end()
        return self.callback.on_step()

    @property
    def logged(self) -> float | None:
        return self.model.logger.name_to_value.get("transfer/negative_transfer")


def test_negative_transfer_fires_after_patience_bad_points() -> None:
    """Points more than margin below the start return count; `patience` in a row log 1 and warn once."""
    watch = Watch(margin=0.1, patience=2)
    watch.point(0, 100.0)
    assert watch.logged is None  # the start point is the baseline, not judged
    watch.point(100, 90.0)  # exactly (1 - margin) x start: not bad
    assert watch.callback.bad_streak == 0 and watch.logged == 0.0
    watch.point(200, 85.0)
    assert watch.callback.bad_streak == 1 and watch.logged == 0.0 and not watch.messages
    watch.point(300, 80.0)
    assert watch.callback.fired and watch.logged == 1.0
    assert len(watch.messages) == 1 and "negative transfer at step 300" in watch.messages[0]
    watch.point(400, 70.0)
    assert len(watch.messages) == 1, "announced once"


def test_negative_transfer_streak_resets_on_a_good_point() -> None:
    """Bad points must be consecutive: a good one in between starts the count again."""
    watch = Watch(margin=0.1, patience=2)
    for step, value in [(0, 100.0), (1, 80.0), (2, 95.0), (3, 80.0)]:
        watch.point(step, value)
    assert watch.callback.bad_streak == 1 and not watch.callback.fired and watch.logged == 0.0


def test_negative_transfer_margin_is_relative_to_the_size_of_a_negative_start() -> None:
    """With a negative start return the margin still means 'worse by 10%': -105 is fine, -115 is bad."""
    watch = Watch(margin=0.1, patience=1)
    watch.point(0, -100.0)
    watch.point(1, -105.0)
    assert not watch.callback.fired
    watch.point(2, -115.0)
    assert watch.callback.fired


def test_negative_transfer_compares_with_a_reference_curve() -> None:
    """A scratch reference makes a flat curve bad where scratch (interpolated) is above it, and only within its range."""
    reference = Curve.of([0, 100, 200], [100.0, 200.0, 300.0])
    watch = Watch(margin=0.1, patience=2, reference=reference)
    watch.point(0, 100.0)
    watch.point(50, 140.0)  # reference 150: within the margin
    assert watch.callback.bad_streak == 0
    watch.point(100, 100.0)  # start return held, but scratch is at 200
    watch.point(200, 100.0)
    assert watch.callback.fired
    assert "scratch reference" in watch.messages[0]
    beyond = Watch(margin=0.1, patience=1, reference=reference)
    beyond.point(0, 100.0)
    beyond.point(300, 100.0)  # past the reference's end: only the start return counts
    assert not beyond.callback.fired


@pytest.mark.parametrize("stop", [False, True])
def test_negative_transfer_stops_training_only_when_asked(stop: bool) -> None:
    """_on_step returns False (SB3 stops learn()) after the warning with stop: true, and never without it."""
    watch = Watch(margin=0.1, patience=1, stop=stop)
    assert watch.point(0, 100.0)
    assert watch.point(1, 99.0)
    goes_on = watch.point(2, 50.0)
    assert watch.callback.fired
    assert goes_on is not stop
    assert ("; stopping" in watch.messages[0]) is stop


def test_missing_early_warning_reference_fails_before_any_run_folder(tmp_path: Path) -> None:
    """A reference curve that is not there is refused before anything is written."""
    data = tiny_config_data(tmp_path / "runs")
    data["transfer"] = {"method": "scratch", "early_warning": {"reference": str(tmp_path / "gone" / "curve.json")}}
    with pytest.raises(Sim2RealError, match=r"early_warning\.reference: .*gone.*not a learning curve"):
        train(parse_config(data), console=QUIET)
    assert not (tmp_path / "runs").exists()
