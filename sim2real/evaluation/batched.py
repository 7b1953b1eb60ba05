"""The batched evaluator: many env copies stepped together, one policy forward pass per step for all of them.

Episode ``k`` of an evaluation always starts from ``reset(seed=seeds[k])`` whichever env copy runs it, and
every one of the requested episodes runs to its end, so with a deterministic policy the returns depend only on
the seed: not on how many copies run, nor in which order episodes finish (no bias toward short episodes). Up to
floating-point rounding: a float32 forward pass of 16 rows can differ from one of 1 row in the last bit, which
moves a 1,000-step return by about 1e-8 relative; the same seed and number of copies is bit-exact.
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
        """From the run's normalization statistics (see :func:`sim2real.modelfile.normalization_state`); None when off."""
        if state is None or not state.get("norm_obs", True):
            return None
        rms = state["obs_rms"]
        return cls(np.asarray(rms["mean"]), np.asarray(rms["var"]), float(state["clip_obs"]), float(state["epsilon"]))

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / np.sqrt(self.var + self.epsilon), -self.clip, self.clip)


class BatchPolicy:
    """A model's policy as one function from a batch of observations to a batch of env actions.

    What stable-baselines3's ``predict`` does for a batch, without its per-call checks: the deterministic path
    computes the mean action straight from the networks (no distribution object), which is most of the cost
    of a small MLP's forward pass.
    """

    def __init__(self, model: BaseAlgorithm, deterministic: bool = True) -> None:
        self.policy: Any = model.policy
        self.deterministic = deterministic
        self.space = model.action_space
        self.device = model.device
        self.policy.set_training_mode(False)
        # A recurrent policy (sb3-contrib's RecurrentPPO) carries an LSTM state per env copy ("slot").
        self.recurrent = hasattr(self.policy, "lstm_actor")
        self.states: dict[int, tuple[np.ndarray, ...]] = {}
        self.starting: set[int] = set()

    def reset(self, slot: int) -> None:
        """Slot ``slot`` starts a new episode: a recurrent policy's state starts afresh there."""
        self.states.pop(slot, None)
        self.starting.add(slot)

    @torch.no_grad()
    def __call__(self, observations: np.ndarray, slots: list[int] | None = None) -> np.ndarray:
        if self.recurrent:
            return self._recurrent(observations, list(range(len(observations))) if slots is None else slots)
        obs = torch.as_tensor(observations, dtype=torch.float32, device=self.device)
        policy = self.policy
        if self.deterministic and hasattr(policy, "mlp_extractor") and hasattr(policy, "action_net"):
            features = policy.extract_features(obs, policy.pi_features_extractor)
            actions = policy.action_net(policy.mlp_extractor.forward_actor(features))  # a Gaussian's mean
        elif self.deterministic and hasattr(policy, "actor"):
            actions = policy.actor(obs, deterministic=True)
        else:
            actions = policy._predict(obs, deterministic=self.deterministic)
        out = actions.cpu().numpy().reshape((-1, *(self.space.shape or ())))
        if isinstance(self.space, gym.spaces.Box):
            out = policy.unscale_action(out) if policy.squash_output else np.clip(out, self.space.low, self.space.high)
        return out

    def _recurrent(self, observations: np.ndarray, slots: list[int]) -> np.ndarray:
        """The LSTM's states of these slots in, their next states out (a batch is any subset of the copies)."""
        policy = self.policy
        shape = policy.lstm_hidden_state_shape  # (layers, 1, hidden)
        zero = np.zeros((shape[0], shape[2]), dtype=np.float32)
        held = [self.states.get(slot, (zero, zero)) for slot in slots]
        state = tuple(np.stack([h[i] for h in held], axis=1) for i in range(2))
        starts = np.array([slot in self.starting for slot in slots], dtype=bool)
        actions, (hidden, cell) = policy.predict(observations, state=state, episode_start=starts,
                                                 deterministic=self.deterministic)  # fmt: skip
        for index, slot in enumerate(slots):
            self.states[slot] = (hidden[:, index], cell[:, index])
            self.starting.discard(slot)
        return np.asarray(actions).reshape((-1, *(self.space.shape or ())))


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
        act.reset(slot)
        running[slot] = next_episode
        observations[slot] = np.asarray(observation)
        next_episode += 1

    act = BatchPolicy(model, deterministic)
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
            actions = act(batch, slots)
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
