"""The source model of a transfer run: read weights-only and checked against the target before anything is built."""

from __future__ import annotations

from pathlib import Path

from stable_baselines3.common.base_class import BaseAlgorithm

from sim2real.config import Config
from sim2real.errors import Sim2RealError
from sim2real.modelfile import ModelFile, read_model
from sim2real.runs import VECNORMALIZE_JSON


def read_source(config: Config, source: str | Path | None, trusted: bool = False) -> ModelFile | None:
    """The source model of a transfer run (None for scratch), read weights-only and checked against the config.

    Args:
        config: the transfer run's config.
        source: the source's run folder or zip (default: ``config.transfer.source``).
        trusted: allow the source's pickled normalization statistics (``vecnormalize.pkl``) to be read.
    """
    assert config.transfer is not None
    if config.transfer.method == "scratch":
        return None
    source = source if source is not None else config.transfer.source
    if source is None:
        raise Sim2RealError(
            f"transfer method '{config.transfer.method}' needs a source: pass {{source}} (a run folder or zip) "
            "or set transfer.source",
            source="RUN_DIR_OR_ZIP",
        )
    model_file = read_model(Path(source), trusted=trusted)
    if model_file.algo != config.algo.name:
        raise Sim2RealError(
            f"source {model_file.path} is a {model_file.algo.upper()} model but the config trains "
            f"{config.algo.name.upper()} (set algo.name: {model_file.algo})"
        )
    if config.train.normalize is not None and model_file.normalization is None:
        raise Sim2RealError(
            f"source {model_file.path} has no normalization statistics ({VECNORMALIZE_JSON}) but the config normalizes "
            "observations; its weights expect raw observations: set train.normalize: null"
        )
    if config.train.normalize is None and model_file.normalization is not None:
        raise Sim2RealError(
            f"source {model_file.path} was trained on normalized observations; its weights need them: "
            "set train.normalize in the config"
        )
    return model_file


def space_mismatch(source: ModelFile, model: BaseAlgorithm, groups: list[str]) -> str:
    obs_shape = tuple(model.observation_space.shape or ())
    act_shape = tuple(model.action_space.shape or ())
    parts = []
    if source.observation is not None and source.observation.shape != obs_shape:
        # Shapes only: a history's bounds are long arrays, which would wrap the one-line error.
        parts.append(f"observation space: source shape {source.observation.shape}, target shape {obs_shape}")
    if source.action is not None and source.action.shape != act_shape:
        parts.append(f"action space: source shape {source.action.shape}, target shape {act_shape}")
    what = "; ".join(parts) or f"layer shapes differ in {', '.join(groups)} (another net_arch?)"
    return f"source {source.path} does not fit the target: {what}; set transfer.adapter: true to re-initialize " + (
        f"the layers that differ ({', '.join(groups)})"
    )
