"""A trained policy as one file for a robot's control loop (``sim2real export``): ONNX or TorchScript.

The exported graph takes raw observations (float32, a batch) and returns the actions the env is sent: the
run's observation normalization (its saved statistics, clipped as in training), the deterministic policy (PPO's
mean action; SAC's squashed mean) and the action bounds (PPO: clipped to them; SAC: scaled from [-1, 1] onto
them), exactly what ``model.predict(obs, deterministic=True)`` returns in sim2real's evaluation. No
stable-baselines3, gymnasium or sim2real is needed to run it; for ONNX, only onnxruntime.
"""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.config import Config
from sim2real.domain import DomainSpec, make_domain_env
from sim2real.dynamics import parameter_name
from sim2real.errors import Sim2RealError
from sim2real.evaluation import ObservationNormalizer, evaluation_seed
from sim2real.io import atomic_path

ExportFormat = Literal["onnx", "torchscript"]
SUFFIX = {"onnx": ".onnx", "torchscript": ".pt"}


class DeployedPolicy(torch.nn.Module):
    """Raw observations -> env actions: normalization, the deterministic policy and the action bounds."""

    mean: torch.Tensor
    std: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, model: BaseAlgorithm, normalizer: ObservationNormalizer | None) -> None:
        super().__init__()
        self.policy = model.policy
        self.sac = hasattr(model.policy, "actor")
        space: Any = model.action_space
        n = int(np.prod(model.observation_space.shape or (1,)))
        mean, var = (normalizer.mean, normalizer.var) if normalizer else (np.zeros(n), np.ones(n))
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("std", torch.as_tensor(np.sqrt(var + (normalizer.epsilon if normalizer else 0.0)),
                                                    dtype=torch.float32))  # fmt: skip
        self.clip = float(normalizer.clip) if normalizer else float("inf")
        self.normalize = normalizer is not None
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(space.high, dtype=torch.float32))

    def forward(self, observation: torch.Tensor) -> torch.Tensor:
        x = observation
        if self.normalize:
            x = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
        policy: Any = self.policy
        if self.sac:
            mean_actions, _, _ = policy.actor.get_action_dist_params(x)
            return self.low + 0.5 * (torch.tanh(mean_actions) + 1.0) * (self.high - self.low)
        latent = policy.mlp_extractor.forward_actor(policy.extract_features(x, policy.pi_features_extractor))
        return torch.clamp(policy.action_net(latent), self.low, self.high)


@dataclass
class ExportResult:
    path: Path
    format: ExportFormat
    observations: int  # recorded observations the exported file was checked on
    max_abs_difference: float  # against model.predict(deterministic=True) on them


def record_observations(model: BaseAlgorithm, config: Config, normalizer: ObservationNormalizer | None,
                        steps: int, seed: int = 0) -> np.ndarray:  # fmt: skip
    """``steps`` raw observations of the policy acting on the config's source domain (episodes as they come)."""
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    env = make_domain_env(config.env, DomainSpec.from_config(config.source), seed=(seed, 0), check_friction=False,
                          history=config.history, privileged=config.privileged_terms(), **env_kwargs)  # fmt: skip
    observations = []
    obs, _ = env.reset(seed=evaluation_seed(seed))
    for _ in range(steps):
        observations.append(np.asarray(obs, dtype=np.float32))
        action, _ = model.predict(normalizer(obs) if normalizer else obs, deterministic=True)
        obs, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return np.stack(observations)


def reference_actions(model: BaseAlgorithm, normalizer: ObservationNormalizer | None, obs: np.ndarray) -> np.ndarray:
    """What sim2real's evaluation sends the env for ``obs``: ``predict`` on normalized inputs."""
    actions, _ = model.predict(normalizer(obs) if normalizer else obs, deterministic=True)
    return np.asarray(actions, dtype=np.float32)


def export_policy(
    model: BaseAlgorithm,
    normalizer: ObservationNormalizer | None,
    config: Config,
    path: Path,
    fmt: ExportFormat,
    check_steps: int = 1000,
) -> ExportResult:
    """Writes the deployed policy to ``path`` (atomically), then checks it against ``predict`` on
    ``check_steps`` recorded observations; a difference above 1e-5 is an error and nothing is left behind."""
    if config.privileged:
        raise Sim2RealError(
            f"{path}: a privileged teacher acts on inputs a robot does not have (the values of "
            f"{', '.join(parameter_name(t.quantity, t.select) for t in config.privileged)}); deploy its student"
        )
    if hasattr(model.policy, "lstm_actor"):
        raise Sim2RealError(
            f"{path}: a recurrent policy (recurrent_ppo) carries its LSTM state between calls, which export does "
            "not build yet: deploy it with sb3-contrib's RecurrentPPO.load and predict(obs, state, episode_start)"
        )
    module = DeployedPolicy(model, normalizer).eval().requires_grad_(False)  # inference only: plain outputs
    example = torch.zeros((1, *(model.observation_space.shape or (1,))), dtype=torch.float32)
    observations = record_observations(model, config, normalizer, check_steps, config.train.seed)
    expected = reference_actions(model, normalizer, observations)
    with atomic_path(path) as tmp:
        with torch.no_grad(), warnings.catch_warnings(), _quiet("torch.onnx"):
            warnings.simplefilter("ignore")  # the exporters' notes on their own internals
            if fmt == "torchscript":
                torch.jit.save(torch.jit.trace(module, example), str(tmp))
            else:
                _require_onnx()
                batch = torch.export.Dim("batch")
                torch.onnx.export(module, (example,), str(tmp), dynamo=True, verbose=False, input_names=["observation"],
                                  output_names=["action"], dynamic_shapes=({0: batch},))  # fmt: skip
        actual = run_exported(tmp, fmt, observations)
        difference = float(np.max(np.abs(actual - expected))) if len(observations) else 0.0
        if not difference <= 1e-5:
            raise Sim2RealError(f"{path}: the exported policy differs from predict by {difference:.2g} (allowed 1e-5)")
    return ExportResult(path, fmt, len(observations), difference)


def _require_onnx() -> None:
    import importlib.util

    missing = [name for name in ("onnx", "onnxscript", "onnxruntime") if importlib.util.find_spec(name) is None]
    if missing:
        raise Sim2RealError(
            f"--format onnx needs {', '.join(missing)}: pip install 'sim2real[export]' (or use --format torchscript)"
        )


@contextmanager
def _quiet(logger_name: str) -> Iterator[None]:
    """Errors only from a library's logger for a while (the ONNX exporter logs optional operators it skips)."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def load_exported(path: Path, fmt: ExportFormat) -> Any:
    """A callable from a batch of raw float32 observations to actions (onnxruntime or TorchScript)."""
    if fmt == "torchscript":
        scripted = torch.jit.load(str(path))
        return lambda obs: scripted(torch.as_tensor(obs)).detach().numpy()
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return lambda obs: session.run(None, {"observation": obs})[0]


def run_exported(path: Path, fmt: ExportFormat, observations: np.ndarray) -> np.ndarray:
    return np.asarray(load_exported(path, fmt)(observations.astype(np.float32)), dtype=np.float32)


def latency(call: Any, observation: np.ndarray, calls: int = 2000) -> tuple[float, float]:
    """Median and 99th percentile of one call on one observation, in microseconds."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        call(observation)
        times.append(time.perf_counter() - start)
    micro = np.asarray(times) * 1e6
    return float(np.median(micro)), float(np.percentile(micro, 99))
