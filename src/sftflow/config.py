"""Typed, validated configuration shared by every stage.

Each stage declares its options as a ``StrictModel``: the class *is* the schema. An
unknown or misspelled key is an error that names the closest valid key (``**kwargs``
that swallow typos are how options silently stop working). ``--set a.b=value``
overrides are applied to the raw mapping before validation, so they are checked the
same way as the file.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator


class ConfigError(ValueError):
    pass


def closest(name: str, options) -> str | None:
    m = difflib.get_close_matches(name, list(options), n=1, cutoff=0.5)
    return m[0] if m else None


def unknown_key_message(key: str, where: str, options) -> str:
    hint = closest(key, options)
    msg = f"unknown key '{key}' in {where}"
    return msg + (f"; did you mean '{hint}'?" if hint else f"; valid keys: {', '.join(sorted(options))}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, protected_namespaces=())

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            valid = set(cls.model_fields)
            for f in cls.model_fields.values():
                if f.alias:
                    valid.add(f.alias)
            for key in data:
                if key not in valid:
                    raise ValueError(unknown_key_message(str(key), cls.__name__, valid))
        return data


T = TypeVar("T", bound=BaseModel)


def parse_value(text: str) -> Any:
    """'1e-4' -> 0.0001, 'true' -> True, '[a, b]' -> list; anything else stays a string."""
    try:
        v = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    # YAML 1.1 reads '1e-4' as a string; people mean a float.
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    for item in overrides or []:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node = data
        for p in parts[:-1]:
            if node.get(p) is None:
                node[p] = {}
            if not isinstance(node[p], dict):
                raise ConfigError(f"override {item!r}: '{p}' is not a section")
            node = node[p]
        node[parts[-1]] = parse_value(value)
    return data


def format_validation_error(e: ValidationError, source: str) -> str:
    lines = [f"{source}: invalid configuration"]
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"  {loc}: {msg}")
    return "\n".join(lines)


def validate(model: type[T], data: dict[str, Any], source: str = "config") -> T:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(format_validation_error(e, source)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    try:
        data = yaml.safe_load(path.read_text("utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_config(model: type[T], path: str | Path | None = None,
                overrides: list[str] | None = None, base: dict[str, Any] | None = None) -> T:
    data = dict(base or {})
    if path is not None:
        data.update(load_yaml(path))
    apply_overrides(data, overrides)
    return validate(model, data, str(path) if path else "config")


def dump_yaml(cfg: BaseModel, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False))
    return path
