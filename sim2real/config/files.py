"""The file format: YAML read with unique keys, ``extends:``, ``FIELD=VALUE`` overrides, validation errors as
``file: field.path: what is wrong``, and the resolved config written back as YAML.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from sim2real.config.experiment import Config
from sim2real.config.study import StudyConfig
from sim2real.errors import Sim2RealError


def _format_error(
    source: str,
    error: ValidationError,
    root: type[BaseModel] | None = None,
    overrides: Sequence[str] = (),
    set_by: str = "--set",
) -> str:
    """All validation problems on one line: ``file: field.path: what is wrong``. A field an override set is named
    with it (``field.path (--set field.path='value'): ...``): the value came from there, not from the file."""
    by_path: dict[str, list[tuple[str, str]]] = {}
    for item in error.errors():
        unknown_key = item["type"] == "extra_forbidden"
        path, allowed = _walk(item["loc"], unknown_key, root or Config)
        message = item["msg"].removeprefix("Value error, ")
        if unknown_key:
            message = f"unknown key (allowed: {', '.join(allowed)})"
        elif item["type"] == "missing":
            message = "required key is missing"
        by_path.setdefault(path, []).append((item["type"], message))
    problems: list[str] = []
    for path, items in by_path.items():
        # A value that fits one member of a union (a distribution, say) reports why it is not the others
        # (not a number, not a list): the member it was meant for says what is really wrong.
        specific = [m for kind, m in items if not kind.endswith(("_type", "_parsing"))] or [m for _, m in items]
        label = f"{path} ({_override_of(path, overrides, set_by)})" if _override_of(path, overrides, set_by) else path
        problems.extend(f"{label}: {m}" if path else m for m in dict.fromkeys(specific))
    return f"{source}: " + "; ".join(problems)


def _override_of(path: str, overrides: Sequence[str], set_by: str) -> str:
    """The override that set ``path`` (or a field inside it, or the section that holds it), as the user gave it,
    its value cut to a few dozen characters; "" when the file set it."""
    for item in reversed(overrides):  # the last one given is the one that holds
        key, _, value = item.partition("=")
        if path and (key == path or key.startswith(path + ".") or path.startswith(key + ".")):
            shown = value if len(value) <= 40 else f"{value[:37]}... ({len(value)} characters)"
            return f"{set_by} {key}={shown!r}" if set_by == "--set" else f"{set_by}: {key}={shown!r}"
    return ""


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
    """The literal that picks ``model`` out of a tagged union (its ``name`` or ``dist`` field)."""
    field = model.model_fields.get("name") or model.model_fields.get("dist")
    args = get_args(field.annotation) if field else ()
    return args[0] if args else None


def _walk(loc: tuple[int | str, ...], unknown_key: bool, root: type[BaseModel]) -> tuple[str, list[str]]:
    """The path of an error as the file spells it, and the keys allowed in the mapping that holds it.

    pydantic's locations also name union members (``ppo``, ``float``, ``constrained-float``...); walking the
    schema tells those apart from field names and from free dict keys such as target names.
    """
    models: list[type[BaseModel]] = [root]
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


def parse_config(data: Any, source: str = "config", overrides: Sequence[str] = (), set_by: str = "--set") -> Config:
    """Validates already-parsed YAML data; ``source`` names it in error messages, and a field set by one of
    ``overrides`` (given by ``set_by``) is named with it."""
    if not isinstance(data, dict):
        raise Sim2RealError(f"{source}: expected a mapping of keys (env, source, targets, algo, ...)")
    try:
        config = Config.model_validate(data)
    except ValidationError as error:
        raise Sim2RealError(_format_error(source, error, overrides=overrides, set_by=set_by)) from None
    config._origin = source
    return config


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, except that a key given twice in one mapping is an error: plain YAML keeps the
    last one and drops the first without a word (two ``train:`` sections, one silently ignored)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"'{key}' is given twice (lines {seen[key]} and {line}); keep one", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    """YAML text as data (safe types only), refusing a key given twice in one mapping."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no Python objects


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise Sim2RealError(f"{path}: no such config file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise Sim2RealError(f"{path}: cannot read ({error})") from None
    try:
        return parse_yaml(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        raise Sim2RealError(f"{path}: malformed YAML{where}: {problem}") from None


def apply_overrides(data: dict[str, Any], overrides: list[str], source: str | None = None) -> dict[str, Any]:
    """Sets single fields from ``dotted.path=value`` strings; the value is read as a YAML scalar or list.

    ``source`` names where the strings came from in errors (default: the ``overrides`` argument).
    """
    where = source if source is not None else "{overrides}"
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise Sim2RealError(f"{where} {item!r}: expected FIELD=VALUE, e.g. train.seed=3", overrides=None)
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise Sim2RealError(f"{where} {item!r}: the value is not valid YAML", overrides=None) from None
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise Sim2RealError(f"{where} {item!r}: '{part}' is not a section", overrides=None)
            node = child
        node[parts[-1]] = value
    return data


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` on top of ``base``: mappings merge key by key, anything else (lists too) replaces."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_config_data(path: str | Path, _chain: tuple[Path, ...] = ()) -> Any:
    """A config file's data with its ``extends: OTHER.yaml`` (relative to the file) merged underneath."""
    path = Path(path)
    data = read_yaml(path)
    if not isinstance(data, dict) or "extends" not in data:
        return data
    parent = data.pop("extends")
    if not isinstance(parent, str):
        raise Sim2RealError(f"{path}: extends: expected the path of another config file")
    parent_path = (path.parent / parent).resolve()
    if parent_path in _chain or parent_path == path.resolve():
        raise Sim2RealError(f"{path}: extends: {parent} leads back to itself")
    base = read_config_data(parent_path, (*_chain, path.resolve()))
    if not isinstance(base, dict):
        raise Sim2RealError(f"{parent_path}: expected a mapping of keys (env, source, targets, algo, ...)")
    return _merge(base, data)


def load_config(path: str | Path, overrides: list[str] | None = None) -> Config:
    """Reads (following ``extends``), overrides and validates a config file."""
    data = read_config_data(path)
    if isinstance(data, dict) and overrides:
        data = apply_overrides(data, overrides)
    return parse_config(data, str(path), overrides or ())


def dump_config(config: Config) -> str:
    """The resolved config as YAML (every default written out), for the run folder and TensorBoard."""
    return yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False)


def load_study(path: str | Path, overrides: list[str] | None = None) -> StudyConfig:
    """Reads, overrides and validates a study file (``configs/<env>/study.yaml``)."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise Sim2RealError(f"{path}: a study file is a mapping of fields (env, sources, targets, ...)")
    if overrides:
        data = apply_overrides(data, overrides)
    try:
        return StudyConfig.model_validate(data)
    except ValidationError as error:
        raise Sim2RealError(_format_error(str(path), error, StudyConfig, overrides or ())) from None
