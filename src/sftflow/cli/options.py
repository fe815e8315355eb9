"""Options every verb shares, declared once, and the one way a verb turns them into its config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from ..config import apply_overrides, load_yaml, validate


def config_option(*aliases: str):
    return typer.Option(None, "--config", *aliases,
                        help="YAML with this stage's keys, or a whole recipe (its section is used)")


def set_option(example: str = "key.path=value"):
    return typer.Option(None, "--set", help=f"override a config key after flags and file: {example} (repeat)")


def out_option(default: Any = ..., help: str = "output folder"):
    return typer.Option(default, "-o", "--out", help=help)


def model_option(help: str = "model alias, folder or hub id"):
    """--model for verbs with no stage config behind them (a config's own model field makes its flag)."""
    return typer.Option(None, "--model", help=help)


QUIET = typer.Option(False, "--quiet", help="no progress or summary")


def merge(into: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """Flags over file, section by section (a flag inside a section keeps the file's siblings)."""
    for key, value in given.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            into[key] = merge(dict(into[key]), value)
        else:
            into[key] = value
    return into


def stage_config(model: type[BaseModel], file: Path | None, section: str, given: dict[str, Any],
                 overrides: list[str] | None, source: str):
    """The stage's config from a YAML file, then the flags typed, then ``--set`` overrides.

    The file is either the stage's own keys or a whole recipe, whose ``section`` is taken;
    ``--set section.key=v`` and ``--set key=v`` mean the same.
    """
    raw: dict[str, Any] = {}
    if file is not None:
        raw = load_yaml(file)
        if section not in model.model_fields and isinstance(raw.get(section), dict):
            raw = dict(raw[section])
        elif section in raw and raw[section] is None:
            raw = {}
        source = str(file)
    merge(raw, given)
    apply_overrides(raw, [o.removeprefix(section + ".") for o in overrides or []])
    return validate(model, raw, source)
