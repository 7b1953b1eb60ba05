"""Training callbacks: checkpoints, progress, randomization logging, the ADR curriculum, a source's learning curve
(a transfer run's own are in :mod:`sim2real.transfer.callbacks`).

Small ``BaseCallback`` subclasses; they log through the SB3 logger so every value lands in the run's one
TensorBoard folder with ``num_timesteps`` as its step.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.vec_env import VecEnv

from sim2real.evaluation import DomainResult
from sim2real.io import write_json
from sim2real.logging import TB_ONLY

if TYPE_CHECKING:
    pass


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


REGIONS = ("low", "middle", "high")  # thirds of a drawn value's range, by its place in its distribution


class RandomizationLogger(BaseCallback):
    """Logs where training draws the randomized parameters and how each region scores, per finished episode.

    Each finished episode's last ``info["randomization"]`` holds the values it ran with; at the end of each
    rollout they go to TensorBoard as histograms ``randomization/<param>`` and their mean as the scalar
    ``randomization/<param>/mean``. Its ``info["randomization_share"]`` places each value drawn at reset in
    its distribution (0 the lowest, 1 the highest); the mean return of the rollout's episodes in each third
    goes to ``randomization/<param>/return_low``, ``_middle`` and ``_high``: the region training leaves behind
    scores least there, over time.
    """

    def __init__(self) -> None:
        super().__init__()
        self._samples: dict[str, list[float]] = defaultdict(list)
        self._returns: dict[tuple[str, str], list[float]] = defaultdict(list)

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done and "randomization" in info:
                for key, value in info["randomization"].items():
                    self._samples[key].append(value)
            episode = info.get("episode") if done else None
            if episode is not None and "randomization_share" in info:
                for key, share in info["randomization_share"].items():
                    self._returns[(key, REGIONS[min(int(3 * share), 2)])].append(float(episode["r"]))
        return True

    def _on_rollout_end(self) -> None:
        for key, values in self._samples.items():
            if values:
                self.logger.record(f"randomization/{key}", np.asarray(values), exclude=TB_ONLY)
                self.logger.record(f"randomization/{key}/mean", float(np.mean(values)))
        for (key, region), returns in self._returns.items():
            self.logger.record(f"randomization/{key}/return_{region}", float(np.mean(returns)))
        self._samples.clear()
        self._returns.clear()


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
