"""Chat turns: what a message may carry, checked and put in one canonical form.

A conversation is a list of turns with role ``system``, ``user``, ``assistant`` or
``tool``. Beyond ``role`` and ``content`` (a string, or a list of ``{type: "text",
text}`` parts, joined into one string here: every stage reads text, and the encoder
hands parts back to templates that want them) a turn may carry:

- assistant: ``tool_calls`` in OpenAI form ``[{id, type: "function", function: {name,
  arguments}}]`` (``arguments`` an object or a JSON string, stored as an object; the
  flat ``{name, arguments}`` form is accepted too) and ``reasoning_content`` (the
  trace the model wrote before answering; ``reasoning`` and ``thinking`` are read as
  aliases). An assistant turn with tool calls may have no content (OpenAI writes
  ``null``); it is stored as ``""``.
- tool: ``content`` (the tool's result) with ``tool_call_id`` and/or ``name`` tying it
  to a call of the assistant turn before it.
- any role: ``name``.

Other keys are not part of the record and are not kept. Errors name the field
(``messages[3].tool_calls[0].function.arguments``); the reader adds file and line.
"""

from __future__ import annotations

import json
from typing import Any

ROLES = ("system", "user", "assistant", "tool")
REASONING_ALIASES = ("reasoning_content", "reasoning", "thinking")


class TurnError(ValueError):
    """A turn that does not fit; ``field`` says where (schema wraps it in RecordError)."""

    def __init__(self, message: str, field: str):
        self.reason, self.field = message, field
        super().__init__(message)


def content_text(content: Any, field: str) -> str:
    """A turn's content as one string; text parts are joined, any other part is refused."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for k, part in enumerate(content):
            f = f"{field}[{k}]"
            if isinstance(part, str):
                texts.append(part)
                continue
            if not isinstance(part, dict):
                raise TurnError(f"expected a content part object, got {type(part).__name__}", f)
            kind = part.get("type", "text")
            if kind != "text":
                raise TurnError(f"content part of type {kind!r} is not supported: sftflow trains on "
                                "text only (remove the part or describe it in text)", f"{f}.type")
            if not isinstance(part.get("text"), str):
                raise TurnError("a text part needs a string 'text'", f"{f}.text")
            texts.append(part["text"])
        return "".join(texts)
    raise TurnError(f"content must be a string or a list of text parts, got {type(content).__name__}",
                    field)


def _arguments(args: Any, field: str) -> dict[str, Any]:
    if args is None:
        return {}
    if isinstance(args, str):
        if not args.strip():
            return {}
        try:
            args = json.loads(args)
        except json.JSONDecodeError as e:
            raise TurnError(f"arguments are not valid JSON: {e.msg} at character {e.pos}", field) from None
    if not isinstance(args, dict):
        raise TurnError(f"arguments must be a JSON object, got {type(args).__name__}", field)
    return args


def normalize_tool_calls(calls: Any, field: str) -> list[dict[str, Any]]:
    if hasattr(calls, "tolist"):
        calls = calls.tolist()
    if not isinstance(calls, list):
        raise TurnError(f"expected a list of tool calls, got {type(calls).__name__}", field)
    out = []
    for j, call in enumerate(calls):
        f = f"{field}[{j}]"
        if not isinstance(call, dict):
            raise TurnError(f"expected a tool call object, got {type(call).__name__}", f)
        fn = call.get("function", call)      # OpenAI nests under "function"; flat form does not
        if not isinstance(fn, dict):
            raise TurnError(f"expected an object, got {type(fn).__name__}", f"{f}.function")
        ff = f"{f}.function" if "function" in call else f
        name = fn.get("name")
        if not isinstance(name, str) or not name.strip():
            raise TurnError("a tool call needs a function name", f"{ff}.name")
        if call.get("type", "function") not in ("function", None):
            raise TurnError(f"tool call type {call['type']!r} is not supported (expected 'function')",
                            f"{f}.type")
        norm: dict[str, Any] = {}
        if call.get("id") is not None:
            norm["id"] = str(call["id"])
        norm["type"] = "function"
        norm["function"] = {"name": name, "arguments": _arguments(fn.get("arguments"), f"{ff}.arguments")}
        out.append(norm)
    return out


def _reasoning(m: dict[str, Any], field: str) -> str | None:
    found = [k for k in REASONING_ALIASES if m.get(k) not in (None, "")]
    if len(found) > 1 and len({str(m[k]) for k in found}) > 1:
        raise TurnError(f"two different reasoning traces ({', '.join(found)}); keep one", f"{field}.{found[1]}")
    if not found:
        return None
    r = m[found[0]]
    if not isinstance(r, str):
        raise TurnError(f"reasoning must be a string, got {type(r).__name__}", f"{field}.{found[0]}")
    return r


def normalize_turn(m: Any, field: str) -> dict[str, Any]:
    """One turn in canonical form: role, content, then only the optional fields it carries."""
    if not isinstance(m, dict):
        raise TurnError(f"expected an object, got {type(m).__name__}", field)
    if "role" not in m:
        raise TurnError("missing 'role'", f"{field}.role")
    role = m["role"]
    if role not in ROLES:
        raise TurnError(f"unknown role {role!r} (expected one of {', '.join(ROLES)})", f"{field}.role")
    calls = m.get("tool_calls")
    if hasattr(calls, "tolist"):
        calls = calls.tolist()
    has_calls = role == "assistant" and bool(calls)
    if "content" not in m and not has_calls:
        raise TurnError("missing 'content'", f"{field}.content")
    content = m.get("content")
    turn: dict[str, Any] = {"role": role,
                            "content": "" if content is None and has_calls
                            else content_text(content, f"{field}.content")}
    if calls and role != "assistant":
        raise TurnError(f"only assistant turns make tool calls, not {role}", f"{field}.tool_calls")
    reasoning = _reasoning(m, field)
    if reasoning is not None:
        if role != "assistant":
            raise TurnError(f"only assistant turns carry reasoning, not {role}", f"{field}.reasoning_content")
        turn["reasoning_content"] = reasoning
    if has_calls:
        turn["tool_calls"] = normalize_tool_calls(calls, f"{field}.tool_calls")
    for key in ("tool_call_id", "name"):
        v = m.get(key)
        if v is None or (key == "tool_call_id" and role != "tool"):
            continue
        if not isinstance(v, (str, int)):
            raise TurnError(f"expected a string, got {type(v).__name__}", f"{field}.{key}")
        turn[key] = str(v)
    return turn


def check_tool_answers(turns: list[dict[str, Any]], field_name: str) -> None:
    """Each tool turn answers a call of the assistant turn before it, and no call twice."""
    pending: list[dict[str, Any]] = []      # calls of the latest assistant turn not yet answered
    answered: set[str] = set()
    for i, t in enumerate(turns):
        f = f"{field_name}[{i}]"
        if t["role"] == "assistant":
            pending = [c for c in t.get("tool_calls", [])]
            answered = set()
        elif t["role"] == "tool":
            cid, name = t.get("tool_call_id"), t.get("name")
            if cid is not None and cid in answered:
                raise TurnError(f"tool call id {cid!r} is answered twice", f"{f}.tool_call_id")
            match = next((c for c in pending if cid is not None and c.get("id") == cid), None)
            ids_given = any("id" in c for c in pending)
            if match is None and (cid is None or not ids_given):   # calls without ids: by name, in order
                match = next((c for c in pending if name is None or c["function"]["name"] == name), None)
            if match is None:
                what = f"id {cid!r}" if cid is not None else (f"name {name!r}" if name else "any call")
                raise TurnError(f"tool turn answers no preceding call ({what} matches no unanswered call "
                                "of the assistant turn before it)",
                                f"{f}.tool_call_id" if cid is not None else f"{f}.role")
            pending.remove(match)
            if cid is not None:
                answered.add(cid)
        else:
            pending, answered = [], set()


def validate_tools(tools: Any, field: str = "tools") -> list[dict[str, Any]] | None:
    """The function schemas a record offers (OpenAI form); ``None`` when there are none."""
    if tools is None:
        return None
    if isinstance(tools, str):
        try:
            tools = json.loads(tools)
        except json.JSONDecodeError as e:
            raise TurnError(f"tools are not valid JSON: {e.msg}", field) from None
    if hasattr(tools, "tolist"):
        tools = tools.tolist()
    if not isinstance(tools, list):
        raise TurnError(f"expected a list of tool schemas, got {type(tools).__name__}", field)
    out = []
    for k, t in enumerate(tools):
        if not isinstance(t, dict):
            raise TurnError(f"expected a tool schema object, got {type(t).__name__}", f"{field}[{k}]")
        fn = t.get("function", t)
        if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
            raise TurnError("a tool schema needs a function name", f"{field}[{k}].function.name")
        # The flat {name, description, parameters} form (LLaMA-Factory) is wrapped the
        # OpenAI way, which is what chat templates expect.
        out.append(t if "function" in t else {"type": "function", "function": t})
    return out or None


def call_text(call: dict[str, Any]) -> str:
    """One tool call as canonical JSON text: what filters and dedup compare."""
    fn = call["function"]
    return json.dumps({"name": fn["name"], "arguments": fn["arguments"]}, ensure_ascii=False, sort_keys=True)
