"""What a chat template can show, found by rendering small probe conversations.

Whether a template takes tool calls, the tools offered, or a reasoning trace is decided
the same way ``render.choose_form`` decides everything else: render, and look for the
pieces in the text. Reading the Jinja source for keywords would be guessing (Llama 3
mentions no tool syntax, DeepSeek names ``tool_calls`` but reaches that branch only
with ``content: None``, which transformers drops before rendering).

The probes use sentinel strings that no template writes on its own, in every message
form ``choose_form`` may pick (tool-call arguments as a mapping or as JSON text,
content as a string or as text parts). A probe that makes the template raise (Gemma's
"roles must alternate" on a ``tool`` turn) counts as "cannot show".
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from .render import Form, TemplateError, reasoning_key, render

_FN, _FN2 = "sftflowprobeone", "sftflowprobetwo"
_ARG, _ARG2 = "SFTFLOWPROBEARGONE", "SFTFLOWPROBEARGTWO"
_RESULT, _DESC = "SFTFLOWPROBERESULT", "SFTFLOWPROBEDESC"
_TRACE, _SYSTEM = "SFTFLOWPROBETRACE", "SFTFLOWPROBESYSTEM"
_TOOLS = [{"type": "function", "function": {"name": _FN, "description": _DESC, "parameters": {
    "type": "object", "properties": {"q": {"type": "string"}}}}}]


def _call(name: str, arg: str, n: int) -> dict[str, Any]:
    return {"id": f"probe_{n}", "type": "function", "function": {"name": name, "arguments": {"q": arg}}}


@dataclass(frozen=True)
class Capabilities:
    """What one template renders (each found by a probe)."""
    system: bool                 # a system turn is accepted and shown
    tool_calls: bool             # one call (name, arguments) and its tool result are shown
    tools_block: bool            # the schemas offered are shown (a description, not just a name)
    reasoning: bool              # a trace on an answer is shown, or the model writes it after a <think> pre-fill
    one_call_per_message: bool   # of two parallel calls only the first is shown, without an error (gpt-oss)


def _renderings(tokenizer, template: str, messages: list[dict[str, Any]], tools=None, *,
                gen: bool = False) -> list[str]:
    """The conversation rendered in every message form the template accepts."""
    out = []
    for parts, as_text in itertools.product((False, True), (False, True)):
        form = Form(reasoning_key(template), arguments_as_text=as_text, text_parts=parts)
        try:
            out.append(render(tokenizer, form.turns(messages), template, tools=tools, add_generation_prompt=gen))
        except TemplateError:
            continue
    return out


def _shows(renderings: list[str], *needles: str) -> bool:
    return any(all(n in text for n in needles) for text in renderings)


_cache: dict[int, Capabilities] = {}


def capabilities(tokenizer, template: str) -> Capabilities:
    """The template's capabilities (probed once per template text)."""
    key = hash(template)
    if key in _cache:
        return _cache[key]
    user = {"role": "user", "content": "Q"}
    answer = {"role": "assistant", "content": "A"}

    def loop(calls):
        return [user, {"role": "assistant", "content": "", "tool_calls": calls},
                {"role": "tool", "tool_call_id": "probe_1", "name": _FN, "content": _RESULT}, answer]

    one = _renderings(tokenizer, template, loop([_call(_FN, _ARG, 1)]), _TOOLS)
    tool_calls = _shows(one, _FN, _ARG, _RESULT)
    two = _renderings(tokenizer, template, loop([_call(_FN, _ARG, 1), _call(_FN2, _ARG2, 2)])[:2], _TOOLS)
    caps = Capabilities(
        system=_shows(_renderings(tokenizer, template, [{"role": "system", "content": _SYSTEM}, user]), _SYSTEM),
        tool_calls=tool_calls,
        tools_block=_shows(one + _renderings(tokenizer, template, [user, answer], _TOOLS), _DESC),
        reasoning=_shows(_renderings(tokenizer, template, [user, dict(answer, reasoning_content=_TRACE)]), _TRACE)
        or any(t.rstrip().endswith("<think>") for t in _renderings(tokenizer, template, [user], gen=True)),
        one_call_per_message=tool_calls and _shows(two, _ARG) and not _shows(two, _ARG2))
    _cache[key] = caps
    return caps
