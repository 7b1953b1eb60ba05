"""Stable-baselines3 models from a config: a fresh one to train, or a saved one rebuilt from its weights alone.

Training builds its model here, and every reader of a saved policy (evaluation, the study, identification, a
student's teacher) rebuilds it here, so none of them needs the training loop (:mod:`sim2real.training`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sb3_contrib import RecurrentPPO
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import LinearSchedule as SB3LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from sim2real.config import Config, LinearSchedule
from sim2real.domain import make_domain_env
from sim2real.errors import Sim2RealError
from sim2real.modelfile import ModelFile, read_model
from sim2real.runs import VECNORMALIZE_JSON
from sim2real.transfer.prognet import is_progressive, make_progressive, source_arch_of


class _SAC(SAC):
    """stable-baselines3's SAC, except that a transfer run's critic warm-up lets the source policy act from the
    first step: SB3 takes uniform random actions until ``learning_starts``, which would fill the replay buffer
    the critic warms up on with transitions no policy of this run takes. Its zips load with plain ``SAC``."""

    policy_acts_at_start: bool = False

    def _sample_action(self, learning_starts: int, action_noise: Any = None, n_envs: int = 1) -> Any:
        return super()._sample_action(0 if self.policy_acts_at_start else learning_starts, action_noise, n_envs)


ALGORITHMS: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "sac": _SAC, "recurrent_ppo": RecurrentPPO}
DEFAULT_POLICY = "MlpPolicy"
# The policy class each algorithm builds when the caller names none (SB3's names).
_POLICIES = {"recurrent_ppo": "MlpLstmPolicy"}
_ACTIVATIONS = {
    "tanh": torch.nn.Tanh,
    "relu": torch.nn.ReLU,
    "elu": torch.nn.ELU,
    "leaky_relu": torch.nn.LeakyReLU,
}
_POLICY_KEYS = {"name", "net_arch", "activation", "log_std_init"}
_LSTM_KEYS = ("lstm_hidden_size", "n_lstm_layers", "shared_lstm", "enable_critic_lstm")

Policy = str | type[BasePolicy]


def algorithm_kwargs(config: Config) -> dict[str, Any]:
    """Constructor keywords of the stable-baselines3 algorithm (hyperparameters and policy_kwargs)."""
    algo = config.algo
    kwargs = algo.model_dump(exclude=_POLICY_KEYS | set(_LSTM_KEYS))
    if isinstance(algo.learning_rate, LinearSchedule):
        kwargs["learning_rate"] = SB3LinearSchedule(algo.learning_rate.initial, algo.learning_rate.final, 1.0)
    kwargs["policy_kwargs"] = {
        "net_arch": list(algo.net_arch),
        "activation_fn": _ACTIVATIONS[algo.activation],
        "log_std_init": algo.log_std_init,
        **{key: getattr(algo, key) for key in _LSTM_KEYS if hasattr(algo, key)},
    }
    return kwargs


def build_model(config: Config, env: VecEnv, policy: Policy = DEFAULT_POLICY) -> BaseAlgorithm:
    """A fresh stable-baselines3 model of ``config.algo`` on ``env`` (``policy``: SB3's name or a policy class)."""
    if policy == DEFAULT_POLICY:
        policy = _POLICIES.get(config.algo.name, DEFAULT_POLICY)
    return ALGORITHMS[config.algo.name](
        policy, env, seed=config.train.seed, device=config.train.device, verbose=0, **algorithm_kwargs(config)
    )


def load_policy(config: Config, path: Path, trusted: bool = False) -> tuple[BaseAlgorithm, ModelFile]:
    """A saved model rebuilt for evaluation from its weights alone (read weights-only, see modelfile).

    The network's layer sizes come from the weights (a progressive net's columns too); the algorithm and
    activation from ``config``, whose env must have the model's observation and action spaces.
    """
    model_file = read_model(path, trusted=trusted)
    if model_file.algo != config.algo.name:
        raise Sim2RealError(
            f"{model_file.path} is a {model_file.algo.upper()} model but the config says {config.algo.name.upper()} "
            f"(set algo.name: {model_file.algo})"
        )
    env_kwargs: dict[str, Any] = dict(config.env_kwargs)
    env = make_domain_env(config.env, (), seed=0, check_friction=False, history=config.history,
                          privileged=config.privileged_terms(), **env_kwargs)  # fmt: skip
    mismatch = [
        f"{kind} space: model shape {saved.shape}, config shape {tuple(space.shape or ())}"
        + (" (the config's history lengthens it)" if kind == "observation" and config.history else "")
        + (" (the config's privileged inputs lengthen it)" if kind == "observation" and config.privileged else "")
        for kind, saved, space in (
            ("observation", model_file.observation, env.observation_space),
            ("action", model_file.action, env.action_space),
        )
        if saved is not None and saved.shape != tuple(space.shape or ())
    ]
    if mismatch:
        env.close()
        raise Sim2RealError(f"{model_file.path} does not fit {config.env}: " + "; ".join(mismatch))
    normalize = config.train.normalize
    if normalize is not None and normalize.observations and model_file.normalization is None:
        env.close()
        raise Sim2RealError(
            f"{model_file.path}: no normalization statistics beside it ({VECNORMALIZE_JSON}), but the config "
            "normalizes observations; on raw observations its returns would be wrong. Pass the run folder, "
            "or set train.normalize: null in the config if it was trained on raw observations"
        )
    trunk = "actor.latent_pi" if config.algo.name == "sac" else "mlp_extractor.policy_net"
    progressive = is_progressive(model_file.policy)
    arch = source_arch_of(model_file.policy, trunk + ".column" if progressive else trunk)
    algo = config.algo.model_copy(update={"net_arch": arch or list(config.algo.net_arch)})
    model = build_model(config.model_copy(update={"algo": algo}), DummyVecEnv([lambda: env]))
    if progressive:
        make_progressive(model.policy, config.algo.name, source_arch_of(model_file.policy, trunk), arch)
    try:
        model.policy.load_state_dict(model_file.policy)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[-1].strip()
        raise Sim2RealError(
            f"{model_file.path}: weights do not fit a {config.algo.name.upper()} policy ({first})"
        ) from None
    return model, model_file
