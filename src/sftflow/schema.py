"""The one record type every stage reads and writes.

An ``Example`` is a conversation (``messages``: a list of turns, see ``sftflow.turns``
for what a turn may carry: tool calls, reasoning traces, tool results), the function
schemas the conversation may call (``tools``, OpenAI form, or ``None``), plus
free-form ``metadata`` where stages write what they measured. ``tools`` is a field of
its own, not metadata: it changes what the model sees (templates render it), so it is
part of the id and every writer keeps it. Single-turn data is a one-exchange
conversation. ``id`` is a stable hash of everything the model sees, so the same example
read from Alpaca or from ShareGPT gets the same id, and caches keyed by it survive
format conversions. A plain ``{role, content}`` conversation hashes exactly as before
tool calls existed, so existing ids and caches stay valid.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from .turns import ROLES, TurnError, call_text, check_tool_answers, normalize_turn, validate_tools

__all__ = ["ROLES", "Example", "RecordError", "content_id", "validate_messages", "validate_tools"]


class RecordError(ValueError):
    """A record that does not fit the schema. Carries where it came from."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 field: str | None = None):
        self.reason = message
        self.path = path
        self.line = line
        self.field = field
        where = []
        if path is not None:
            where.append(str(path))
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{': '.join(where)}: {message}" if where else message)


def content_id(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """Stable id: sha256 over canonical JSON of the conversation (and tools), first 16 hex.

    A plain turn contributes ``[role, content]``; a turn with tool calls, reasoning or a
    tool-call id adds its extra fields as a third element, and a record with tools wraps
    the whole in ``{"messages", "tools"}``.
    """
    rows: list[Any] = []
    for m in messages:
        extra = {k: v for k, v in m.items() if k not in ("role", "content")}
        rows.append([m["role"], m["content"], extra] if extra else [m["role"], m["content"]])
    payload: Any = {"messages": rows, "tools": tools} if tools else rows
    canon = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def validate_messages(messages: Any, *, field_name: str = "messages") -> list[dict[str, Any]]:
    """Check shape, roles and tool-call pairing; return a clean canonical copy."""
    if hasattr(messages, "tolist"):
        messages = messages.tolist()
    if not isinstance(messages, list):
        raise RecordError(f"expected a list of messages, got {type(messages).__name__}",
                          field=field_name)
    if not messages:
        raise RecordError("conversation has no messages", field=field_name)
    try:
        clean = [normalize_turn(m, f"{field_name}[{i}]") for i, m in enumerate(messages)]
        check_tool_answers(clean, field_name)
    except TurnError as e:
        raise RecordError(e.reason, field=e.field) from None
    for i, m in enumerate(clean):
        if m["role"] == "system" and i != 0:
            raise RecordError("a system message may only come first", field=f"{field_name}[{i}].role")
    if not any(m["role"] == "assistant" for m in clean):
        raise RecordError("conversation has no assistant message", field=field_name)
    return clean


def _tools(tools: Any) -> list[dict[str, Any]] | None:
    try:
        return validate_tools(tools)
    except TurnError as e:
        raise RecordError(e.reason, field=e.field) from None


@dataclass
class Example:
    messages: list[dict[str, Any]]
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    tools: list[dict[str, Any]] | None = None

    def __post_init__(self):
        self.messages = validate_messages(self.messages)
        self.tools = _tools(self.tools)
        if not self.id:
            self.id = content_id(self.messages, self.tools)

    # Convenience views used by filters, scorers and prompts.
    @property
    def system(self) -> str | None:
        return self.messages[0]["content"] if self.messages[0]["role"] == "system" else None

    @property
    def last_assistant(self) -> int:
        """Index of the final assistant turn."""
        return max(i for i, m in enumerate(self.messages) if m["role"] == "assistant")

    @property
    def context(self) -> list[dict[str, str]]:
        """The conversation before the final assistant turn: what a model is prompted with."""
        return self.messages[:self.last_assistant]

    @property
    def prompt(self) -> str:
        """The last user message before the final assistant turn ('' when none)."""
        for m in reversed(self.context):
            if m["role"] == "user":
                return m["content"]
        return ""

    @property
    def response(self) -> str:
        """The final assistant turn's text: its content, then each tool call it makes as one
        line of canonical JSON (a call *is* the answer of a tool-calling turn, so length
        filters and dedup must see it). The reasoning trace is not included: see
        ``reasoning``."""
        m = self.messages[self.last_assistant]
        if not m.get("tool_calls"):
            return m["content"]
        parts = ([m["content"]] if m["content"] else []) + [call_text(c) for c in m["tool_calls"]]
        return "\n".join(parts)

    @property
    def reasoning(self) -> str:
        """The final assistant turn's reasoning trace ('' when none)."""
        return self.messages[self.last_assistant].get("reasoning_content", "")

    @property
    def has_tool_calls(self) -> bool:
        return any(m.get("tool_calls") for m in self.messages)

    @property
    def is_multi_turn(self) -> bool:
        return sum(m["role"] == "assistant" for m in self.messages) > 1

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"id": self.id, "messages": self.messages}
        if self.tools:
            d["tools"] = self.tools
        d["metadata"] = self.metadata
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Example:
        return cls(messages=d["messages"], metadata=dict(d.get("metadata") or {}),
                   id=d.get("id") or "", tools=d.get("tools"))

    @classmethod
    def single(cls, prompt: str, response: str, *, system: str | None = None,
               metadata: dict[str, Any] | None = None) -> Example:
        msgs = [{"role": "system", "content": system}] if system else []
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return cls(messages=msgs, metadata=dict(metadata or {}))
