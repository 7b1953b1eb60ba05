"""Training callbacks: checkpoints, randomization logging, the ADR curriculum, transfer schedules, learning curves.

Small ``BaseCallback`` subclasses; they log through the SB3 logger so every value lands in the run's one
TensorBoard folder with ``num_timesteps`` as its step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from sim2real.config import Config
from sim2real.domain import DomainSpec
from sim2real.evaluation import DomainResult, curve_evaluation, episode_limit
from sim2real.io import write_json
from sim2real.logging import TB_ONLY
from sim2real.runs import RunFolder
from sim2real.transfer.guard import Guard, confirmation_seed

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

    from sim2real.evaluation.metrics import Curve
    from sim2real.transfer import Transfer


class CheckpointCallback(BaseCallback):
    """Calls ``save()`` every ``every`` environment steps, between rollouts (when the weights are settled)."""

    def __init__(self, save: Callable[[], Any], every: int) -> None:
        super().__init__()
        self.save = save
        self.every = every
        self._last = 0

    def _on_training_start(self) -> None:
        self._last = self.num_timesteps

    def _on_rollout_start(self) -> None:
        if self.num_timesteps - self._last >= self.every:
            self.save()
            self._last = self.num_timesteps

    def _on_step(self) -> bool:
        return True


class ProgressFile(BaseCallback):
    """Writes ``{"step": n, "total": N}`` to ``path`` at most every ``interval`` seconds.

    A study runs training in other processes (or on other machines of a Ray cluster that share the study
    folder); the file is how its coordinator shows each running run's progress.
    """

    def __init__(self, path: Path, total: int, interval: float = 1.0) -> None:
        super().__init__()
        self.path = path
        self.total = total
        self.interval = interval
        self._last = 0.0

    def _write(self) -> None:
        write_json(self.path, {"step": int(self.num_timesteps), "total": self.total})
        self._last = time.monotonic()

    def _on_training_start(self) -> None:
        self._write()

    def _on_step(self) -> bool:
        if time.monotonic() - self._last >= self.interval:
            self._write()
        return True

    def _on_training_end(self) -> None:
        self._write()


class RandomizationLogger(BaseCallback):
    """Logs the distribution of the randomized parameters, one sample per finished episode.

    Each finished episode's last ``info["randomization"]`` holds the values it ran with; at the end of each
    rollout they go to TensorBoard as histograms ``randomization/<param>`` and their mean as the scalar
    ``randomization/<param>/mean``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._samples: dict[str, list[float]] = defaultdict(list)

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "randomization" in info:
                for key, value in info["randomization"].items():
                    self._samples[key].append(value)
        return True

    def _on_rollout_end(self) -> None:
        for key, values in self._samples.items():
            if values:
                self.logger.record(f"randomization/{key}", np.asarray(values), exclude=TB_ONLY)
                self.logger.record(f"randomization/{key}/mean", float(np.mean(values)))
        self._samples.clear()


class AdrCallback(BaseCallback):
    """Automatic domain randomization (OpenAI et al., 2019, "Solving Rubik's Cube with a Robot Hand").

    The envs pin one ADR parameter at one end of its current range in a share of their episodes and tag
    those episodes (``info["adr_boundary"]``). After ``episodes`` returns at an end, the end moves out by
    ``step`` (towards the parameter's limit) when their mean is at least ``high_threshold``, and in by
    ``step`` (towards the start) when it is at most ``low_threshold``. Ranges go to every env at once and
    to TensorBoard as ``adr/<param>/low`` and ``adr/<param>/high``.

    Args:
        low_threshold, high_threshold, step, episodes: the curriculum's settings (see AdrConfig).
        state: bounds and pending returns from a checkpoint, to continue the curriculum on resume.
    """

    def __init__(
        self,
        low_threshold: float,
        high_threshold: float,
        step: float,
        episodes: int,
        state: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.low_threshold = low_threshold
        self.high_threshold = high_threshold
        self.step = step
        self.episodes = episodes
        self.bounds: dict[str, list[float]] = {}
        self.limits: dict[str, tuple[float, float, float]] = {}
        self.returns: dict[str, list[float]] = defaultdict(list)  # "param/low" -> boundary episode returns
        self._restored = state

    def _on_training_start(self) -> None:
        env = self.training_env
        self.limits = {k: tuple(v) for k, v in env.env_method("adr_limits", indices=[0])[0].items()}
        self.bounds = env.env_method("adr_bounds", indices=[0])[0]
        if self._restored:
            self.bounds.update({k: list(v) for k, v in self._restored["bounds"].items() if k in self.bounds})
            self.returns.update(self._restored.get("returns", {}))
        env.env_method("set_adr_bounds", self.bounds)

    def prepare(self, env: VecEnv) -> None:
        """Sends restored ranges to ``env`` before ``learn()``, whose first reset runs before any callback."""
        if self._restored:
            env.env_method("set_adr_bounds", self._restored["bounds"])

    def state(self) -> dict[str, Any]:
        """What a checkpoint needs to continue the curriculum."""
        return {"bounds": self.bounds, "returns": dict(self.returns)}

    def _on_step(self) -> bool:
        changed = False
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if not done or "adr_boundary" not in info or "episode" not in info:
                continue
            parameter, side = info["adr_boundary"]
            if parameter not in self.bounds:
                continue
            key = f"{parameter}/{side}"
            self.returns[key].append(float(info["episode"]["r"]))
            if len(self.returns[key]) >= self.episodes:
                changed |= self._decide(parameter, side, float(np.mean(self.returns.pop(key))))
        if changed:
            self.training_env.env_method("set_adr_bounds", self.bounds)
        return True

    def _decide(self, parameter: str, side: str, mean_return: float) -> bool:
        low, high = self.bounds[parameter]
        lowest, highest, start = self.limits[parameter]
        if mean_return >= self.high_threshold:
            low, high = (max(lowest, low - self.step), high) if side == "low" else (low, min(highest, high + self.step))
        elif mean_return <= self.low_threshold:
            low, high = (min(start, low + self.step), high) if side == "low" else (low, max(start, high - self.step))
        if [low, high] == self.bounds[parameter]:
            return False
        self.bounds[parameter] = [low, high]
        return True

    def _on_rollout_end(self) -> None:
        for parameter, (low, high) in self.bounds.items():
            self.logger.record(f"adr/{parameter}/low", low)
            self.logger.record(f"adr/{parameter}/high", high)


class TransferCallback(BaseCallback):
    """Runs a transfer's schedule between rollouts: unfreezing, per-layer learning rates, pinned target layers.

    Sets each parameter group's learning-rate factor before every update and logs the rates as
    ``transfer/lr/<group>``; logs ``transfer/trainable_params``, ``transfer/frozen/<group>`` and
    ``transfer/weight_drift/<group>`` at the start, whenever a group unfreezes, and at most every ``every`` steps
    in between. SAC's Polyak update moves every target parameter towards the critic's, and ``x(1-tau) + tau x``
    is not always ``x`` in floating point, so the target layers of frozen critic layers are put back before each
    rollout (and at the end), before anything reads or saves them.
    """

    def __init__(self, transfer: Transfer, every: int = 2048, announce: Callable[[str], Any] | None = None) -> None:
        super().__init__()
        self.transfer = transfer
        self.every = every
        self.announce = announce
        self._last = -every

    def _record(self) -> None:
        self.transfer.record(self.logger)
        self._last = self.num_timesteps

    def _on_training_start(self) -> None:
        self._record()

    def _on_rollout_start(self) -> None:
        self.transfer.restore_pinned()

    def _on_rollout_end(self) -> None:
        # The last update's explained variance (SB3 dumps it after this rollout): the critic warm-up's measure.
        explained = self.logger.name_to_value.get("train/explained_variance")
        if self.transfer.end_warmup(self.num_timesteps, explained) and self.announce is not None:
            self.announce(f"step {self.num_timesteps:,}: critic warm-up over")
        unfrozen = self.transfer.advance_to(self.num_timesteps)
        if unfrozen and self.announce is not None:
            self.announce(f"step {self.num_timesteps:,}: unfroze {', '.join(unfrozen)}")
        self.transfer.update_learning_rates(self.logger)
        if unfrozen or self.num_timesteps - self._last >= self.every:
            self._record()

    def _on_training_end(self) -> None:
        self.transfer.restore_pinned()
        self._record()

    def _on_step(self) -> bool:
        return True


def record_evaluation(logger: Logger, results: Sequence[DomainResult]) -> None:
    """``eval/<domain>/mean_reward``, ``std_reward`` and ``mean_ep_length`` of each domain's evaluation."""
    for r in results:
        logger.record(f"eval/{r.domain}/mean_reward", r.mean_reward)
        logger.record(f"eval/{r.domain}/std_reward", r.std_reward)
        logger.record(f"eval/{r.domain}/mean_ep_length", r.mean_ep_length)


class DomainCurveCallback(BaseCallback):
    """A run's evaluation curve on the source and every target (``eval/<domain>/*``): at step 0 and at the first
    rollout end past each of ``points - 1`` evenly spaced steps of ``total``, always with the same seeded
    episodes, so the points compare with each other and with the final evaluation, the curve's last point
    (logged by training at the final step, not here).

    A resumed run gets no point where it resumed: its points stay where an uninterrupted run has them.
    """

    def __init__(self, evaluate: Callable[[], Sequence[DomainResult]], total: int, points: int) -> None:
        super().__init__()
        self.evaluate = evaluate
        self.total = total
        self.points = points
        self.last = 0  # the step of the last point (a resumed run: where it resumed)

    def _due(self) -> bool:
        """Whether a mark (``k * total / (points - 1)``, 0 < k < points - 1) lies in (last point, now]."""
        spacing = self.total / max(self.points - 1, 1)
        return any(self.last < k * spacing <= self.num_timesteps for k in range(1, self.points - 1))

    def _measure(self) -> None:
        record_evaluation(self.logger, self.evaluate())
        self.logger.dump(self.num_timesteps)
        self.last = self.num_timesteps

    def _on_training_start(self) -> None:
        self.last = self.num_timesteps
        if self.points >= 2 and self.num_timesteps == 0:
            self._measure()

    def _on_rollout_end(self) -> None:
        if self.num_timesteps < self.total and self._due():
            self._measure()

    def _on_step(self) -> bool:
        return True


# The share of a run's target-step budget that its last point's worst case may take and still be reserved whole
# (Hopper: 3 + 3 episodes of 1,000 steps, 5% of 120,000); a short run reserves what its latest point took.
WORST_CASE_SHARE = 0.1


class EvalCurveCallback(BaseCallback):
    """The learning curve on the domain a run trains on: evaluated at the start, every ``every`` steps, and at
    the end, always with the same episodes (the same seeds), so the points compare with each other.

    Each point goes to TensorBoard as ``transfer/target_return`` (and ``transfer/target_return_std``) at its
    step and to the run's curve file (:attr:`RunFolder.curve`, rewritten atomically), where jumpstart and time-to-threshold come from.

    Every target step counts: a point's ``target_steps`` is the training steps plus every other step taken on
    the target so far (``overhead``: the recalibration and check rollouts, every evaluation including its own,
    and what :meth:`charge` adds, such as the guard's confirmations). With a ``budget``, training stops before a
    rollout that would take the target steps, with the last point's evaluation, past it: the budget is one of
    target steps, for every method alike. The last point's reserve is the most a point can take (its
    ``point_episodes``: the evaluation's and the guard's confirmation's, at the env's time limit), where that is at most
    ``WORST_CASE_SHARE`` of the budget: a policy that learned to hop makes its last evaluation longer than the
    one before, and reserving what that one took (without its confirmation) overran Hopper's budget by up to
    4.5%. Where the worst case is more than that share (short runs), the reserve is what the latest point took,
    its confirmation included, and a last point whose episodes grew can still overrun by the difference.

    A resumed run gets no point where it resumed: its points stay where an uninterrupted run has them, so
    resumed and uninterrupted curves compare point by point.
    """

    def __init__(
        self,
        evaluate: Callable[[], DomainResult],
        domain: str,
        every: int,
        path: Path,
        points: list[dict[str, Any]] | None = None,
        budget: int | None = None,
        overhead: int = 0,
        point_episodes: int = 0,
        first: DomainResult | None = None,
    ) -> None:
        super().__init__()
        self.evaluate = evaluate
        self.domain = domain
        self.every = every
        self.path = path
        self.points = list(points or [])
        self.budget = budget
        self.point_episodes = point_episodes
        self.first = first  # the step-0 evaluation, when the transfer's check measured it already
        self._worst: int | None = None  # the most a point can take, known once training starts
        # A resumed run's overhead is its last point's; a new run's, the steps taken before training.
        last = self.points[-1] if self.points else None
        self.overhead = int(last["target_steps"]) - int(last["step"]) if last and "target_steps" in last else overhead
        self.exhausted = False

    def _measure(self, result: DomainResult | None = None) -> None:
        result = self.evaluate() if result is None else result
        step = self.num_timesteps
        spent = int(sum(result.lengths))
        self.overhead += spent
        self.points = [p for p in self.points if p["step"] < step]
        self.points.append(
            {
                "step": step,
                "target_steps": step + self.overhead,
                "mean_reward": result.mean_reward,
                "std_reward": result.std_reward,
                "episodes": result.episodes,
                "eval_steps": spent,
            }
        )
        self._write()
        self.logger.record("transfer/target_return", result.mean_reward)
        self.logger.record("transfer/target_return_std", result.std_reward)
        self.logger.record("transfer/target_steps", step + self.overhead)
        self.logger.dump(step)

    def _write(self) -> None:
        write_json(self.path, {"domain": self.domain, "points": self.points})

    def charge(self, steps: int, **annotations: Any) -> None:
        """Target steps taken outside training and the curve's own evaluations (the guard's confirmations),
        charged to the last point, with what else that point should record."""
        self.overhead += steps
        self.points[-1]["target_steps"] += steps
        self.points[-1]["charged_steps"] = int(self.points[-1].get("charged_steps", 0)) + steps
        self.points[-1].update(annotations)
        self._write()

    def target_steps(self) -> int:
        """Every target step the run has taken so far."""
        return self.num_timesteps + self.overhead

    def _on_training_start(self) -> None:
        limit = episode_limit(self.model)
        self._worst = None if limit is None or not self.point_episodes else limit * self.point_episodes
        if not self.points:
            self._measure(self.first if self.num_timesteps == 0 else None)

    def _on_rollout_start(self) -> None:
        if self.budget is None:
            return
        # Room for the next rollout (on-policy: its steps are all taken before it trains) and for the last
        # point, and for the point at the rollout's end too when one is due there: after it the policy trains
        # once more, and the run ends with a point of its own (a quick-study run that left room for one
        # point took 42,868 of its 40,000 steps).
        rollout = int(getattr(self.model, "n_steps", 0)) * self.model.n_envs
        self.exhausted = self.target_steps() + rollout + self._points_left(rollout) * self._reserve() > self.budget

    def _points_left(self, steps: int) -> int:
        """The points still to come if training goes on for ``steps`` more and then ends: the last one, and
        one at the end of those steps when the curve's interval is due by then."""
        due = bool(self.every) and self.num_timesteps + steps - int(self.points[-1]["step"]) >= self.every
        return 2 if due else 1

    def _reserve(self) -> int:
        worst = self._worst
        if worst is not None and self.budget is not None and worst <= WORST_CASE_SHARE * self.budget:
            return worst
        last = self.points[-1] if self.points else {}
        return int(last.get("eval_steps", 0)) + int(last.get("charged_steps", 0))

    def _on_rollout_end(self) -> None:
        if self.every and self.num_timesteps - self.points[-1]["step"] >= self.every:
            self._measure()

    def _on_training_end(self) -> None:
        if self.points[-1]["step"] < self.num_timesteps:
            self._measure()

    def _on_step(self) -> bool:
        if self.exhausted:
            return False
        if self.budget is not None and not hasattr(self.model, "n_steps"):  # off-policy: checked step by step
            self.exhausted = self.target_steps() + self._points_left(self.model.n_envs) * self._reserve() >= self.budget
        return not self.exhausted


class GuardCallback(BaseCallback):
    """Runs the negative-transfer guard (:mod:`sim2real.transfer.guard`) on each new learning-curve point.

    Its confirmations are charged to the point, which also records ``kept_reward`` (the curve return of the
    policy the run would hand over then); a rollback the guard decides happens before the next rollout, and at
    the end a ``keep: best`` run goes back to its best policy. TensorBoard: ``transfer/guard/*`` and
    ``transfer/kept_return``.
    """

    def __init__(
        self, guard: Guard, curve: EvalCurveCallback, transfer: Transfer, announce: Callable[[str], Any] | None = None
    ) -> None:
        super().__init__()
        self.guard = guard
        self.curve = curve
        self.transfer = transfer
        self.announce = announce
        self._seen = len(curve.points)  # a resumed run's points were judged before
        transfer.caution = guard.caution

    def _judge(self, final: bool = False) -> None:
        points = self.curve.points
        if len(points) <= self._seen:
            return
        self._seen = len(points)
        spent = self.guard.judge(points[-1], final)
        kept = self.guard.kept_reward(points[-1])
        self.curve.charge(spent, kept_reward=kept)
        self.guard.record(self.logger)
        self.logger.record("transfer/kept_return", kept)
        self.logger.record("transfer/target_steps", points[-1]["target_steps"])
        self.logger.dump(self.num_timesteps)

    def _on_training_start(self) -> None:
        self._judge()

    def _on_rollout_start(self) -> None:
        if self.guard.roll_back():
            self.transfer.caution = self.guard.caution
            best = self.guard.state.best
            assert best is not None
            if self.announce is not None:
                self.announce(
                    f"step {self.num_timesteps:,}: the guard rolled back to the best policy (step {best.step:,}, "
                    f"return {best.reward:,.0f}), learning rate x{self.guard.caution:g}"
                )

    def _on_rollout_end(self) -> None:
        self._judge()

    def _on_training_end(self) -> None:
        self._judge(final=True)
        if self.guard.finish() and self.announce is not None:
            best = self.guard.state.best
            assert best is not None
            self.announce(f"kept the best policy: step {best.step:,}, return {best.reward:,.0f}")

    def _on_step(self) -> bool:
        return True


class NegativeTransferCallback(BaseCallback):
    """Warns when a transfer run drifts into negative transfer, judged at each new learning-curve point.

    A point is bad when its return is below its run's start return, or below the scratch reference curve at
    the same step, by more than ``margin`` (a fraction of the value compared with). After ``patience``
    consecutive bad points it logs ``transfer/negative_transfer`` = 1, announces it once, and with ``stop``
    ends the run (which then saves and evaluates as usual).
    """

    def __init__(
        self,
        curve: EvalCurveCallback,
        margin: float,
        patience: int,
        reference: Curve | None = None,
        stop: bool = False,
        announce: Callable[[str], Any] | None = None,
    ) -> None:
        super().__init__()
        self.curve = curve
        self.margin = margin
        self.patience = patience
        self.reference = reference
        self.stop = stop
        self.announce = announce
        self._seen = 0
        self.bad_streak = 0
        self.fired = False

    def _below(self, value: float, baseline: float) -> bool:
        return value < baseline - self.margin * abs(baseline)

    def _check(self) -> None:
        points = self.curve.points
        if len(points) <= self._seen:
            return
        self._seen = len(points)
        if len(points) < 2:
            return
        point = points[-1]
        bad = self._below(point["mean_reward"], points[0]["mean_reward"])
        reference = self.reference
        if reference is not None and reference.steps[0] <= point["step"] <= reference.end:
            bad = bad or self._below(point["mean_reward"], float(reference.at(np.array([point["step"]]))[0]))
        self.bad_streak = self.bad_streak + 1 if bad else 0
        warn = self.bad_streak >= self.patience
        self.logger.record("transfer/negative_transfer", float(warn))
        if warn and not self.fired:
            self.fired = True
            if self.announce is not None:
                what = "its start return" + (" and the scratch reference" if reference is not None else "")
                self.announce(
                    f"warning: negative transfer at step {point['step']:,}: {self.bad_streak} evaluations in a row "
                    f"more than {self.margin:.0%} below {what}" + ("; stopping" if self.stop else "")
                )

    def _on_rollout_end(self) -> None:
        self._check()

    def _on_step(self) -> bool:
        return not (self.stop and self.fired)


# ------------------------------------------------------------------------------------------- a transfer run's


def transfer_callbacks(
    config: Config,
    model: BaseAlgorithm,
    run: RunFolder,
    transfer: Transfer,
    spec: DomainSpec,
    reference: Curve | None,
    announce: Callable[[str], Any],
) -> tuple[list[BaseCallback], EvalCurveCallback]:
    """A transfer run's callbacks, in the order they must run: its schedule, its learning curve (with the
    target-step budget), the early warning, and the guard, which judges each point after the curve measured it."""
    assert config.transfer is not None
    settings = config.transfer
    name = config.training_domain_name()
    evaluate = curve_evaluation(config, model, spec)
    budget = config.train.total_timesteps if settings.budget == "target_steps" else None
    points = run.curve_points(until=model.num_timesteps)
    guard_episodes = 0 if settings.guard is None else settings.guard.confirm_episodes or settings.eval_episodes
    curve = EvalCurveCallback(evaluate, name, settings.eval_every, run.curve_file, points, budget=budget,
                              overhead=transfer.recalibration_steps,
                              point_episodes=settings.eval_episodes + guard_episodes,
                              first=transfer.first_evaluation)  # fmt: skip
    callbacks: list[BaseCallback] = [TransferCallback(transfer, announce=announce), curve]
    warning = settings.early_warning
    if warning is not None:
        callbacks.append(NegativeTransferCallback(curve, warning.margin, warning.patience, reference=reference,
                                                  stop=warning.stop, announce=announce))  # fmt: skip
    if settings.guard is not None:
        seed = confirmation_seed(config.train.seed)
        confirm = partial(_measured, partial(evaluate, episodes=guard_episodes, seed=seed))
        guard = Guard(model, settings.guard, settings.keep == "best", run.best, confirm, transfer.guard, transfer.best)
        callbacks.append(GuardCallback(guard, curve, transfer, announce))
    return callbacks, curve


def _measured(evaluate: Callable[[], DomainResult]) -> tuple[float, int, int]:
    """(mean return, episodes, target steps) of an evaluation."""
    result = evaluate()
    return result.mean_reward, result.episodes, int(sum(result.lengths))
