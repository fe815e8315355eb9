"""Tool calls and reasoning traces for templates that cannot render them: rewritten in message space.

Every template takes tool data, as LLaMA-Factory and Axolotl users expect. When a
template drops tool calls, tool turns or the tools offered (found by rendering, see
``capabilities``), the conversation is rewritten *before* rendering, Hermes style,
the format sftflow's ``TOOL_CHATML`` and the evaluation tool loop use:

- the tools block is appended to the system prompt (a system turn is added when there
  is none; a template without system turns gets it at the start of the first user turn)::

      # Tools
      ...
      <tools>
      {"type": "function", "function": {...}}
      </tools>
      ...

- an assistant call becomes content, one block per call, after any text::

      <tool_call>
      {"name": "get_weather", "arguments": {"city": "Paris"}}
      </tool_call>

- a tool turn becomes a user turn ``<tool_response>\\n...\\n</tool_response>`` (consecutive
  results in one turn, so templates that demand alternating roles take them). It is a
  user turn, so it is never supervised.

A reasoning trace on a template that cannot show one becomes ``<think>\\n{trace}\\n</think>\\n\\n``
before the content. Then the rendering and the masks are computed exactly as for any
conversation: the model is trained on the ``<tool_call>`` text and the end of turn.

Policy, ``tool_format``: ``auto`` uses the template's own syntax where it has one and the
fallback where it does not (a one-line notice); ``native`` refuses what the template
cannot show, naming this option; ``hermes`` writes every call the fallback way.

Templates that write one call per message (gpt-oss's harmony format) get a turn with
parallel calls as one assistant message per call, each followed by its result: the
model ends every call with ``<|call|>``, a stop token, so at inference it emits one
call, reads the result, then emits the next. Llama 3.1/3.2 raise on a second call and
keep refusing it.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from typing import Any, Literal

from .capabilities import Capabilities, capabilities
from .render import TemplateCannotShow

ToolFormat = Literal["auto", "native", "hermes"]
TOOL_FORMATS = ("auto", "native", "hermes")

# Qwen2.5's wording of the Hermes tools block: what most open tool-calling data is written for.
TOOLS_HEADER = ("# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
                "You are provided with function signatures within <tools></tools> XML tags:\n<tools>")
TOOLS_FOOTER = ("</tools>\n\nFor each function call, return a json object with function name and arguments "
                "within <tool_call></tool_call> XML tags:\n<tool_call>\n"
                '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>')


def tools_block(tools: list[dict]) -> str:
    return "\n".join([TOOLS_HEADER] + [json.dumps(t, ensure_ascii=False) for t in tools] + [TOOLS_FOOTER])


def tool_call_text(call: dict[str, Any]) -> str:
    """One call as the fallback writes it (parsed back by ``sftflow.tools.loop.parse_tool_calls``)."""
    fn = call["function"]
    return "<tool_call>\n" + json.dumps({"name": fn["name"], "arguments": fn["arguments"]},
                                        ensure_ascii=False) + "\n</tool_call>"


def inline_reasoning(trace: str, content: str) -> str:
    return f"<think>\n{trace}\n</think>\n\n{content}"


@dataclass(frozen=True)
class Formats:
    """How one conversation's tool data and traces reach the template."""
    tools: str | None = None         # "native" | "hermes" | None (no tool data)
    reasoning: str | None = None     # "native" | "inline" | None (no trace)
    split_calls: int = 0             # parallel-call turns written as one message per call

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v}


def _hermes_turns(messages: list[dict[str, Any]], tools, system_ok: bool) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for m in messages:
        if m["role"] == "tool":
            block = f"<tool_response>\n{m['content']}\n</tool_response>"
            if out and out[-1].get("_results"):
                out[-1]["content"] += "\n" + block
            else:
                out.append({"role": "user", "content": block, "_results": True})
            continue
        m = dict(m)
        calls = m.pop("tool_calls", None)
        if calls:
            m["content"] = "\n".join(([m["content"]] if m["content"] else []) + [tool_call_text(c) for c in calls])
        out.append(m)
    for m in out:
        m.pop("_results", None)
    if tools:
        block = tools_block(tools)
        if out[0]["role"] == "system":
            out[0] = dict(out[0], content=(out[0]["content"] + "\n\n" if out[0]["content"] else "") + block)
        elif system_ok:
            out.insert(0, {"role": "system", "content": block})
        else:
            first = next(k for k, m in enumerate(out) if m["role"] == "user")
            out[first] = dict(out[first], content=block + "\n\n" + out[first]["content"])
    return out


def _results_by_call(calls, results) -> list[dict[str, Any]] | None:
    """The tool turn answering each call (by id, else in order); None unless one each."""
    ids = [c.get("id") for c in calls]
    if all(r.get("tool_call_id") in ids for r in results) and len(results) == len(calls):
        by_id = {r["tool_call_id"]: r for r in results}
        return [by_id[i] for i in ids] if len(by_id) == len(calls) else None
    return list(results) if len(results) == len(calls) else None


def _split_parallel(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], int]:
    """Each parallel-call turn as one call per message, each followed by its result."""
    out, n, k = [], 0, 0
    while k < len(messages):
        m = messages[k]
        calls = m.get("tool_calls") or []
        end = k + 1
        while end < len(messages) and messages[end]["role"] == "tool":
            end += 1
        results = _results_by_call(calls, messages[k + 1:end]) if len(calls) > 1 else None
        if results is None:
            out.append(m)
            k += 1
            continue
        n += 1
        # The text and the trace belong to the first call: the model writes them before it.
        for j, (c, r) in enumerate(zip(calls, results)):
            out += [dict(m, tool_calls=[c]) if j == 0 else {"role": "assistant", "content": "", "tool_calls": [c]}, r]
        k = end
    return out, n


def _native_refusal(what: str) -> TemplateCannotShow:
    return TemplateCannotShow(f"the chat template does not render {what} (tool_format='native'); "
                              "tool_format='auto' or 'hermes' writes them into the text, Hermes style "
                              "(see docs/chat_templates.md)")


_noticed: set[tuple[int, str]] = set()


def _notice(template: str, what: str, how: str) -> None:
    key = (hash(template), what)
    if key not in _noticed:
        _noticed.add(key)
        warnings.warn(f"this chat template does not render {what}: writing them in the content, {how} "
                      "(tool_format='native' refuses instead)", stacklevel=4)


def rewrite(tokenizer, messages: list[dict[str, Any]], template: str, tools, tool_format: ToolFormat = "auto"
            ) -> tuple[list[dict[str, Any]], list[dict] | None, Formats]:
    """(messages, tools to pass to the template, formats used) for one canonical conversation."""
    if tool_format not in TOOL_FORMATS:
        raise ValueError(f"tool_format must be one of {', '.join(TOOL_FORMATS)}, not {tool_format!r}")
    has_calls = any(m.get("tool_calls") or m["role"] == "tool" for m in messages)
    has_trace = any(m.get("reasoning_content", "").strip() for m in messages)
    if not (has_calls or tools or has_trace):
        return messages, tools, Formats()
    caps: Capabilities = capabilities(tokenizer, template)
    # Decided per template, not per conversation, so that one run writes every call one way:
    # a template that cannot list the tools offered takes the fallback for all tool data.
    hermes = tool_format == "hermes" or (tool_format == "auto" and not (caps.tool_calls and caps.tools_block))
    if tool_format == "native" and has_calls and not caps.tool_calls:
        raise _native_refusal("tool calls and tool results")
    if tool_format == "native" and tools and not caps.tools_block:
        raise _native_refusal("the tools offered (the record's tools block)")
    inline = has_trace and not caps.reasoning
    if inline and tool_format == "native":
        raise _native_refusal("reasoning traces (reasoning_content)")
    if hermes and (has_calls or tools):
        if tool_format == "auto":
            _notice(template, "tool calls or the tools offered", "Hermes style (<tool_call> JSON)")
        messages, tools = _hermes_turns(messages, tools, caps.system), None
    if inline:                  # after the calls: the trace comes before all the turn's text
        _notice(template, "reasoning traces", "as <think>...</think> before the answer")
        messages = [dict({k: v for k, v in m.items() if k != "reasoning_content"},
                         content=inline_reasoning(m["reasoning_content"], m["content"]))
                    if m.get("reasoning_content", "").strip() else m for m in messages]
    formats = Formats(tools=("hermes" if hermes else "native") if has_calls or tools else None,
                      reasoning=("inline" if inline else "native") if has_trace else None)
    return messages, tools, formats


def split_parallel_calls(tokenizer, messages: list[dict[str, Any]], template: str,
                         tool_format: ToolFormat = "auto") -> tuple[list[dict[str, Any]], int]:
    """(messages, turns split): on a one-call-per-message template rendering calls natively,
    each parallel-call turn becomes consecutive assistant messages with one call each.
    Done before per-turn expansion, so that every call is a turn that gets trained."""
    if tool_format == "hermes" or not any(len(m.get("tool_calls") or []) > 1 for m in messages):
        return messages, 0
    if not capabilities(tokenizer, template).one_call_per_message:
        return messages, 0
    return _split_parallel(messages)


def summarize_formats(encoded, tool_format: ToolFormat) -> dict[str, Any]:
    """What a run records (train_result.json): the policy and how many examples used each form."""
    out: dict[str, Any] = {"tool_format": tool_format}
    for key in ("tools", "reasoning"):
        counts: dict[str, int] = {}
        for e in encoded:
            if e.formats.get(key):
                counts[e.formats[key]] = counts.get(e.formats[key], 0) + 1
        if counts:
            out[key] = counts
    split = sum(e.formats.get("split_calls", 0) for e in encoded)
    if split:
        out["split_calls"] = split
    per_turn = sum(e.turn is not None for e in encoded)
    if per_turn:
        out["per_turn_examples"] = per_turn
    return out
