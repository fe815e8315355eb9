"""Rendering records with a chat template: choosing the template and the message form it reads.

Templates read the same record in different shapes. Some read ``reasoning_content``,
others ``thinking`` or ``reasoning``; some concatenate tool-call ``arguments`` as a
string (DeepSeek) where others iterate over a mapping (Qwen3.5, GLM); VLM-style
templates iterate over a list of ``{type: "text"}`` parts. (A template that finds a
tool-calling turn by ``content is none`` cannot be reached: transformers drops
None-valued keys before rendering, so we render what inference renders.) ``choose_form`` renders the conversation in each
candidate shape, in a fixed order, and keeps the first one whose rendering contains
every piece of the record (contents, tool results, call names and string arguments,
the tools offered). When none does, the template cannot show the record and we say
which piece it drops: silently training on less than the data is never an option.
"""

from __future__ import annotations

import itertools
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fallbacks import FALLBACK_TEMPLATES


class EncodeError(ValueError):
    """Base class for examples that cannot be encoded."""


class TemplateError(EncodeError):
    """The chat template cannot give a trustworthy mask."""


class TemplateCannotShow(TemplateError):
    """The template has no way to show part of the record (it drops tool calls, a
    reasoning trace or content, or raises on the conversation's shape)."""


_warned: set[int] = set()


def resolve_template(tokenizer, template: str | None = None) -> str:
    """The Jinja template to render with: a named fallback, or the tokenizer's own."""
    if template:
        if template in FALLBACK_TEMPLATES:
            return FALLBACK_TEMPLATES[template]
        if "{%" in template or "{{" in template:
            return template          # a literal Jinja template
        if Path(template).is_file():
            return Path(template).read_text(encoding="utf-8")
        raise TemplateError(f"unknown template {template!r}; expected one of "
                            f"{', '.join(FALLBACK_TEMPLATES)}, a Jinja file or a Jinja string")
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):        # some tokenizers ship several named templates
        own = own.get("default") or next(iter(own.values()))
    if own:
        return own
    if id(tokenizer) not in _warned:
        _warned.add(id(tokenizer))
        warnings.warn("tokenizer has no chat template; using the 'chatml' fallback "
                      "(choose one explicitly with --template alpaca|chatml)", stacklevel=3)
    return FALLBACK_TEMPLATES["chatml"]


# What reasoning templates read to switch thinking off (Qwen3, Nemotron 3: enable_thinking;
# DeepSeek-V3.1: thinking). Templates ignore variables they do not use.
NO_THINKING = {"enable_thinking": False, "thinking": False}


def render(tokenizer, messages: list[dict[str, Any]], template: str, *,
           add_generation_prompt: bool = False, tools: list[dict] | None = None,
           template_vars: dict[str, Any] | None = None) -> str:
    if not messages:
        return ""
    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False, tools=tools,
                                             add_generation_prompt=add_generation_prompt,
                                             **(template_vars or {}))
    except Exception as e:  # noqa: BLE001 - jinja errors raised by the template itself ("System role not supported")
        raise TemplateError(f"chat template failed to render: {type(e).__name__}: {e}") from None


def reasoning_key(template: str) -> str:
    """The name under which this template reads a reasoning trace."""
    for key in ("reasoning_content", "thinking", "reasoning"):
        if key in template:
            return key
    return "reasoning_content"


@dataclass(frozen=True)
class Form:
    """How canonical turns are shown to one template."""
    reasoning_key: str = "reasoning_content"
    arguments_as_text: bool = False     # tool-call arguments as a JSON string
    text_parts: bool = False            # content as [{type: "text", text}]

    def turn(self, m: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"role": m["role"], "content": m["content"]}
        if self.text_parts:
            out["content"] = [{"type": "text", "text": m["content"]}]
        if "reasoning_content" in m:
            out[self.reasoning_key] = m["reasoning_content"]
        if m.get("tool_calls"):
            calls = m["tool_calls"]
            if self.arguments_as_text:
                calls = [dict(c, function=dict(c["function"], arguments=json.dumps(
                    c["function"]["arguments"], ensure_ascii=False))) for c in calls]
            out["tool_calls"] = calls
        for k in ("tool_call_id", "name"):
            if k in m:
                out[k] = m[k]
        return out

    def turns(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [self.turn(m) for m in messages]


def string_leaves(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()] if value.strip() else []
    if isinstance(value, dict):
        return [s for v in value.values() for s in string_leaves(v)]
    if isinstance(value, list):
        return [s for v in value for s in string_leaves(v)]
    return []


def turn_pieces(m: dict[str, Any], *, with_reasoning: bool = True) -> list[tuple[str, str]]:
    """(what, text) pieces of one turn that any faithful rendering must contain."""
    pieces = []
    content = m["content"]
    if m["role"] == "assistant" and "</think>" in content:     # inline trace: templates split it
        head, _, tail = content.rpartition("</think>")
        if with_reasoning:
            pieces += [("reasoning in content", s) for s in [head.split("<think>")[-1].strip()] if s]
        content = tail
    if content.strip():
        pieces.append(("content", content.strip()))
    if with_reasoning and m.get("reasoning_content", "").strip():
        pieces.append(("reasoning_content", m["reasoning_content"].strip()))
    for k, c in enumerate(m.get("tool_calls", [])):
        pieces.append((f"tool_calls[{k}].function.name", c["function"]["name"]))
        pieces += [(f"tool_calls[{k}].function.arguments", s) for s in string_leaves(c["function"]["arguments"])]
    return pieces


def find_piece(text: str, piece: str, start: int = 0) -> tuple[int, int]:
    """(start, end) of ``piece`` in ``text``, also as JSON-escaped text (Llama 3.1 and gpt-oss
    write a tool result through ``tojson``); (-1, -1) when absent."""
    for form in (piece, json.dumps(piece, ensure_ascii=False)[1:-1]):
        at = text.find(form, start)
        if at >= 0:
            return at, at + len(form)
    return -1, -1


def missing_piece(text: str, messages: list[dict[str, Any]], tools) -> str | None:
    """The first piece of the record that ``text`` does not contain (None: all there).

    Reasoning is not required here: templates may drop earlier turns' reasoning by
    design; whether the turn being trained shows it is checked per turn."""
    for i, m in enumerate(messages):
        for what, s in turn_pieces(m, with_reasoning=False):
            if find_piece(text, s)[0] < 0:
                return f"messages[{i}].{what} ({s[:40]!r})"
    for k, t in enumerate(tools or []):
        name = t.get("function", t).get("name")
        if name and name not in text:
            return f"tools[{k}] ({name!r})"
    return None


def choose_form(tokenizer, messages: list[dict[str, Any]], template: str, tools) -> tuple[Form, str]:
    """The first message form in which the template shows the whole record, and its rendering."""
    key = reasoning_key(template)
    has_calls = any(m.get("tool_calls") for m in messages)
    options = itertools.product((False, True), (False, True) if has_calls else (False,))
    first_problem = None
    for parts, as_text in options:
        form = Form(key, arguments_as_text=as_text, text_parts=parts)
        try:
            text = render(tokenizer, form.turns(messages), template, tools=tools)
        except TemplateError as e:
            first_problem = first_problem or str(e)
            continue
        missing = missing_piece(text, messages, tools)
        if missing is None:
            return form, text
        first_problem = first_problem or f"the chat template does not render {missing}"
    raise TemplateCannotShow(f"{first_problem}; training on this rendering would silently lose that part of the "
                        "record. Use a template that renders it, or remove it from the data")
