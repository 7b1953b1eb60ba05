"""The source anchor: a KL penalty that holds a fine-tuned policy near its source early in training."""

from __future__ import annotations

import copy
from typing import Any

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.logger import Logger


class Anchor:
    """``weight(t) x KL(source || current)`` on observations of the current rollout, against a frozen copy of the
    source policy: added to each PPO update's loss through the optimizer
    (:class:`~sim2real.transfer.optimizers.ScaledLearningRates`).

    The weight falls linearly from ``settings.weight`` to zero over the first ``settings.decay`` of the budget.
    The KL is between the two diagonal Gaussians of the actions, summed over action dimensions, averaged over a
    mini-batch of the rollout's (normalized) observations drawn with the run's seed.
    """

    def __init__(self, model: BaseAlgorithm, reference: dict[str, torch.Tensor], weight: float, decay: float) -> None:
        self.model = model
        self.source: torch.nn.Module = copy.deepcopy(model.policy)
        self.source.load_state_dict({**self.source.state_dict(), **reference})
        for param in self.source.parameters():
            param.requires_grad_(False)
        self.initial = weight
        self.decay = decay
        self.generator = torch.Generator().manual_seed(int(model.seed or 0))
        self.last_kl = 0.0

    def weight(self) -> float:
        progress = 1.0 - float(self.model._current_progress_remaining)
        return self.initial * max(0.0, 1.0 - progress / self.decay)

    def loss(self) -> torch.Tensor | None:
        """The weighted KL on a mini-batch of the rollout's observations; None once the weight is zero."""
        weight = self.weight()
        policy: Any = self.model.policy
        if weight == 0.0:
            return None
        buffer: Any = getattr(self.model, "rollout_buffer", None)
        observations = torch.as_tensor(buffer.observations.reshape(-1, *buffer.obs_shape), device=policy.device)
        size = min(len(observations), int(getattr(self.model, "batch_size", 64)))
        batch = observations[torch.randperm(len(observations), generator=self.generator)[:size].to(policy.device)]
        frozen: Any = self.source
        with torch.no_grad():
            source = frozen.get_distribution(batch).distribution
        current = policy.get_distribution(batch).distribution
        kl = torch.distributions.kl_divergence(source, current).sum(dim=-1).mean()
        self.last_kl = float(kl.detach())
        return weight * kl

    def record(self, logger: Logger) -> None:
        logger.record("transfer/anchor_weight", self.weight())
        logger.record("transfer/anchor_kl", self.last_kl)
