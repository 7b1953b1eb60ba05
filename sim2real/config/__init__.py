"""Typed schema of the YAML files in ``configs/``: the only place that knows the file format.

A config names a base env, a ``source`` domain, one or more named ``targets``, the algorithm with its
hyperparameters, and the training, evaluation and run-folder settings. Every field is typed; unknown keys,
wrong types and out-of-range values are refused with the file, the field path and what is allowed.

This package is the schema and the file format (YAML, ``extends:``, ``FIELD=VALUE`` overrides) only: the
runtime objects a config describes are built where they are used (a domain's changes, distributions and
wrappers in :mod:`sim2real.domain`, the run folder's name in :mod:`sim2real.runs`, HPARAMS in
:mod:`sim2real.logging`), so nothing here imports the simulator side.

One module per part, each importing only those before it in this list:

- :mod:`~sim2real.config.common`: the strict base model and the field types every part uses
- :mod:`~sim2real.config.domains`: a domain's dynamics changes, distributions, reality gap and ADR
- :mod:`~sim2real.config.algo`: the algorithm and its network
- :mod:`~sim2real.config.train`: training, evaluation and run-folder settings
- :mod:`~sim2real.config.params`: quantities over a range (sweep axes, identified parameters)
- :mod:`~sim2real.config.transfer`: the transfer section (methods, recipe, warning, guard)
- :mod:`~sim2real.config.adapt`: the adapt section (the sim-to-real loop on a target)
- :mod:`~sim2real.config.student`: observation history, privileged inputs, the adapting student
- :mod:`~sim2real.config.experiment`: a config file as a whole (:class:`Config`)
- :mod:`~sim2real.config.study`: a study file (:class:`StudyConfig`)
- :mod:`~sim2real.config.files`: reading, overriding, validating and writing the files

Every public name is importable from ``sim2real.config`` itself.
"""

from __future__ import annotations

from sim2real.config.adapt import ADAPT_METHOD, AdaptConfig
from sim2real.config.algo import (
    Activation,
    AlgoBase,
    AlgoConfig,
    Discount,
    LinearSchedule,
    NonNegativeFloat,
    PPOConfig,
    RecurrentPPOConfig,
    SACConfig,
)
from sim2real.config.common import FiniteFloat, Name, PositiveFloat, PositiveInt, Quantity, Strict
from sim2real.config.domains import (
    AdrConfig,
    AdrDist,
    BiasTerm,
    ChoiceDist,
    DistributionConfig,
    Domain,
    DynamicsChange,
    LagTerm,
    LatencyTerm,
    LogUniformDist,
    NoiseTerm,
    NormalDist,
    RealityGap,
    SamplingConfig,
    SaturationTerm,
    ScaleTerm,
    UniformDist,
    WrapperValue,
)
from sim2real.config.experiment import Config
from sim2real.config.files import (
    apply_overrides,
    dump_config,
    load_config,
    load_study,
    parse_config,
    parse_yaml,
    read_config_data,
    read_yaml,
)
from sim2real.config.params import ACTION_LAG, SENSOR_OFFSET, IdentifyParam, ParamRange, SweepParam
from sim2real.config.student import HistoryConfig, PrivilegedTerm, StudentConfig
from sim2real.config.study import (
    StudyBudgets,
    StudyConfig,
    StudyIdentify,
    StudyRecording,
    StudySource,
    StudySweep,
    StudyVariant,
)
from sim2real.config.train import EvalConfig, NormalizeConfig, RunConfig, TrainConfig
from sim2real.config.transfer import (
    RECIPE_METHODS,
    RECIPE_VALUES,
    TRANSFER_METHODS,
    AnchorConfig,
    CriticWarmupConfig,
    EarlyWarningConfig,
    FreezeConfig,
    GuardConfig,
    ProgressiveConfig,
    RollbackConfig,
    TransferConfig,
    TransferMethod,
    TransferRecipe,
)

__all__ = [
    "ACTION_LAG",
    "ADAPT_METHOD",
    "RECIPE_METHODS",
    "RECIPE_VALUES",
    "SENSOR_OFFSET",
    "TRANSFER_METHODS",
    "Activation",
    "AdaptConfig",
    "AdrConfig",
    "AdrDist",
    "AlgoBase",
    "AlgoConfig",
    "AnchorConfig",
    "BiasTerm",
    "ChoiceDist",
    "Config",
    "CriticWarmupConfig",
    "Discount",
    "DistributionConfig",
    "Domain",
    "DynamicsChange",
    "EarlyWarningConfig",
    "EvalConfig",
    "FiniteFloat",
    "FreezeConfig",
    "GuardConfig",
    "HistoryConfig",
    "IdentifyParam",
    "LagTerm",
    "LatencyTerm",
    "LinearSchedule",
    "LogUniformDist",
    "Name",
    "NoiseTerm",
    "NonNegativeFloat",
    "NormalDist",
    "NormalizeConfig",
    "PPOConfig",
    "ParamRange",
    "PositiveFloat",
    "PositiveInt",
    "PrivilegedTerm",
    "ProgressiveConfig",
    "Quantity",
    "RealityGap",
    "RecurrentPPOConfig",
    "RollbackConfig",
    "RunConfig",
    "SACConfig",
    "SamplingConfig",
    "SaturationTerm",
    "ScaleTerm",
    "Strict",
    "StudentConfig",
    "StudyBudgets",
    "StudyConfig",
    "StudyIdentify",
    "StudyRecording",
    "StudySource",
    "StudySweep",
    "StudyVariant",
    "SweepParam",
    "TrainConfig",
    "TransferConfig",
    "TransferMethod",
    "TransferRecipe",
    "UniformDist",
    "WrapperValue",
    "apply_overrides",
    "dump_config",
    "load_config",
    "load_study",
    "parse_config",
    "parse_yaml",
    "read_config_data",
    "read_yaml",
]
