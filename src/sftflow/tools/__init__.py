"""Tools a model can call: register a Python function by name, and the evaluation runs it.

    from sftflow.tools import register_tool

    @register_tool("fx_rate", description="today's rate between two currencies",
                   parameters={"type": "object", "properties": {"pair": {"type": "string"}},
                               "required": ["pair"]})
    def fx_rate(pair: str) -> str:
        ...

A tool takes keyword arguments (the call's JSON ``arguments``) and returns a string (or
anything ``str()`` turns into one); an exception it raises becomes an error result the
model sees and the metrics count. ``calculate`` (a safe arithmetic evaluator) is
registered here. ``schemas(names)`` gives the OpenAI ``tools`` list for a record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .calculator import CALCULATE_SCHEMA, CalculatorError, calculate, safe_eval


@dataclass(frozen=True)
class Tool:
    name: str
    fn: Callable[..., Any]
    description: str = ""
    parameters: dict = field(default_factory=lambda: {"type": "object", "properties": {}})

    def schema(self) -> dict:
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": self.parameters}}


_REGISTRY: dict[str, Tool] = {}


def register_tool(name: str, fn: Callable[..., Any] | None = None, *, description: str = "",
                  parameters: dict | None = None, replace: bool = False):
    """Register ``fn`` under ``name``; usable as a decorator. Re-registering a name needs ``replace``."""
    def add(f: Callable[..., Any]):
        if name in _REGISTRY and not replace:
            raise ValueError(f"a tool named {name!r} is already registered (pass replace=True)")
        _REGISTRY[name] = Tool(name=name, fn=f, description=description,
                               parameters=parameters or {"type": "object", "properties": {}})
        return f
    return add(fn) if fn is not None else add


def get_tool(name: str) -> Tool:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"no tool named {name!r}; registered: {', '.join(sorted(_REGISTRY)) or 'none'}") from None


def registered() -> list[str]:
    return sorted(_REGISTRY)


def schemas(names: list[str]) -> list[dict]:
    return [get_tool(n).schema() for n in names]


register_tool("calculate", calculate, parameters=CALCULATE_SCHEMA,
              description="Evaluate an arithmetic expression (numbers, + - * / ** and parentheses).")

__all__ = ["Tool", "register_tool", "get_tool", "registered", "schemas", "calculate", "safe_eval",
           "CalculatorError"]
