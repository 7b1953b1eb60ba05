"""Typed schema of the YAML files in ``configs/``: the only place that knows the file format.

A config names a base env, a ``source`` domain, one or more named ``targets``, the algorithm with its
hyperparameters, and the training, evaluation and run-folder settings. Every field is typed; unknown keys,
wrong types and out-of-range values are refused with the file, the field path and what is allowed.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim2real.dynamics import QUANTITIES, Change
from sim2real.errors import Sim2RealError

FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_\-]*$")]


class Strict(BaseModel):
    """Base of every schema model: unknown keys are errors, not silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DynamicsChange(Strict):
    """A change of one model quantity on some elements, computed from the nominal value."""

    quantity: str = Field(description="which model quantity, e.g. body_mass or geom_friction")
    select: str | list[str] | None = Field(
        None, description="element name, list of names, or 'all' (not used by gravity and timestep)"
    )
    scale: FiniteFloat | list[FiniteFloat] | None = Field(None, description="multiply the nominal value")
    set: FiniteFloat | list[FiniteFloat] | None = Field(None, description="absolute value")
    offset: FiniteFloat | list[FiniteFloat] | None = Field(None, description="add to the nominal value")

    @field_validator("quantity")
    @classmethod
    def _known_quantity(cls, quantity: str) -> str:
        if quantity not in QUANTITIES:
            raise ValueError(f"unknown quantity '{quantity}' (allowed: {', '.join(QUANTITIES)})")
        return quantity

    @model_validator(mode="after")
    def _one_operation(self) -> DynamicsChange:
        given = [op for op in ("scale", "set", "offset") if getattr(self, op) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of scale, set, offset (got {', '.join(given) or 'none'})")
        if QUANTITIES[self.quantity].kind is not None and self.select is None:
            raise ValueError(f"{self.quantity} needs 'select': an element name, a list of names, or 'all'")
        return self

    def to_change(self) -> Change:
        op: Literal["scale", "set", "offset"]
        for op in ("scale", "set", "offset"):
            value = getattr(self, op)
            if value is not None:
                return Change(quantity=self.quantity, op=op, value=value, select=self.select)
        raise AssertionError("validated to have one operation")


class Domain(Strict):
    """A simulation: the base env with some dynamics changed."""

    dynamics: list[DynamicsChange] = Field(default_factory=list, description="changes from the nominal model")

    def changes(self) -> list[Change]:
        return [d.to_change() for d in self.dynamics]


class LinearSchedule(Strict):
    """A value that goes linearly from ``initial`` to ``final`` over training."""

    initial: Annotated[float, Field(gt=0)]
    final: Annotated[float, Field(ge=0)] = 0.0


PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegativeFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]
PositiveInt = Annotated[int, Field(gt=0)]
Discount = Annotated[float, Field(gt=0, le=1)]
Activation = Literal["tanh", "relu", "elu", "leaky_relu"]


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


AlgoConfig = Annotated[PPOConfig | SACConfig, Field(discriminator="name")]


class NormalizeConfig(Strict):
    """Running normalization of observations and rewards (stable-baselines3's VecNormalize)."""

    observations: bool = True
    rewards: bool = True
    clip_obs: Annotated[float, Field(gt=0)] = 10.0


class TrainConfig(Strict):
    total_timesteps: Annotated[int, Field(gt=0)] = Field(100_000, description="environment steps to train")
    n_envs: Annotated[int, Field(ge=1, le=256)] = Field(1, description="parallel environments")
    vec_env: Literal["dummy", "subproc"] = Field("dummy", description="in-process or one process per env")
    normalize: NormalizeConfig | None = Field(None, description="VecNormalize settings; absent: off")
    seed: Annotated[int, Field(ge=0)] = 0
    checkpoint_every: Annotated[int, Field(gt=0)] = Field(50_000, description="steps between checkpoints")
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    progress_bar: bool = True


class EvalConfig(Strict):
    episodes: Annotated[int, Field(ge=1)] = Field(10, description="episodes per domain")
    deterministic: bool = True


class RunConfig(Strict):
    root: str = Field("runs", description="folder holding every run")
    experiment: Name = Field("default", description="runs land in <root>/<env>/<experiment>/seed_<seed>")


class Config(Strict):
    """One experiment: a source domain to train on and target domains to evaluate on."""

    env: str = Field(description="gymnasium id of a MuJoCo env, e.g. InvertedDoublePendulum-v5")
    env_kwargs: dict[str, bool | int | float | str] = Field(default_factory=dict, description="gym.make keywords")
    source: Domain = Field(default_factory=Domain)
    targets: dict[Name, Domain] = Field(default_factory=dict)
    algo: AlgoConfig
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("targets")
    @classmethod
    def _not_source(cls, targets: dict[str, Domain]) -> dict[str, Domain]:
        if "source" in targets:
            raise ValueError("'source' is reserved for the source domain; give the target another name")
        return targets

    def domains(self) -> dict[str, Domain]:
        """The source (named ``source``) followed by the targets."""
        return {"source": self.source, **self.targets}

    def run_dir(self) -> Path:
        namespace, _, name = self.env.rpartition("/")
        snake = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name)
        env = re.sub(r"[^A-Za-z0-9]+", "_", f"{namespace}_{snake}" if namespace else snake).strip("_").lower()
        return Path(self.run.root) / env / self.run.experiment / f"seed_{self.train.seed}"


# ---------------------------------------------------------------------------------------------- loading


def _format_error(source: str, error: ValidationError) -> str:
    """All validation problems on one line: ``file: field.path: what is wrong``."""
    problems = []
    for item in error.errors():
        unknown_key = item["type"] == "extra_forbidden"
        path, allowed = _walk(item["loc"], unknown_key)
        message = item["msg"].removeprefix("Value error, ")
        if unknown_key:
            message = f"unknown key (allowed: {', '.join(allowed)})"
        elif item["type"] == "missing":
            message = "required key is missing"
        problems.append(f"{path}: {message}" if path else message)
    return f"{source}: " + "; ".join(problems)


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    """The schema models an annotation can hold (through Annotated, unions, lists and dicts)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in get_args(annotation) for model in _models_in(arg)]


def _holds_dict(annotation: Any) -> bool:
    """True when the annotation is a dict, possibly inside Annotated or a union (then keys are free names)."""
    if get_origin(annotation) is dict:
        return True
    return get_origin(annotation) is not list and any(_holds_dict(arg) for arg in get_args(annotation))


def _tag(model: type[BaseModel]) -> str | None:
    field = model.model_fields.get("name")
    args = get_args(field.annotation) if field else ()
    return args[0] if args else None


def _walk(loc: tuple[int | str, ...], unknown_key: bool) -> tuple[str, list[str]]:
    """The path of an error as the file spells it, and the keys allowed in the mapping that holds it.

    pydantic's locations also name union members (``ppo``, ``float``, ``constrained-float``...); walking the
    schema tells those apart from field names and from free dict keys such as target names.
    """
    models: list[type[BaseModel]] = [Config]
    expect_key = False
    shown: list[str] = []
    for index, part in enumerate(loc):
        last = index == len(loc) - 1
        if expect_key or isinstance(part, int):
            shown.append(str(part))
            expect_key = False
            continue
        fields = [m.model_fields[part] for m in models if part in m.model_fields]
        if fields:
            shown.append(part)
            if not last:
                expect_key = any(_holds_dict(f.annotation) for f in fields)
                models = [m for f in fields for m in _models_in(f.annotation)]
        elif last and unknown_key:
            shown.append(part)
        else:
            models = [m for m in models if _tag(m) == part] or models
    return ".".join(shown), sorted({key for m in models for key in m.model_fields})


def parse_config(data: Any, source: str = "config") -> Config:
    """Validates already-parsed YAML data; ``source`` names it in error messages."""
    if not isinstance(data, dict):
        raise Sim2RealError(f"{source}: expected a mapping of keys (env, source, targets, algo, ...)")
    try:
        return Config.model_validate(data)
    except ValidationError as error:
        raise Sim2RealError(_format_error(source, error)) from None


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Sim2RealError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise Sim2RealError(f"{path}: cannot read ({error})") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise Sim2RealError(f"{path}: malformed YAML{where}: {problem}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str = "--set") -> dict[str, Any]:
    """Sets single fields from ``dotted.path=value`` strings; the value is read as a YAML scalar or list."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Sim2RealError(f"{source} {item!r}: expected FIELD=VALUE, e.g. train.seed=3")
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise Sim2RealError(f"{source} {item!r}: the value is not valid YAML") from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise Sim2RealError(f"{source} {item!r}: '{part}' is not a section")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Reads, overrides and validates a config file."""
    data = read_yaml(path)
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return parse_config(data, str(path))


def dump_config(config: Config) -> str:
    """The resolved config as YAML (every default written out), for the run folder and TensorBoard."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def flat_hparams(config: Config) -> dict[str, bool | int | float | str]:
    """Scalar hyperparameters and source dynamics as flat ``section/key`` entries for TensorBoard's HPARAMS."""
    flat: dict[str, bool | int | float | str] = {"env": config.env}
    for section in ("algo", "train"):
        for key, value in getattr(config, section).model_dump(mode="json").items():
            if isinstance(value, bool | int | float | str):
                if isinstance(value, float) and not math.isfinite(value):
                    continue
                flat[f"{section}/{key}"] = value
            elif isinstance(value, list):
                flat[f"{section}/{key}"] = str(value)
            elif isinstance(value, dict):
                flat[f"{section}/{key}"] = ",".join(f"{k}={v}" for k, v in value.items())
    for change in config.source.dynamics:
        op = next(o for o in ("scale", "set", "offset") if getattr(change, o) is not None)
        select = change.select if isinstance(change.select, str) or change.select is None else "+".join(change.select)
        key = f"source/{change.quantity}" + (f"/{select}" if select else "") + f"/{op}"
        value = getattr(change, op)
        flat[key] = value if isinstance(value, float) else str(value)
    return flat
