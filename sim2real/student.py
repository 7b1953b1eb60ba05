"""Adapting students: a policy that sees only its recent past learns to act as a privileged teacher does.

Rapid Motor Adaptation's recipe in two runs. The teacher is any PPO run with ``privileged: true``: trained under
randomization with the current values of its source's randomized dynamics in its observation
(:class:`~sim2real.domain.PrivilegedObservation`), it needs not guess the dynamics it is in. The student is a PPO
run with ``history`` and a ``student`` section naming the teacher: :func:`distill` rolls the student out on its
own source domain and regresses its actions (and its value) onto the teacher's in the states the student visits,
DAgger's way, so that it learns to recover from its own mistakes rather than only to follow the teacher's
trajectories. The teacher reads its inputs from the same env (:class:`~sim2real.domain.TeacherView`), so both
see the same state.

Early on, the executed action is the teacher's with a probability that falls linearly to zero over
``student.teacher_steps`` of the budget (DAgger's mixing), so the first data are from states a good policy
visits; after that only the student acts. The student is a plain stable-baselines3 PPO model: it evaluates,
sweeps, exports and transfers like any other run, and its action std and return statistics are the teacher's,
so that PPO can fine-tune it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, VecNormalize

from sim2real.config import Config, PrivilegedTerm, StudentConfig
from sim2real.errors import Sim2RealError
from sim2real.evaluation.batched import BatchPolicy, ObservationNormalizer
from sim2real.modelfile import apply_normalization_state
from sim2real.runs import RunFolder


@dataclass
class Teacher:
    """A privileged teacher read for its student: its policy, observation statistics and inputs."""

    path: Path
    config: Config
    model: BaseAlgorithm
    normalizer: ObservationNormalizer | None
    normalization: dict[str, Any] | None  # its normalization statistics (return statistics for the student)

    @property
    def terms(self) -> tuple[PrivilegedTerm, ...]:
        terms = self.config.privileged_terms()
        assert terms is not None
        return terms


def read_teacher(config: Config, path: str | Path | None = None, trusted: bool = False) -> Teacher:
    """The teacher a student config names (``student.teacher``, or ``path``), checked against the student.

    Raises :class:`Sim2RealError` naming ``student.teacher`` when it is not a privileged PPO run of the same env.
    """
    from sim2real.models import load_policy

    assert config.student is not None
    where = path if path is not None else config.student.teacher
    field = f"{config.origin}: student.teacher"
    if where is None:
        raise Sim2RealError(f"{field}: name the teacher's run folder (a run trained with privileged: true)")
    folder = Path(where)
    run = RunFolder(folder if folder.is_dir() else folder.parent)
    if not run.config_file.is_file() or not run.model.is_file():
        raise Sim2RealError(f"{field}: {where} is not a finished run folder (it needs {run.config_file.name} "
                            f"and {run.model.name})")  # fmt: skip
    own = run.config()
    if not own.privileged:
        raise Sim2RealError(
            f"{field}: {where} was not trained with privileged inputs (its config has privileged: false); "
            "a student imitates a teacher that saw the dynamics: train one with privileged: true"
        )
    if own.algo.name != "ppo":
        raise Sim2RealError(f"{field}: {where} is a {own.algo.name} run; a teacher is a PPO run")
    if own.history is not None:
        raise Sim2RealError(f"{field}: {where} has a history; a teacher sees the present and the dynamics only")
    if own.env != config.env or own.env_kwargs != config.env_kwargs:
        raise Sim2RealError(
            f"{field}: {where} was trained on {own.env} {dict(own.env_kwargs) or ''}, the student is on "
            f"{config.env} {dict(config.env_kwargs) or ''} (a teacher labels the student's states: the same env)"
        )
    model, model_file = load_policy(own, run.path, trusted=trusted)
    return Teacher(run.path, own, model, ObservationNormalizer.from_state(model_file.normalization),
                   model_file.normalization)  # fmt: skip


def prepare_student(model: BaseAlgorithm, teacher: Teacher) -> None:
    """A new student starts with the teacher's action std and return statistics (not its weights: the inputs
    differ), so that PPO fine-tuning it later explores and scales returns as the teacher did."""
    policy = cast(ActorCriticPolicy, model.policy)
    teacher_policy = cast(ActorCriticPolicy, teacher.model.policy)
    with torch.no_grad():
        policy.log_std.copy_(teacher_policy.log_std)
    venv = model.get_vec_normalize_env()
    if venv is not None and teacher.normalization is not None:
        # Only the return statistics: the observation statistics are of another input, estimated as it goes.
        obs_rms = venv.obs_rms
        apply_normalization_state(venv, teacher.normalization | {"obs_rms": _rms_state(obs_rms)})


def _rms_state(rms: Any) -> dict[str, Any]:
    return {"mean": np.asarray(rms.mean).tolist(), "var": np.asarray(rms.var).tolist(), "count": float(rms.count)}


def _heads(policy: ActorCriticPolicy, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's mean action (before clipping) and value for a batch of (normalized) observations."""
    features = policy.extract_features(obs)
    if policy.share_features_extractor:
        latent_pi, latent_vf = policy.mlp_extractor(features)
    else:
        pi_features, vf_features = features
        latent_pi = policy.mlp_extractor.forward_actor(pi_features)
        latent_vf = policy.mlp_extractor.forward_critic(vf_features)
    return policy.action_net(latent_pi), policy.value_net(latent_vf).flatten()


class _Buffer:
    """The newest ``size`` (observation, teacher action, teacher value) samples: DAgger's aggregated data."""

    def __init__(self, size: int, obs_dim: int, act_dim: int) -> None:
        self.obs = np.zeros((size, obs_dim), dtype=np.float32)
        self.actions = np.zeros((size, act_dim), dtype=np.float32)
        self.values = np.zeros(size, dtype=np.float32)
        self.size, self.full, self.position = size, False, 0

    def add(self, obs: np.ndarray, actions: np.ndarray, values: np.ndarray) -> None:
        rows = (self.position + np.arange(len(obs))) % self.size  # a ring: the oldest samples are overwritten
        self.obs[rows], self.actions[rows], self.values[rows] = obs, actions, values
        self.full = self.full or self.position + len(obs) >= self.size
        self.position = (self.position + len(obs)) % self.size

    def __len__(self) -> int:
        return self.size if self.full else self.position


def _teacher_observations(env: VecEnv, infos: list[dict[str, Any]], dones: np.ndarray) -> np.ndarray:
    """The teacher's observation of the state each env copy is in now: after an episode ended, the next one's
    first (vector envs reset at once and keep the reset's info apart)."""
    resets = env.unwrapped.reset_infos  # the vector env's own: a wrapper (VecNormalize) keeps empty ones
    rows = [
        (resets[i] if done else info)["teacher_observation"]
        for i, (info, done) in enumerate(zip(infos, dones, strict=True))
    ]
    return np.asarray(rows, dtype=np.float32)


def distill(
    model: BaseAlgorithm,
    teacher: Teacher,
    settings: StudentConfig,
    total_timesteps: int,
    callback: BaseCallback,
    seed: int,
    horizon: float,
) -> None:
    """Trains ``model`` (the student) to act as ``teacher`` for ``total_timesteps`` env steps in all, from the
    step it is at (a resumed run goes on; DAgger's data start again from its next rollout).

    Each round: ``algo.n_steps`` steps per env copy, acting with the teacher's action with probability
    ``beta`` (1 at the start, 0 from step ``horizon`` on: ``teacher_steps`` of the run's first budget, so a
    resume with a larger one does not bring the teacher back) and the student's mean action otherwise, while
    the teacher labels each state with its mean action and value; then minibatch regression onto those labels,
    ``epochs`` times the round's samples drawn from the newest ``buffer_size``. The buffer keeps raw
    observations, normalized at each regression with the current statistics (which move as the student
    explores), so old samples are fed as the policy will see them. Logged per round: ``distill/action_mse``
    and ``distill/value_mse`` (on the round's minibatches), ``distill/teacher_share`` (beta),
    ``rollout/ep_rew_mean`` and ``rollout/ep_len_mean`` (the episodes the round finished, whoever acted),
    ``time/fps``. Callbacks see ``infos``, ``dones``, ``rewards``, ``new_obs`` and ``actions`` in their locals.
    """
    env = model.get_env()
    assert env is not None
    policy = cast(ActorCriticPolicy, model.policy)
    student_act = BatchPolicy(model, deterministic=True)
    normalization = model.get_vec_normalize_env()
    n_envs = env.num_envs
    n_steps = int(getattr(model, "n_steps", 2048))
    obs_dim = int(np.prod(env.observation_space.shape or (1,)))
    act_dim = int(np.prod(env.action_space.shape or (1,)))
    buffer = _Buffer(settings.buffer_size, obs_dim, act_dim)
    # Every draw (who acts, minibatch order) from the run's seed and the step it starts at, so a resumed part
    # does not replay the first part's draws.
    rng = np.random.default_rng([seed, model.num_timesteps])
    optimizer = policy.optimizer
    for group in optimizer.param_groups:
        group["lr"] = settings.learning_rate
    value_weight = float(getattr(model, "vf_coef", 0.5))
    max_grad_norm = float(getattr(model, "max_grad_norm", 0.5))
    episodes: deque[tuple[float, float]] = deque(maxlen=100)

    obs = env.reset()
    teacher_obs = _teacher_observations(env, [{}] * n_envs, np.ones(n_envs, dtype=bool))
    callback.on_training_start(locals(), globals())
    stopped = False
    while model.num_timesteps < total_timesteps and not stopped:
        started = time.perf_counter()
        callback.on_rollout_start()
        beta = max(0.0, 1.0 - model.num_timesteps / horizon) if horizon > 0 else 0.0
        batch_obs, batch_actions, batch_values = [], [], []
        for _ in range(n_steps):
            labels, values = _labels(teacher, teacher_obs)
            mine = student_act(np.asarray(obs, dtype=np.float32))
            actions = np.where((rng.random(n_envs) < beta)[:, None], labels, mine)
            raw = normalization.get_original_obs() if normalization is not None else obs
            batch_obs.append(np.asarray(raw, dtype=np.float32))
            batch_actions.append(labels)
            batch_values.append(values)
            new_obs, rewards, dones, infos = env.step(actions)
            model.num_timesteps += n_envs
            episodes.extend((float(i["episode"]["r"]), float(i["episode"]["l"])) for i in infos if "episode" in i)
            teacher_obs = _teacher_observations(env, infos, dones)
            obs = new_obs
            callback.update_locals(locals())
            if not callback.on_step():
                stopped = True
                break
        for rows in zip(batch_obs, batch_actions, batch_values, strict=True):
            buffer.add(*rows)
        callback.on_rollout_end()
        action_mse, value_mse = _fit(policy, optimizer, buffer, settings, value_weight, max_grad_norm, rng,
                                     n_steps * n_envs, partial(_normalize, normalization))  # fmt: skip
        _log_round(model, action_mse, value_mse, beta, len(buffer), episodes, n_steps * n_envs, started)
    callback.on_training_end()


def _normalize(normalization: VecNormalize | None, raw: np.ndarray) -> np.ndarray:
    return cast(np.ndarray, normalization.normalize_obs(raw)) if normalization is not None else raw


def _labels(teacher: Teacher, observations: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The teacher's mean action (clipped: the action it would execute) and value for each observation."""
    policy = cast(ActorCriticPolicy, teacher.model.policy)
    space = teacher.model.action_space
    assert isinstance(space, spaces.Box)
    inputs = teacher.normalizer(observations) if teacher.normalizer else observations
    with torch.no_grad():  # one forward pass gives the teacher's action and value
        mean, values = _heads(policy, torch.as_tensor(inputs, dtype=torch.float32, device=policy.device))
    return np.clip(mean.cpu().numpy(), space.low, space.high), values.cpu().numpy().ravel()


def _log_round(
    model: BaseAlgorithm, action_mse: float, value_mse: float, beta: float, samples: int,
    episodes: deque[tuple[float, float]], steps: int, started: float,
) -> None:  # fmt: skip
    logger = model.logger
    logger.record("distill/action_mse", action_mse)
    logger.record("distill/value_mse", value_mse)
    logger.record("distill/teacher_share", beta)
    logger.record("distill/samples", samples)
    if episodes:
        logger.record("rollout/ep_rew_mean", float(np.mean([r for r, _ in episodes])))
        logger.record("rollout/ep_len_mean", float(np.mean([length for _, length in episodes])))
    logger.record("time/fps", int(steps / (time.perf_counter() - started)))
    logger.dump(model.num_timesteps)


def _fit(
    policy: ActorCriticPolicy,
    optimizer: torch.optim.Optimizer,
    buffer: _Buffer,
    settings: StudentConfig,
    value_weight: float,
    max_grad_norm: float,
    rng: np.random.Generator,
    new: int,
    normalize: Callable[[np.ndarray], np.ndarray] | None = None,
) -> tuple[float, float]:
    """Minibatch regression onto the teacher's labels: ``epochs`` times as many samples as the round added
    (``new``), drawn from the whole buffer, so that a round costs the same however much data has aggregated; the
    mean losses of the minibatches. ``normalize``: the current observation statistics, applied to the raw
    observations the buffer keeps."""
    size = len(buffer)
    device = policy.device
    raw = buffer.obs[:size]
    obs = torch.as_tensor(np.asarray(normalize(raw) if normalize else raw, dtype=np.float32), device=device)
    targets = torch.as_tensor(buffer.actions[:size], device=device)
    values = torch.as_tensor(buffer.values[:size], device=device)
    action_losses, value_losses = [], []
    policy.set_training_mode(True)
    for _ in range(max(1, settings.epochs * new // settings.batch_size)):
        rows = torch.as_tensor(rng.integers(size, size=min(settings.batch_size, size)), device=device)
        mean, value = _heads(policy, obs[rows])
        # The teacher's executed (clipped) action is the target: outside the bounds any value acts the same.
        action_loss = torch.nn.functional.mse_loss(mean, targets[rows])
        value_loss = torch.nn.functional.mse_loss(value, values[rows])
        optimizer.zero_grad()
        (action_loss + value_weight * value_loss).backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), max_grad_norm)
        optimizer.step()
        action_losses.append(action_loss.item())
        value_losses.append(value_loss.item())
    policy.set_training_mode(False)
    return float(np.mean(action_losses)), float(np.mean(value_losses))
