"""Command-line flags generated from a stage's typed config, so a field and its flag cannot drift.

Each config field becomes one option: a bool is ``--x/--no-x``, a ``Literal`` a choice, a
list a repeatable option, a nested section ``--section-field``, and anything richer (a
mapping, a list of mappings, ``int | float``) YAML text such as ``--best-probe '{kind: regex}'``.
Every generated option defaults to None, so only the flags a user typed override the
``--config`` file, and the help shows the config's own default. A verb names its flags with
``config_flags`` and receives what was typed as one nested mapping, ``given``.

Built on typer's signature reading (a function's ``__signature__``) rather than on click
directly, so generated and hand-written options share typer's parsing and help.
"""

from __future__ import annotations

import inspect
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Optional, Union

import typer
from pydantic import BaseModel

from ..config import parse_value

SIMPLE = (str, int, float)
# The engine section's short names, shared by every data stage's verb.
ENGINE_NAMES = {"engine.kind": ("--engine", "--engine-kind"), "engine.address": ("--ray-address", "--engine-address")}


@dataclass(frozen=True)
class Flag:
    """One command-line option and the config field it sets."""

    path: tuple[str, ...]                 # field path inside the stage's config: ("backend", "kind")
    decls: tuple[str, ...]                # "--backend", or "--use-cache/--no-cache" for a bool
    annotation: Any                       # what typer parses the text into
    help: str
    convert: Callable[[Any], Any] = field(default=lambda v: v)

    @property
    def param(self) -> str:
        return "f_" + "__".join(self.path)

    def option(self):
        panel = " ".join(self.path[:-1]).replace("_", " ") or None   # sections get their own panel
        return typer.Option(None, *self.decls, help=self.help, show_default=False, rich_help_panel=panel)


def _strip_optional(tp: Any) -> Any:
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def _is_section(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _default_text(info) -> str:
    if info.is_required():
        return ""
    if info.default_factory is not None:
        value = info.default_factory()
        if isinstance(value, BaseModel):
            return ""
    else:
        value = info.default
    if value is None or value == [] or value is ...:
        return ""
    if isinstance(value, list):
        joined = ",".join(map(str, value))
        value = joined if len(joined) <= 40 else f"{len(value)} entries, see the config docs"
    return f" (default: {str(value).lower() if isinstance(value, bool) else value})"


def _split_commas(values):
    return [p.strip() for v in values for p in str(v).split(",") if p.strip()]


def _literal_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def field_flag(path: tuple[str, ...], info, decls: tuple[str, ...] | None = None, prefix: str = "") -> Flag:
    """The option of one config field: its type decides how the text is parsed."""
    tp = _strip_optional(info.annotation)
    name = "--" + prefix + "-".join(path).replace("_", "-")
    help_ = (info.description or "").strip()
    origin = typing.get_origin(tp)
    if tp is bool:
        on, *rest = decls or (name,)
        off = rest[0] if rest else "--no-" + on.removeprefix("--")
        return Flag(path, (f"{on}/{off}",), Optional[bool], help_ + _default_text(info))
    decls = decls or (name,)
    if origin is Literal:
        values = typing.get_args(tp)
        texts = {_literal_text(v): v for v in values}
        return Flag(path, decls, Optional[Literal[tuple(texts)]], help_ + _default_text(info),
                    convert=texts.__getitem__)
    if origin is list:
        (item,) = typing.get_args(tp) or (str,)
        if typing.get_origin(item) is Literal:   # a list of names: --scores ppl,ifd or repeated
            help_ = (help_ + " " if help_ else "") + "one of " + ", ".join(map(str, typing.get_args(item)))
            return Flag(path, decls, Optional[list[str]], help_ + " (repeat or comma-separate)"
                        + _default_text(info), convert=_split_commas)
        if item in SIMPLE:
            return Flag(path, decls, Optional[list[item]], help_ + " (repeat for more)" + _default_text(info),
                        convert=list)
    if tp in SIMPLE:
        return Flag(path, decls, Optional[tp], help_ + _default_text(info))
    # A mapping, a list of mappings or a union of numbers: YAML text, checked by the config.
    return Flag(path, decls, Optional[str], (help_ + " " if help_ else "") + "(YAML)" + _default_text(info),
                convert=parse_value)


def config_flags(model: type[BaseModel], *, section: tuple[str, ...] = (),
                 skip: dict[str, str] | None = None, names: dict[str, tuple[str, ...]] | None = None,
                 only: tuple[str, ...] | None = None, prefix: str = "") -> list[Flag]:
    """One flag per field of ``model`` (sections expanded as ``--section-field``).

    ``skip`` maps a field to why it has no flag (a positional argument, fixed by the verb);
    the drift test reads it. ``names`` gives a field other option names (dotted field paths
    for nested ones): a short alias kept from earlier versions, or the pair of a bool.
    ``prefix`` starts every generated name (``novelty-`` -> ``--novelty-folds``).
    """
    skip, names = skip or {}, names or {}
    for key in [*skip, *names]:   # a stale name or skip entry is a bug, found on import
        if key.split(".")[0] not in model.model_fields:
            raise ValueError(f"{model.__name__} has no field {key!r}")
    flags = FlagList()
    for name, info in model.model_fields.items():
        if name in skip or (only is not None and name not in only):
            if name in skip:
                flags.skipped[section + (name,)] = skip[name]
            continue
        tp = _strip_optional(info.annotation)
        if _is_section(tp):
            inner_names = {k.removeprefix(name + "."): v for k, v in names.items() if k.startswith(name + ".")}
            inner_skip = {k.removeprefix(name + "."): v for k, v in skip.items() if k.startswith(name + ".")}
            inner = config_flags(tp, section=section + (name,), skip=inner_skip, names=inner_names, prefix=prefix)
            flags += inner
            flags.skipped.update(inner.skipped)
            continue
        flags.append(field_flag(section + (name,), info, names.get(name), prefix))
    return flags


class FlagList(list):
    """Flags, plus the fields left without one and why (read by the drift test)."""

    def __init__(self, *args):
        super().__init__(*args)
        self.skipped: dict[tuple[str, ...], str] = {}

    def __add__(self, other):
        out = FlagList(list(self) + list(other))
        out.skipped = {**self.skipped, **getattr(other, "skipped", {})}
        return out


def _prefixed(flag: Flag, section: tuple[str, ...]) -> Flag:
    return Flag(section + flag.path, flag.decls, flag.annotation, flag.help, flag.convert)


def in_section(flags: list[Flag], section: str) -> list[Flag]:
    """The same flags, setting fields one level down (``--model`` -> ``backend.model``)."""
    out = FlagList(_prefixed(f, (section,)) for f in flags)
    out.skipped = {(section,) + k: v for k, v in getattr(flags, "skipped", {}).items()}
    return out


def set_path(data: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = data
    for p in path[:-1]:
        node = node.setdefault(p, {})
    node[path[-1]] = value


def collect(flags: list[Flag], values: dict[str, Any]) -> dict[str, Any]:
    """The flags a user typed (parsed values by parameter name) as a nested mapping of config keys."""
    given: dict[str, Any] = {}
    for f in flags:
        value = values.get(f.param)
        # None or an empty repeat: not typed (the parser hands a list option over as () or [])
        if value is not None and not (isinstance(value, (list, tuple)) and not value):
            set_path(given, f.path, f.convert(value))
    return given


def with_flags(*groups: list[Flag]) -> Callable[[Callable], Callable]:
    """Add the generated flags to a verb; the verb receives what was typed as ``given``."""
    flags = [f for g in groups for f in g]

    def wrap(fn: Callable) -> Callable:
        sig = inspect.signature(fn, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "given"]

        def verb(**kwargs):
            return fn(**{k: v for k, v in kwargs.items() if not k.startswith("f_")}, given=collect(flags, kwargs))

        extra = [inspect.Parameter(f.param, inspect.Parameter.KEYWORD_ONLY, default=f.option(),
                                   annotation=f.annotation) for f in flags]
        verb.__signature__ = sig.replace(parameters=own + extra)
        verb.__name__, verb.__qualname__, verb.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
        verb.__module__ = fn.__module__
        verb.flags = flags
        verb.skipped = {k: v for g in groups for k, v in getattr(g, "skipped", {}).items()}
        names = [d for f in flags for decl in f.decls for d in decl.split("/")]
        doubled = {n for n in names if names.count(n) > 1}
        if doubled:
            raise ValueError(f"{fn.__name__}: two fields share the flag(s) {sorted(doubled)}")
        return verb

    return wrap
