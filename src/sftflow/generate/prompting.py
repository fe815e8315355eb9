"""Prompts live as text files in ``prompts/``; each is filled with ``$name`` fields.

``string.Template`` rather than ``str.format``: prompts are full of braces (JSON,
code), and a missing field must be an error, not a silently empty hole.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from importlib import resources
from string import Template


@lru_cache(maxsize=None)
def load_prompt(name: str) -> str:
    path = resources.files("sftflow.generate") / "prompts" / f"{name}.txt"
    if not path.is_file():
        raise FileNotFoundError(f"no prompt named {name!r} in sftflow/generate/prompts")
    return path.read_text(encoding="utf-8")


def render(name: str, **fields) -> str:
    try:
        return Template(load_prompt(name)).substitute(**fields).strip() + "\n"
    except KeyError as e:
        raise KeyError(f"prompt {name!r} needs the field {e.args[0]!r}") from None


def prompt_id(name: str) -> str:
    """Name plus a short hash of the file: provenance that changes when the prompt does."""
    return f"{name}@{hashlib.sha256(load_prompt(name).encode()).hexdigest()[:8]}"
