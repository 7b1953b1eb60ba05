"""A transfer run's callbacks: its schedule (unfreezing, per-layer rates), its learning curve on the target with
the budget of target steps, the early warning and the negative-transfer guard.

Small ``BaseCallback`` subclasses; they log through the SB3 logger so every value lands in the run's one
TensorBoard folder with ``num_timesteps`` as its step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from sim2real.config import Config
from sim2real.domain import DomainSpec
from sim2real.evaluation import DomainResult, curve_evaluation, episode_limit
from sim2real.io import write_json
from sim2real.runs import RunFolder
from sim2real.transfer.guard import Guard, confirmation_seed

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

    from sim2real.evaluation.metrics import Curve
    from sim2real.transfer import Transfer

__all__ = ["WORST_CASE_SHARE", "EvalCurveCallback", "GuardCallback", "NegativeTransferCallback", "TransferCallback",
           "transfer_callbacks"]  # fmt: skip


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


# The share of a run's target-step budget that its last point's worst case may take and still be reserved whole
# (Hopper: 3 + 3 episodes of 1,000 steps, 5% of 120,000); a short run reserves one episode of each instead.
WORST_CASE_SHARE = 0.1


class EvalCurveCallback(BaseCallback):
    """The learning curve on the domain a run trains on: evaluated at the start, every ``every`` steps, and at
    the end, always with the same episodes (the same seeds), so the points compare with each other.

    Each point goes to TensorBoard as ``transfer/target_return`` (and ``transfer/target_return_std``) at its
    step and to the run's curve file (:attr:`RunFolder.curve`, rewritten atomically), where jumpstart and
    time-to-threshold come from.

    Every target step counts: a point's ``target_steps`` is the training steps plus every other step taken on
    the target so far (``overhead``: the recalibration and check rollouts, every evaluation including its own,
    and what :meth:`charge` adds, such as the guard's confirmations). With a ``budget``, training stops before a
    rollout that would take the target steps, with the last point, past it: the budget is one of target steps,
    for every method alike, and it holds. A point's worst case is its ``point_episodes`` (the evaluation's and
    the guard's confirmation's) at the env's time limit. Where that is at most ``WORST_CASE_SHARE`` of the
    budget it is reserved whole (reserving what the latest point took overran Hopper's budget by up to 4.5%: a
    policy that learned to hop makes its last evaluation longer). Where it is more (short runs), one episode of
    each is reserved, and a point takes as many of its episodes as the budget left has room for at the time
    limit (:meth:`fitting`; reserving the latest point's cost let the IDP stand-in's default fine-tuning take
    21,610 of its 12,500 steps). A budget under four episodes at the time limit cannot be held by any reserve:
    there, the reserve is what the latest point took.

    A resumed run gets no point where it resumed: its points stay where an uninterrupted run has them, so
    resumed and uninterrupted curves compare point by point.
    """

    def __init__(
        self,
        evaluate: Callable[..., DomainResult],
        domain: str,
        every: int,
        path: Path,
        points: list[dict[str, Any]] | None = None,
        budget: int | None = None,
        overhead: int = 0,
        point_episodes: tuple[int, int] = (0, 0),
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
        self._limit: int | None = None  # the env's time limit, known once training starts
        self._ending = False
        # A resumed run's overhead is its last point's; a new run's, the steps taken before training.
        last = self.points[-1] if self.points else None
        self.overhead = int(last["target_steps"]) - int(last["step"]) if last and "target_steps" in last else overhead
        self.exhausted = False

    def _measure(self, result: DomainResult | None = None) -> None:
        wanted = self.point_episodes[0]
        if result is None:
            result = (
                self.evaluate(episodes=self.fitting(wanted, after=self.point_episodes[1] > 0))
                if wanted
                else self.evaluate()
            )
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

    def fitting(self, episodes: int, after: bool = False) -> int:
        """How many of ``episodes`` a point takes: all of them where its worst case is reserved whole, else as
        many as the budget left has room for at the time limit, one at least (``after``: leaving room for the
        guard's confirmation's one; a point before the last leaves room for the last one's fewest episodes,
        and for the step the model takes after training is told to stop)."""
        if self.budget is None or self._limit is None or self._whole() or not self._fits():
            return episodes
        left = self.budget - self.target_steps()
        if not self._ending:
            left -= self._limit * self._least() + int(self.model.n_envs)
        return max(1, min(episodes, left // self._limit - int(after)))

    def _whole(self) -> bool:
        assert self._limit is not None and self.budget is not None
        return self._limit * sum(self.point_episodes) <= WORST_CASE_SHARE * self.budget

    def _on_training_start(self) -> None:
        self._limit = episode_limit(self.model)
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
        if self._limit is not None and any(self.point_episodes):
            if self._whole():
                return self._limit * sum(self.point_episodes)
            if self._fits():
                return self._limit * self._least()
        # No time limit, or a budget of a few episodes at it (no reserve holds it): what the latest point took.
        last = self.points[-1] if self.points else {}
        return int(last.get("eval_steps", 0)) + int(last.get("charged_steps", 0))

    def _least(self) -> int:
        """A point's fewest episodes: one of the evaluation's, and one of the confirmation's if there is one."""
        return sum(1 for episodes in self.point_episodes if episodes)

    def _fits(self) -> bool:
        """Whether the fewest episodes of a point, at the time limit, are at most half the budget."""
        assert self._limit is not None and self.budget is not None
        return 2 * self._limit * self._least() <= self.budget

    def _on_rollout_end(self) -> None:
        if self.every and self.num_timesteps - self.points[-1]["step"] >= self.every:
            self._measure()

    def _on_training_end(self) -> None:
        self._ending = True  # the last point and its confirmation may take what is left
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
    budget = config.target_budget()
    points = run.curve_points(until=model.num_timesteps)
    guard_episodes = 0 if settings.guard is None else settings.guard.confirm_episodes or settings.eval_episodes
    curve = EvalCurveCallback(evaluate, name, settings.eval_every, run.curve_file, points, budget=budget,
                              overhead=transfer.recalibration_steps,
                              point_episodes=(settings.eval_episodes, guard_episodes),
                              first=transfer.first_evaluation)  # fmt: skip
    callbacks: list[BaseCallback] = [TransferCallback(transfer, announce=announce), curve]
    warning = settings.early_warning
    if warning is not None:
        callbacks.append(NegativeTransferCallback(curve, warning.margin, warning.patience, reference=reference,
                                                  stop=warning.stop, announce=announce))  # fmt: skip
    if settings.guard is not None:
        seed = confirmation_seed(config.train.seed)
        confirm = partial(_measured, lambda: evaluate(episodes=curve.fitting(guard_episodes), seed=seed))
        guard = Guard(model, settings.guard, settings.keep == "best", run.best, confirm, transfer.guard, transfer.best)
        callbacks.append(GuardCallback(guard, curve, transfer, announce))
    return callbacks, curve


def _measured(evaluate: Callable[[], DomainResult]) -> tuple[float, int, int]:
    """(mean return, episodes, target steps) of an evaluation."""
    result = evaluate()
    return result.mean_reward, result.episodes, int(sum(result.lengths))
