"""The negative-transfer guard: a transfer run never hands over a policy worse than the best it measured.

At each learning-curve point (:class:`~sim2real.transfer.callbacks.EvalCurveCallback`) the guard compares the policy with
the best one so far. The curve's few episodes are noisy (Hopper's 3-episode points swing by 300 and more; a
balancing pendulum's are 9,360 or 100, nothing between), and taking the highest of noisy points would chase
luck, so a point above the best is only a candidate: it runs ``confirm_episodes`` more episodes of their own (the
same confirmation seeds for every candidate), and it becomes the best when its return over all its episodes,
the curve's and the confirmation's, beats the best's over all of its own. The start policy is the first best,
measured the same way. That return over all its episodes is also what the run reports for the kept policy:
the curve's episodes alone said 3,274 of a policy that balanced through all three confirmation episodes.

The best policy's weights and statistics are kept in memory and in ``best/`` (replaced whole, like a
checkpoint). With ``transfer.keep: best`` (the default) it is the run's result: the model that ``model.zip``,
the final evaluation, evaluate, sweep, export and the scorecard see; the curve still shows what training did.

Rollback: when ``patience`` points in a row fall more than ``margin`` below the best's return and the
confirmation episodes agree, training goes back to the best policy (weights, statistics, SAC's temperature) with fresh
optimizer moments and the learning rate times ``lr_factor`` (again at each rollback). A fall the confirmation
does not bear out is counted as averted, not acted on; every time the rule fires is in ``transfer.json``.

Every evaluation is target steps: the guard's confirmations are charged to the learning curve like its points.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger

from sim2real.config import GuardConfig
from sim2real.errors import Sim2RealError
from sim2real.io import save_with, write_json
from sim2real.modelfile import apply_normalization_state, normalization_state, read_model
from sim2real.runs import BestPolicy

__all__ = ["Best", "Guard", "GuardState", "confirmation_seed"]


def confirmation_seed(run_seed: int) -> int:
    """The confirmation episodes' seed: derived from the run's seed, apart from the curve's episodes."""
    return int(np.random.SeedSequence([run_seed, 2]).generate_state(1)[0])


@dataclass
class Best:
    """The best policy so far: where the curve measured it and what it returned."""

    step: int  # training steps
    target_steps: int  # every target step the run had used when it was measured
    reward: float  # over all its episodes, the curve's and the confirmation's: what a candidate must beat
    episodes: int  # behind ``reward``
    curve_reward: float  # on the curve's episodes alone
    confirmed_reward: float  # on the confirmation episodes alone

    @classmethod
    def of(cls, saved: dict[str, Any]) -> Best:
        return cls(int(saved["step"]), int(saved["target_steps"]), float(saved["reward"]), int(saved["episodes"]),
                   float(saved["curve_reward"]), float(saved["confirmed_reward"]))  # fmt: skip


@dataclass
class GuardState:
    """What ``transfer.json`` holds of the guard (a resumed run carries on from it)."""

    best: Best | None = None
    rollbacks: int = 0
    below: int = 0  # consecutive points clearly below the best
    averted: int = 0  # falls a confirmation did not bear out
    confirmation_steps: int = 0  # target steps the confirmations took
    alarms: list[dict[str, Any]] = field(default_factory=list)  # each time the rollback rule fired

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def of(cls, saved: dict[str, Any] | None) -> GuardState:
        if not saved:
            return cls()
        best = saved.get("best")
        return cls(Best.of(best) if best else None, int(saved.get("rollbacks", 0)), int(saved.get("below", 0)),
                   int(saved.get("averted", 0)), int(saved.get("confirmation_steps", 0)),
                   list(saved.get("alarms", [])))  # fmt: skip


@dataclass
class Snapshot:
    """A policy as the guard keeps it: weights, observation and return statistics, SAC's temperature."""

    policy: dict[str, torch.Tensor]
    normalization: dict[str, Any] | None
    log_ent_coef: torch.Tensor | None

    @classmethod
    def take(cls, model: BaseAlgorithm) -> Snapshot:
        venv = model.get_vec_normalize_env()
        log_ent_coef = getattr(model, "log_ent_coef", None)
        return cls(
            {name: value.detach().clone() for name, value in model.policy.state_dict().items()},
            normalization_state(venv) if venv is not None else None,
            log_ent_coef.detach().clone() if isinstance(log_ent_coef, torch.Tensor) else None,
        )

    @torch.no_grad()
    def put(self, model: BaseAlgorithm) -> None:
        model.policy.load_state_dict(self.policy)
        venv = model.get_vec_normalize_env()
        if venv is not None and self.normalization is not None:
            apply_normalization_state(venv, self.normalization)
        log_ent_coef = getattr(model, "log_ent_coef", None)
        if isinstance(log_ent_coef, torch.Tensor) and self.log_ent_coef is not None:
            log_ent_coef.copy_(self.log_ent_coef)


class Guard:
    """The guard of one run: its settings and state, the best policy in memory and its ``best/`` folder.

    Args:
        model: the run's model.
        settings: ``transfer.guard``.
        keep_best: ``transfer.keep == "best"``: the run ends on the best policy.
        folder: the run's ``best/``.
        confirm: evaluates the current policy on the confirmation episodes: (mean return, episodes, target steps).
        state: a resumed run's guard state (``transfer.json``), else a new run's.
        snapshot: a resumed run's best policy (:func:`read_best`).
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        settings: GuardConfig,
        keep_best: bool,
        folder: BestPolicy,
        confirm: Callable[[], tuple[float, int, int]],
        state: GuardState | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.keep_best = keep_best
        self.folder = folder
        self.confirm = confirm
        self.state = state or GuardState()
        self.snapshot = snapshot  # a resumed run's best policy (read from best/ with its state)
        self.pending_rollback = False

    @property
    def caution(self) -> float:
        """The learning-rate factor the rollbacks so far have set."""
        rollback = self.settings.rollback
        return 1.0 if rollback is None else float(rollback.lr_factor**self.state.rollbacks)

    def _pooled(self, point: dict[str, Any]) -> tuple[float, int, float]:
        """The point's policy over its curve episodes and a confirmation: (mean return, episodes, the
        confirmation's mean)."""
        confirmed, episodes, steps = self.confirm()
        self.state.confirmation_steps += steps
        curve = int(point.get("episodes", 1))
        return (
            (float(point["mean_reward"]) * curve + confirmed * episodes) / (curve + episodes),
            curve + episodes,
            confirmed,
        )

    def judge(self, point: dict[str, Any], final: bool = False) -> int:
        """Weighs a new curve point (``step``, ``target_steps``, ``mean_reward``, ``episodes``); returns the target
        steps its confirmations took. A better policy becomes the best; a confirmed fall schedules a rollback,
        done by :meth:`roll_back` before the next rollout (not before the update already under way, whose data
        the fallen policy collected)."""
        spent_before = self.state.confirmation_steps
        value, best = float(point["mean_reward"]), self.state.best
        if best is None or value > best.reward:
            reward, episodes, confirmed = self._pooled(point)
            if best is None or reward > best.reward:
                spent = self.state.confirmation_steps - spent_before
                self._new_best(Best(int(point["step"]), int(point["target_steps"]) + spent, reward, episodes, value,
                                    confirmed))  # fmt: skip
            self.state.below = 0
        elif not final and self.settings.rollback is not None:
            self._watch(point, value, best)
        return self.state.confirmation_steps - spent_before

    def _watch(self, point: dict[str, Any], value: float, best: Best) -> None:
        rollback = self.settings.rollback
        assert rollback is not None
        floor = best.reward - rollback.margin * abs(best.reward)
        self.state.below = self.state.below + 1 if value < floor else 0
        if self.state.below < rollback.patience:
            return
        self.state.below = 0
        reward, _, _ = self._pooled(point)
        if reward >= floor:
            self.state.averted += 1
            return
        apply = self.state.rollbacks < rollback.limit
        self.state.alarms.append({"step": int(point["step"]), "reward": reward, "best_step": best.step,
                                  "best_reward": best.reward, "applied": apply})  # fmt: skip
        self.pending_rollback = apply

    def _new_best(self, best: Best) -> None:
        self.state.best = best
        self.snapshot = Snapshot.take(self.model)
        save_best(self.model, self.folder, best)

    def roll_back(self) -> bool:
        """Goes back to the best policy if a rollback is due: its weights and statistics, fresh optimizer moments
        (the fallen policy's say where it was heading), and the lower learning rate (:attr:`caution`)."""
        if not self.pending_rollback or self.snapshot is None:
            return False
        self.pending_rollback = False
        self.snapshot.put(self.model)
        for optimizer in _optimizers(self.model):
            optimizer.state.clear()
        self.state.rollbacks += 1
        return True

    def finish(self) -> bool:
        """At the end of training: with ``keep: best``, the model becomes the best policy (if it is not already)."""
        best = self.state.best
        if not self.keep_best or best is None or self.snapshot is None or best.step == self.model.num_timesteps:
            return False
        self.snapshot.put(self.model)
        return True

    def kept_reward(self, point: dict[str, Any]) -> float:
        """The return of the policy the run would hand over now: the best's over all its episodes, or with
        ``keep: last`` the point's own."""
        best = self.state.best
        return float(point["mean_reward"]) if not self.keep_best or best is None else best.reward

    def record(self, logger: Logger) -> None:
        best = self.state.best
        if best is not None:
            logger.record("transfer/guard/best_return", best.reward)
            logger.record("transfer/guard/best_step", best.step)
        logger.record("transfer/guard/rollbacks", self.state.rollbacks)
        logger.record("transfer/guard/alarms", len(self.state.alarms))
        logger.record("transfer/guard/averted", self.state.averted)
        logger.record("transfer/guard/confirmation_steps", self.state.confirmation_steps)
        logger.record("transfer/guard/lr_factor", self.caution)


def _optimizers(model: BaseAlgorithm) -> list[torch.optim.Optimizer]:
    policy: Any = model.policy
    found = [getattr(owner, "optimizer", None) for owner in (policy, getattr(policy, "actor", None),
                                                               getattr(policy, "critic", None))]  # fmt: skip
    found.append(getattr(model, "ent_coef_optimizer", None))
    return [cast(torch.optim.Optimizer, o) for o in found if isinstance(o, torch.optim.Optimizer)]


def save_best(model: BaseAlgorithm, folder: BestPolicy, best: Best) -> None:
    """Writes the model as ``best/``: a plain stable-baselines3 zip, its statistics (JSON, and SB3's pickle for
    plain SB3 users) and ``guard.json``, replacing the folder whole."""
    with folder.replacing() as partial:
        written = BestPolicy(partial)
        save_with(written.model, model.save)
        venv = model.get_vec_normalize_env()
        if venv is not None:
            save_with(written.vecnormalize, venv.save)
            write_json(written.vecnormalize_json, normalization_state(venv))
        write_json(written.guard_file, asdict(best))


def read_best(folder: BestPolicy) -> tuple[Snapshot, Best]:
    """A resumed run's best policy from ``best/`` (weights-only, statistics from JSON); a missing or broken folder
    is an error naming the file, before anything of the run is written."""
    folder.recover()
    try:
        best = Best.of(json.loads(folder.guard_file.read_text()))
    except FileNotFoundError:
        raise Sim2RealError(
            f"{folder.guard_file}: missing, but the run's guard has a best policy (transfer.json); restore the "
            "folder, or start the run again"
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise Sim2RealError(f"{folder.guard_file}: unreadable guard state ({error})") from None
    if not folder.model.is_file():
        raise Sim2RealError(f"{folder.model}: missing, but {folder.guard_file} names a best policy")
    saved = read_model(folder.model)
    log_ent_coef = saved.variables.get("log_ent_coef")
    return Snapshot(dict(saved.policy), saved.normalization, log_ent_coef), best
