"""Real model families' chat templates (as shipped in trl) and the conversations they are tested on.

Shared by the family mask tests and by ``benchmarks/template_coverage.py``, which prints
the usable fraction.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]


def call(i: int, city: str = "Paris") -> dict:
    return {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": {"city": city}}}


PLAIN = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello! How can I help?"},
         {"role": "user", "content": "What is 2+2?"}, {"role": "assistant", "content": "It is 4."}]
CONVERSATIONS = {
    "plain": PLAIN,
    "plain_system": [{"role": "system", "content": "Be brief."}] + PLAIN,
    "tool_round_trip": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [call(1)]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "RESULT sunny 21C"},
        {"role": "assistant", "content": "It is sunny, 21C."}],
    "parallel_calls": [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "", "tool_calls": [call(1), call(2, "Rome")]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "RESULT sunny"},
        {"role": "tool", "tool_call_id": "call_2", "name": "get_weather", "content": "RESULT rain"},
        {"role": "assistant", "content": "Paris sunny, Rome rain."}],
    "multi_turn_tools": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [call(1)]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "RESULT sunny"},
        {"role": "assistant", "content": "Sunny."},
        {"role": "user", "content": "Thanks!"},
        {"role": "assistant", "content": "You are welcome."}],
    "json_tool_result": [
        {"role": "system", "content": "You check the weather."},
        {"role": "user", "content": "Weather in Paris for 3 days?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "call_7", "type": "function", "function": {
                "name": "get_weather", "arguments": '{"city": "Paris", "days": 3, "units": {"temp": "C"}}'}}]},
        {"role": "tool", "tool_call_id": "call_7", "content": '{"forecast": ["sun", "rain", "sun"], "high": 21}'},
        {"role": "assistant", "content": "Sun, rain, then sun; highs of 21C."}],
    "reasoning_last": [
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "reasoning_content": "Add two and two.", "content": "It is 4."}],
    "reasoning_every_turn": [
        {"role": "user", "content": "Hi there"},
        {"role": "assistant", "reasoning_content": "Greet back.", "content": "Hello!"},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "reasoning_content": "Add two and two.", "content": "It is 4."}],
    "reasoning_with_tools": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "reasoning_content": "I need the tool.", "content": "", "tool_calls": [call(1)]},
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "RESULT sunny"},
        {"role": "assistant", "reasoning_content": "Report it.", "content": "Sunny."}],
}
TOOL_CONVERSATIONS = ("tool_round_trip", "parallel_calls", "multi_turn_tools", "json_tool_result",
                      "reasoning_with_tools")
REASONING_CONVERSATIONS = ("reasoning_last", "reasoning_every_turn", "reasoning_with_tools")


def templates_dir() -> Path:
    import trl
    return Path(trl.__file__).parent / "chat_templates"


def originals() -> list[str]:
    return sorted(p.name for p in templates_dir().glob("*.jinja") if "_training" not in p.name)


def twin_of(name: str) -> str | None:
    twin = templates_dir() / name.replace(".jinja", "_training.jinja")
    return twin.name if twin.exists() else None


def matrix() -> list[tuple[str, str]]:
    """(template, conversation) pairs: every conversation on every template. Templates
    without syntax for tool calls or traces take them through the documented fallback
    (``sftflow.chat.tool_fallback``), so every pair is a test of sftflow."""
    return [(name, conv) for name in originals() for conv in CONVERSATIONS]


MARKERS = re.compile(r"<\|?[A-Za-z_]+\|?>|</?think>|<[a-z_]+\|>|<\|[a-z_\"]+>|<｜[^｜]+｜>")


def family_tokenizer(base, template: str):
    """The SmolLM2 tokenizer plus the family's markers as atomic special tokens, as in the
    family's own tokenizer (otherwise BPE merges '>' with the next '<')."""
    tok = copy.deepcopy(base)
    tok.add_special_tokens({"additional_special_tokens": sorted(set(MARKERS.findall(template)))})
    return tok


def supervised_runs(input_ids, labels_or_mask, tok, *, mask: bool = False) -> list[str]:
    """Decoded runs of consecutive supervised tokens."""
    runs, cur = [], []
    for t, lab in zip(input_ids, labels_or_mask):
        on = bool(lab) if mask else lab != -100
        if on:
            cur.append(t)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    if cur:
        runs.append(tok.decode(cur))
    return runs
