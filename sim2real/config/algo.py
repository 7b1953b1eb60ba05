"""Schema of the algorithm section: the policy network and each algorithm's hyperparameters."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from sim2real.config.common import FiniteFloat, PositiveFloat, PositiveInt, Strict

NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Discount = Annotated[float, Field(gt=0, le=1)]
Activation = Literal["tanh", "relu", "elu", "leaky_relu"]


class LinearSchedule(Strict):
    """A value that goes linearly from ``initial`` to ``final`` over training."""

    initial: Annotated[float, Field(gt=0)]
    final: Annotated[float, Field(ge=0)] = 0.0


class AlgoBase(Strict):
    """What every algorithm has: the policy network and the optimizer's learning rate and discount."""

    net_arch: list[PositiveInt] = Field(default=[64, 64], description="hidden layer sizes")
    activation: Activation = "tanh"
    learning_rate: PositiveFloat | LinearSchedule = 3e-4
    gamma: Discount = 0.99


class PPOConfig(AlgoBase):
    """PPO hyperparameters (stable-baselines3 names and defaults)."""

    name: Literal["ppo"]
    n_steps: Annotated[int, Field(gt=1)] = 2048
    batch_size: Annotated[int, Field(gt=1)] = 64
    n_epochs: PositiveInt = 10
    gae_lambda: Annotated[float, Field(ge=0, le=1)] = 0.95
    clip_range: PositiveFloat = 0.2
    ent_coef: NonNegativeFloat = 0.0
    vf_coef: NonNegativeFloat = 0.5
    max_grad_norm: PositiveFloat = 0.5
    target_kl: PositiveFloat | None = None
    log_std_init: FiniteFloat = 0.0


class SACConfig(AlgoBase):
    """SAC hyperparameters (stable-baselines3 names and defaults)."""

    name: Literal["sac"]
    net_arch: list[PositiveInt] = Field(default=[256, 256], description="hidden layer sizes")
    activation: Activation = "relu"
    buffer_size: PositiveInt = 1_000_000
    learning_starts: Annotated[int, Field(ge=0)] = 100
    batch_size: PositiveInt = 256
    tau: Discount = 0.005
    train_freq: PositiveInt = 1
    gradient_steps: Annotated[int, Field(ge=-1)] = 1
    ent_coef: Literal["auto"] | PositiveFloat = "auto"
    target_update_interval: PositiveInt = 1
    log_std_init: FiniteFloat = -3.0


class RecurrentPPOConfig(PPOConfig):
    """sb3-contrib's RecurrentPPO: PPO with an LSTM before the actor's (and the critic's) MLP, so that the policy
    carries a memory of the episode (its sb3-contrib names and defaults, but a 64-unit LSTM)."""

    name: Literal["recurrent_ppo"]  # type: ignore[assignment]
    n_steps: Annotated[int, Field(gt=1)] = 128
    batch_size: Annotated[int, Field(gt=1)] = 128
    lstm_hidden_size: PositiveInt = Field(64, description="LSTM units")
    n_lstm_layers: PositiveInt = 1
    shared_lstm: bool = Field(False, description="one LSTM for the actor and the critic")
    enable_critic_lstm: bool = Field(True, description="the critic's own LSTM (when not shared)")


AlgoConfig = Annotated[PPOConfig | SACConfig | RecurrentPPOConfig, Field(discriminator="name")]
