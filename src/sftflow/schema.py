"""The one record type every stage reads and writes.

An ``Example`` is a conversation (``messages``: a list of ``{role, content}``) plus
free-form ``metadata`` where stages write what they measured. Single-turn data is a
one-exchange conversation. ``id`` is a stable hash of the conversation's content, so
the same example read from Alpaca or from ShareGPT gets the same id, and caches keyed
by it survive format conversions.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

ROLES = ("system", "user", "assistant")


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


def content_id(messages: list[dict[str, str]]) -> str:
    """Stable id: sha256 over the canonical JSON of (role, content) pairs, first 16 hex."""
    canon = json.dumps([[m["role"], m["content"]] for m in messages], ensure_ascii=False,
                       separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()[:16]


def validate_messages(messages: Any, *, field_name: str = "messages") -> list[dict[str, str]]:
    """Check shape and roles; return a clean copy with only role and content."""
    if not isinstance(messages, list):
        raise RecordError(f"expected a list of messages, got {type(messages).__name__}",
                          field=field_name)
    if not messages:
        raise RecordError("conversation has no messages", field=field_name)
    clean = []
    for i, m in enumerate(messages):
        f = f"{field_name}[{i}]"
        if not isinstance(m, dict):
            raise RecordError(f"expected an object, got {type(m).__name__}", field=f)
        if "role" not in m:
            raise RecordError("missing 'role'", field=f"{f}.role")
        if "content" not in m:
            raise RecordError("missing 'content'", field=f"{f}.content")
        role, content = m["role"], m["content"]
        if role not in ROLES:
            raise RecordError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})",
                              field=f"{f}.role")
        if not isinstance(content, str):
            raise RecordError(f"content must be a string, got {type(content).__name__}",
                              field=f"{f}.content")
        if role == "system" and i != 0:
            raise RecordError("a system message may only come first", field=f"{f}.role")
        clean.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in clean):
        raise RecordError("conversation has no assistant message", field=field_name)
    return clean


@dataclass
class Example:
    messages: list[dict[str, str]]
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str = ""

    def __post_init__(self):
        self.messages = validate_messages(self.messages)
        if not self.id:
            self.id = content_id(self.messages)

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
        """The final assistant turn."""
        return [m for m in self.messages if m["role"] == "assistant"][-1]["content"]

    @property
    def is_multi_turn(self) -> bool:
        return sum(m["role"] == "assistant" for m in self.messages) > 1

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "messages": self.messages, "metadata": self.metadata}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        return cls(messages=d["messages"], metadata=dict(d.get("metadata") or {}),
                   id=d.get("id") or "")

    @classmethod
    def single(cls, prompt: str, response: str, *, system: str | None = None,
               metadata: dict[str, Any] | None = None) -> "Example":
        msgs = [{"role": "system", "content": system}] if system else []
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
        return cls(messages=msgs, metadata=dict(metadata or {}))
