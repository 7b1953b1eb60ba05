"""A source without an observation history, reused by a target that has one (``ObservationHistory``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.config import HistoryConfig
from sim2real.modelfile import ModelFile


def history_inputs(source: ModelFile, model: BaseAlgorithm, history: HistoryConfig | None) -> tuple[int, int] | None:
    """(source, target) observation sizes when the target sees a history (``ObservationHistory``) that the
    source did not: its observation is then the source's followed by the past, and the source's weights carry
    over with zero weights on the past. None when the spaces are not related that way."""
    if history is None or source.observation is None or len(source.observation.shape) != 1:
        return None
    n = int(source.observation.shape[0])
    target = int(np.prod(model.observation_space.shape or (1,)))
    actions = int(np.prod(model.action_space.shape or (1,))) if history.actions else 0
    return (n, target) if target == (history.steps + 1) * n + history.steps * actions else None


def widen_inputs(
    weights: dict[str, torch.Tensor], target: dict[str, torch.Tensor], source_size: int, target_size: int
) -> dict[str, torch.Tensor]:
    """The source's input layers widened for the target's longer observation: the source's columns on the
    current observation (the first ``source_size`` inputs; a critic's action inputs follow the observation on
    both sides), zeros on the past. At step 0 the target computes exactly what the source did, and it learns
    to use the past; a zero column still gets gradients, so nothing is frozen out."""
    widened = dict(weights)
    for name, weight in weights.items():
        wanted = target.get(name)
        if not name.endswith(".0.weight") or wanted is None or weight.ndim != 2 or wanted.shape == weight.shape:
            continue
        extra = weight.shape[1] - source_size  # a critic's action inputs
        if wanted.shape != (weight.shape[0], target_size + extra) or extra < 0:
            continue
        grown = torch.zeros(wanted.shape, dtype=weight.dtype)
        grown[:, :source_size] = weight[:, :source_size]
        grown[:, target_size:] = weight[:, source_size:]
        widened[name] = grown
    return widened


def widen_statistics(state: dict[str, Any], history: HistoryConfig, actions: int) -> dict[str, Any]:
    """The source's observation statistics for a history observation: the source's for the current and every
    past observation, mean 0 and variance 1 for the past actions (whose columns start at zero weight)."""
    rms = state["obs_rms"]
    mean, var = np.asarray(rms["mean"], dtype=np.float64), np.asarray(rms["var"], dtype=np.float64)
    past = history.steps * actions if history.actions else 0
    obs_rms = {
        "mean": np.concatenate([mean] * (history.steps + 1) + [np.zeros(past)]).tolist(),
        "var": np.concatenate([var] * (history.steps + 1) + [np.ones(past)]).tolist(),
        "count": rms["count"],
    }
    return {**state, "obs_rms": obs_rms}
