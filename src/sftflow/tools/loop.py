"""The evaluation tool loop: generate, parse the call, run the tool, feed the result, continue.

Works with any backend (it only needs ``generate(conversations, params)``). Each
conversation runs until the model answers without a call, or for ``max_steps``
generations at most (a model that keeps calling is stopped and counted). Calls are
written the way the model emits them (Hermes / Qwen style, what sftflow's training
render uses for templates without tool support)::

    <tool_call>
    {"name": "calculate", "arguments": {"expression": "20000 * 1.05 ** 6", "round_to": 2}}
    </tool_call>

The model's turn goes back into the conversation as it wrote it (``content``, plus the
parsed ``tool_calls``), followed by one ``tool`` turn per call with the result. A
malformed call (unreadable JSON, no ``name``, an unknown tool, arguments the tool
rejects, or a tool that raises) is an *error*: its message is fed back as the tool
result, so the model may recover, and it is counted in the metrics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..backends import GenParams
from . import get_tool

_CALL = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.DOTALL)


def render_tool_call(name: str, arguments: dict[str, Any]) -> str:
    return "<tool_call>\n" + json.dumps({"name": name, "arguments": arguments}, ensure_ascii=False) + \
        "\n</tool_call>"


@dataclass
class ParsedCall:
    name: str | None
    arguments: dict[str, Any] | None
    raw: str
    error: str | None = None


def parse_tool_calls(text: str) -> list[ParsedCall]:
    """Every ``<tool_call>`` block in ``text`` (an unclosed last block counts: it hit the limit)."""
    calls = []
    for m in _CALL.finditer(text or ""):
        raw = m.group(1).strip()
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as e:
            calls.append(ParsedCall(None, None, raw, f"the call is not valid JSON ({e.msg})"))
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("name"), str):
            calls.append(ParsedCall(None, None, raw, "the call has no tool 'name'"))
            continue
        args = obj.get("arguments", {})
        if isinstance(args, str):          # OpenAI sends arguments as a JSON string
            try:
                args = json.loads(args)
            except json.JSONDecodeError:
                args = None
        if not isinstance(args, dict):
            calls.append(ParsedCall(obj["name"], None, raw, "the call's 'arguments' is not an object"))
            continue
        calls.append(ParsedCall(obj["name"], args, raw))
    return calls


def execute(call: ParsedCall) -> tuple[str, str | None]:
    """(result text, error or None). Errors become results the model reads."""
    if call.error:
        return f"error: {call.error}", call.error
    try:
        tool = get_tool(call.name)
    except KeyError as e:
        return f"error: {e.args[0]}", f"unknown tool {call.name!r}"
    try:
        return str(tool.fn(**call.arguments)), None
    except TypeError as e:
        return f"error: bad arguments for {call.name}: {e}", f"bad arguments: {e}"
    except Exception as e:  # a user's tool may raise anything; the model sees it, the metrics count it
        return f"error: {e}", f"{type(e).__name__}: {e}"


@dataclass
class LoopResult:
    text: str                      # the final answer (the last generation)
    finish_reason: str             # the last generation's, or "tool_steps" when stopped calling
    completion_tokens: int = 0
    steps: int = 0
    turns: list[dict] = field(default_factory=list)   # assistant / tool turns the loop appended
    calls: int = 0
    errors: list[str] = field(default_factory=list)

    def to_answer(self) -> dict[str, Any]:
        return {"text": self.text, "finish_reason": self.finish_reason,
                "completion_tokens": self.completion_tokens, "tool_calls": self.calls,
                "tool_errors": self.errors, "steps": self.steps, "turns": self.turns}


def _tool_turns(text: str, step: int, index: int) -> tuple[list[dict], int, list[str]]:
    calls = parse_tool_calls(text)
    ids = [f"call_{index}_{step}_{k}" for k in range(len(calls))]
    assistant = {"role": "assistant", "content": text,
                 "tool_calls": [{"id": i, "type": "function",
                                 "function": {"name": c.name or "", "arguments": json.dumps(c.arguments or {})}}
                                for i, c in zip(ids, calls)]}
    turns, errors = [assistant], []
    for i, c in zip(ids, calls):
        result, err = execute(c)
        turns.append({"role": "tool", "tool_call_id": i, "name": c.name or "", "content": result})
        if err:
            errors.append(err)
    return turns, len(calls), errors


def run_tool_loop(backend, conversations: list[list[dict]], params: GenParams, *, max_steps: int = 3
                  ) -> list[LoopResult]:
    """Run every conversation to a final answer (batched per step); bounded by ``max_steps``."""
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    convs = [list(c) for c in conversations]
    results = [LoopResult(text="", finish_reason="") for _ in convs]
    active = list(range(len(convs)))
    for step in range(max_steps):
        if not active:
            break
        completions = backend.generate([convs[i] for i in active], params)
        still = []
        for i, comp in zip(active, completions):
            r = results[i]
            r.steps, r.text, r.finish_reason = step + 1, comp.text, comp.finish_reason
            r.completion_tokens += comp.completion_tokens
            if comp.finish_reason == "error" or "<tool_call>" not in (comp.text or ""):
                continue
            turns, n, errors = _tool_turns(comp.text, step, i)
            r.calls += n
            r.errors += errors
            r.turns += turns
            convs[i] += turns
            if step + 1 == max_steps:
                r.finish_reason = "tool_steps"
            else:
                still.append(i)
        active = still
    return results


def summarize_tool_use(answers: list[dict]) -> dict[str, Any]:
    """Counts for metrics.json: how often the model called, erred, or was stopped."""
    from ..intervals import rate
    n = len(answers)
    used = sum(1 for a in answers if a.get("tool_calls"))
    calls = sum(a.get("tool_calls", 0) for a in answers)
    errors = sum(len(a.get("tool_errors") or []) for a in answers)
    return {"answers": n, "used_tools": rate(used, n), "calls": calls, "errors": errors,
            "error_rate": rate(errors, calls) if calls else None,
            "stopped_at_step_limit": sum(1 for a in answers if a.get("finish_reason") == "tool_steps")}
