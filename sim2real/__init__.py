"""sim2real: sim-to-real transfer for reinforcement learning on MuJoCo, as a library.

The same steps the ``sim2real`` command runs, one import away::

    import sim2real

    config = sim2real.load_config("configs/inverted_double_pendulum/nominal.yaml")
    env = sim2real.make_domain_env(config.env, config.targets["heavy_weak"])   # a target as a gymnasium env
    source = sim2real.train(config)                                            # a run folder with model.zip
    results = sim2real.evaluate(source.run_dir)                                # zero-shot on every domain
    run = sim2real.train_transfer("configs/inverted_double_pendulum/transfer.yaml", source.run_dir, method="freeze")
    card = sim2real.compare([run.run_dir.parents[1]])                          # the transfer scorecard

The data flows one way: config (:mod:`sim2real.config`) -> domain and env (:mod:`sim2real.domain`,
:mod:`sim2real.dynamics`, :mod:`sim2real.randomization`, :mod:`sim2real.wrappers`) -> model
(:mod:`sim2real.training`, :mod:`sim2real.transfer`) -> run folder (:mod:`sim2real.runs`) -> reports
(:mod:`sim2real.evaluation`, :mod:`sim2real.study`). Errors a user can cause are
:class:`Sim2RealError`, whose message names the argument to fix.

Names load on first use, so ``import sim2real`` stays cheap (the CLI answers a bad flag without importing torch).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that owns it.
_EXPORTS = {
    # configs
    "Config": "sim2real.config",
    "SweepParam": "sim2real.config",
    "load_config": "sim2real.config",
    "parse_config": "sim2real.config",
    "load_study": "sim2real.config",
    # domains as envs
    "DomainSpec": "sim2real.domain",
    "DynamicsWrapper": "sim2real.domain",
    "make_domain_env": "sim2real.domain",
    "Change": "sim2real.dynamics",
    "Dynamics": "sim2real.dynamics",
    "QUANTITIES": "sim2real.dynamics",
    # randomization and reality-gap wrappers
    "RandomChange": "sim2real.randomization",
    "DynamicsRandomizer": "sim2real.randomization",
    "Uniform": "sim2real.randomization",
    "LogUniform": "sim2real.randomization",
    "Normal": "sim2real.randomization",
    "Choice": "sim2real.randomization",
    "AdrRange": "sim2real.randomization",
    "ObservationNoise": "sim2real.wrappers",
    "ObservationBias": "sim2real.wrappers",
    "ActionNoise": "sim2real.wrappers",
    "ActionLag": "sim2real.wrappers",
    "ActionLatency": "sim2real.wrappers",
    "ActionScale": "sim2real.wrappers",
    "ActionSaturation": "sim2real.wrappers",
    # training, transfer, evaluation
    "train": "sim2real.training",
    "TrainResult": "sim2real.training",
    "Transfer": "sim2real.transfer",
    # ``sim2real.transfer`` is the transfer package (Transfer, layer groups, progressive nets), so the verb that
    # trains a transfer run is ``train_transfer``.
    "train_transfer": "sim2real.api",
    "evaluate": "sim2real.api",
    "sweep": "sim2real.api",
    "compare": "sim2real.api",
    "export": "sim2real.api",
    "RunFolder": "sim2real.runs",
    "Sim2RealError": "sim2real.errors",
    # system identification: recordings in, a domain out
    "IdentifyParam": "sim2real.config",
    "Trajectories": "sim2real.identification",
    "read_trajectories": "sim2real.identification",
    "record": "sim2real.identification",
    "identify": "sim2real.identification",
    "write_identification": "sim2real.identification",
}

__all__ = [
    "QUANTITIES",
    "ActionLag",
    "ActionLatency",
    "ActionNoise",
    "ActionSaturation",
    "ActionScale",
    "AdrRange",
    "Change",
    "Choice",
    "Config",
    "DomainSpec",
    "Dynamics",
    "DynamicsRandomizer",
    "DynamicsWrapper",
    "IdentifyParam",
    "LogUniform",
    "Normal",
    "ObservationBias",
    "ObservationNoise",
    "RandomChange",
    "RunFolder",
    "Sim2RealError",
    "SweepParam",
    "TrainResult",
    "Trajectories",
    "Transfer",
    "Uniform",
    "compare",
    "evaluate",
    "export",
    "identify",
    "load_config",
    "load_study",
    "make_domain_env",
    "parse_config",
    "read_trajectories",
    "record",
    "sweep",
    "train",
    "train_transfer",
    "write_identification",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'sim2real' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])


if TYPE_CHECKING:
    from sim2real.api import compare, evaluate, sweep, train_transfer
    from sim2real.config import Config, IdentifyParam, SweepParam, load_config, load_study, parse_config
    from sim2real.domain import DomainSpec, DynamicsWrapper, make_domain_env
    from sim2real.dynamics import QUANTITIES, Change, Dynamics
    from sim2real.errors import Sim2RealError
    from sim2real.identification import Trajectories, identify, read_trajectories, record, write_identification
    from sim2real.randomization import AdrRange, Choice, DynamicsRandomizer, LogUniform, Normal, RandomChange, Uniform
    from sim2real.runs import RunFolder
    from sim2real.training import TrainResult, train
    from sim2real.transfer import Transfer
    from sim2real.wrappers import (
        ActionLag,
        ActionLatency,
        ActionNoise,
        ActionSaturation,
        ActionScale,
        ObservationBias,
        ObservationNoise,
    )
