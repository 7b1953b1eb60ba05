"""The batched evaluator: many env copies stepped together, one policy forward pass per step for all of them.

Episode ``k`` of an evaluation always starts from ``reset(seed=seeds[k])`` whichever env copy runs it, and
every one of the requested episodes runs to its end, so with a deterministic policy the returns depend only on
the seed: not on how many copies run, nor in which order episodes finish (no bias toward short episodes).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm


@dataclass
class ObservationNormalizer:
    """VecNormalize's observation transform in evaluation mode: statistics used, never updated."""

    mean: np.ndarray
    var: np.ndarray
    clip: float
    epsilon: float = 1e-8

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> ObservationNormalizer | None:
        """From ``vecnormalize.json`` (see :func:`sim2real.modelfile.normalization_state`); None when off."""
        if state is None or not state.get("norm_obs", True):
            return None
        rms = state["obs_rms"]
        return cls(np.asarray(rms["mean"]), np.asarray(rms["var"]), float(state["clip_obs"]), float(state["epsilon"]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)


def episode_seeds(seed: int, episodes: int) -> list[int]:
    """One reset seed per episode, derived from the evaluation's seed."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(episodes)]


def run_episodes(
    model: BaseAlgorithm,
    make_env: Callable[[], gym.Env],
    episodes: int,
    *,
    seed: int = 0,
    deterministic: bool = True,
    normalizer: ObservationNormalizer | None = None,
    n_envs: int = 16,
) -> tuple[np.ndarray, np.ndarray]:
    """Runs ``episodes`` complete episodes and returns their undiscounted returns and lengths, in episode order.

    Args:
        model: a stable-baselines3 model; only its policy's ``predict`` is used, on a batch of observations.
        make_env: builds one env copy (they are reused from episode to episode).
        episodes: how many episodes, each started with its own seed (see :func:`episode_seeds`).
        seed: the evaluation's seed; a stochastic policy's noise is seeded from it too.
        deterministic: the policy's mean action (default) or a sampled one.
        normalizer: the observation normalization the policy was trained with.
        n_envs: how many env copies run at once (more: bigger batches, fewer forward passes).
    """
    seeds = episode_seeds(seed, episodes)
    envs = [make_env() for _ in range(max(1, min(n_envs, episodes)))]
    returns = np.zeros(episodes, dtype=np.float64)
    lengths = np.zeros(episodes, dtype=np.int64)
    running: dict[int, int] = {}  # env index -> episode index
    observations: dict[int, np.ndarray] = {}
    next_episode = 0

    def start(slot: int) -> None:
        nonlocal next_episode
        observation, _ = envs[slot].reset(seed=seeds[next_episode])
        running[slot] = next_episode
        observations[slot] = np.asarray(observation)
        next_episode += 1

    generator_state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # a stochastic policy samples from torch's generator
    try:
        for slot in range(len(envs)):
            if next_episode < episodes:
                start(slot)
        while running:
            slots = list(running)
            batch = np.stack([observations[s] for s in slots])
            if normalizer is not None:
                batch = normalizer(batch)
            actions, _ = model.predict(batch, deterministic=deterministic)
            for slot, action in zip(slots, actions, strict=True):
                observation, reward, terminated, truncated, _ = envs[slot].step(action)
                episode = running[slot]
                returns[episode] += float(reward)
                lengths[episode] += 1
                if terminated or truncated:
                    del running[slot]
                    if next_episode < episodes:
                        start(slot)
                else:
                    observations[slot] = np.asarray(observation)
    finally:
        torch.random.set_rng_state(generator_state)
        for env in envs:
            env.close()
    return returns, lengths
