"""The Hermes fallback for templates that cannot show tool calls or traces, golden masks.

Supervised: exactly the ``<tool_call>`` text (and any text before it) plus the end of turn.
Never: the ``<tool_response>`` text or the tools block.
"""

from __future__ import annotations

import importlib

import pytest
from _chat_families import CONVERSATIONS, TOOLS, family_tokenizer, supervised_runs, templates_dir

from sftflow.chat import HistoryRewritten, TemplateCannotShow, TemplateError, encode, encode_many
from sftflow.chat.tool_fallback import TOOLS_HEADER, rewrite
from sftflow.schema import Example
from sftflow.tools.loop import parse_tool_calls

pytest.importorskip("trl")

CALL = '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'


@pytest.fixture(autouse=True)
def fresh_notices(monkeypatch):
    monkeypatch.setattr(importlib.import_module("sftflow.chat.tool_fallback"), "_noticed", set())


def family(smol_tokenizer, name):
    tpl = (templates_dir() / name).read_text()
    return family_tokenizer(smol_tokenizer, tpl), tpl


def test_llama3_tool_round_trip_supervises_the_call_text_and_end_of_turn_only(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "llama3.jinja")
    with pytest.warns(UserWarning, match="does not render tool calls.*Hermes style"):
        enc = encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl)
    runs = supervised_runs(enc.input_ids, enc.labels, tok)
    assert runs == [CALL + "<|eot_id|>", "It is sunny, 21C.<|eot_id|>"]
    assert enc.formats == {"tools": "hermes"}
    system = enc.text.split("<|eot_id|>")[0]
    assert system.startswith("<|im_start|><|start_header_id|>system<|end_header_id|>\n\n" + TOOLS_HEADER)
    assert '"description": "Weather for a city"' in system             # the schemas, in the system prompt
    assert "user<|end_header_id|>\n\n<tool_response>\nRESULT sunny 21C\n</tool_response><|eot_id|>" in enc.text
    assert all("RESULT" not in r and "<tools>" not in r and "tool_response" not in r for r in runs)


def test_fallback_call_text_is_what_the_eval_tool_loop_parses(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "phi3.jinja")
    enc = encode(CONVERSATIONS["json_tool_result"], tok, tools=TOOLS, template=tpl)
    call_text = supervised_runs(enc.input_ids, enc.labels, tok)[0]
    (parsed,) = parse_tool_calls(call_text)
    assert (parsed.name, parsed.arguments, parsed.error) == (
        "get_weather", {"city": "Paris", "days": 3, "units": {"temp": "C"}}, None)


def test_parallel_results_share_one_user_turn_so_alternating_templates_take_them(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "gemma3.jinja")     # raises unless roles alternate
    msgs, tools, _ = rewrite(tok, Example(messages=CONVERSATIONS["parallel_calls"]).messages, tpl, TOOLS)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant"] and tools is None
    assert msgs[2]["content"] == CALL + "\n" + CALL.replace("Paris", "Rome")
    assert msgs[3]["content"] == ("<tool_response>\nRESULT sunny\n</tool_response>\n"
                                  "<tool_response>\nRESULT rain\n</tool_response>")
    enc = encode(CONVERSATIONS["parallel_calls"], tok, tools=TOOLS, template=tpl)
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        CALL + "\n" + CALL.replace("Paris", "Rome") + "<end_of_turn>", "Paris sunny, Rome rain.<end_of_turn>"]


def test_tools_block_goes_into_the_first_user_turn_where_the_template_has_no_system_turn(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "gemma.jinja")      # Gemma 1: "System role not supported"
    enc = encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl)
    assert enc.text.startswith("<|im_start|><start_of_turn>user\n" + TOOLS_HEADER)
    assert "</tool_call>\n\nWeather in Paris?<end_of_turn>" in enc.text
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [CALL + "<end_of_turn>",
                                                                "It is sunny, 21C.<end_of_turn>"]


def test_text_before_a_call_is_supervised_with_it(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "cohere.jinja")
    enc = encode(CONVERSATIONS["multi_turn_tools"], tok, tools=TOOLS, template=tpl)
    assert supervised_runs(enc.input_ids, enc.labels, tok)[0] == \
        "Let me check.\n" + CALL + "<|END_OF_TURN_TOKEN|>"


def test_reasoning_on_a_template_without_traces_is_written_before_the_content(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "qwen2_5.jinja")
    with pytest.warns(UserWarning, match="does not render reasoning traces"):
        enc = encode(CONVERSATIONS["reasoning_last"], tok, template=tpl)
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        "<think>\nAdd two and two.\n</think>\n\nIt is 4.<|im_end|>"]
    assert enc.formats == {"reasoning": "inline"}
    with pytest.raises(TemplateCannotShow, match="tool_format='native'"):
        encode(CONVERSATIONS["reasoning_last"], tok, template=tpl, tool_format="native")


def test_hermes_is_forced_on_a_template_with_its_own_tool_syntax(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "llama3_1.jinja")
    native = encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl)
    assert native.formats == {"tools": "native"} and "<tool_call>" not in native.text
    enc = encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl, tool_format="hermes")
    assert enc.formats == {"tools": "hermes"}
    assert supervised_runs(enc.input_ids, enc.labels, tok)[0] == CALL + "<|eot_id|>"
    with pytest.raises(ValueError, match="tool_format must be one of auto, native, hermes"):
        encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl, tool_format="json")


def test_gptoss_parallel_calls_become_one_call_per_message_each_followed_by_its_result(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "gptoss.jinja")
    enc = encode(CONVERSATIONS["parallel_calls"], tok, tools=TOOLS, template=tpl)
    assert enc.formats == {"tools": "native", "split_calls": 1}
    paris = ' to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Paris"}<|call|>'
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        paris, paris.replace("Paris", "Rome"), "<|channel|>final<|message|>Paris sunny, Rome rain.<|return|>"]
    first_result, rome = enc.text.index("RESULT sunny"), enc.text.index('{"city": "Rome"}')
    assert first_result < rome < enc.text.index("RESULT rain")     # call, result, call, result


def test_llama31_keeps_refusing_two_calls_in_one_turn(smol_tokenizer):
    tok, tpl = family(smol_tokenizer, "llama3_1.jinja")
    with pytest.raises(TemplateCannotShow, match="only supports single tool-calls"):
        encode(CONVERSATIONS["parallel_calls"], tok, tools=TOOLS, template=tpl)


def test_per_turn_never_is_an_error_naming_the_option(smol_tokenizer, monkeypatch):
    monkeypatch.setattr(importlib.import_module("sftflow.chat.encode"), "_noticed", set())
    tok, tpl = family(smol_tokenizer, "qwen3.jinja")
    ex = Example(messages=CONVERSATIONS["reasoning_every_turn"])
    with pytest.raises(HistoryRewritten, match="per_turn='never' asks for one sequence per conversation"):
        encode_many([ex], tok, template=tpl, per_turn="never")
    with pytest.warns(UserWarning, match="one example per assistant turn"):
        encoded, _ = encode_many([ex], tok, template=tpl)
    assert [e.turn for e in encoded] == [1, 3]
    plain, _ = encode_many([Example(messages=CONVERSATIONS["plain"])], tok, template=(
        templates_dir() / "qwen2_5.jinja").read_text(), per_turn="never")
    assert len(plain) == 1 and plain[0].turn is None


@pytest.mark.parametrize("name", ["llama3.jinja", "gemma.jinja", "gemma3.jinja", "phi3.jinja", "cohere.jinja",
                                  "lfm2.jinja", "qwen2_5.jinja", "gemma4.jinja", "deepseekv3.jinja"])
def test_saved_template_renders_raw_tool_messages_as_training_did(smol_tokenizer, name):
    import copy

    from sftflow.chat.render import render
    from sftflow.chat.tool_fallback import summarize_formats
    from sftflow.train.model_setup import with_training_template
    tok, tpl = family(smol_tokenizer, name)
    tok.chat_template = tpl
    convs = [Example(messages=c, tools=TOOLS if any(m.get("tool_calls") for m in c) else None)
             for c in CONVERSATIONS.values()]
    encoded = []
    for ex in convs:
        try:
            encoded += encode_many([ex], tok)[0]
        except TemplateError:    # a conversation the template refuses (Gemma 1's system turn)
            continue
    saved = with_training_template(copy.deepcopy(tok), None, summarize_formats(encoded, "auto")).chat_template
    assert saved != tpl
    for ex in convs:
        msgs, tools, _ = rewrite(tok, ex.messages, tpl, ex.tools)
        try:
            trained = render(tok, msgs, tpl, tools=tools)
        except TemplateError:    # refused, as above
            continue
        assert render(tok, ex.messages, saved, tools=ex.tools) == trained


def test_saved_template_does_not_repeat_calls_the_content_already_holds(smol_tokenizer):
    from sftflow.chat.hermes_template import with_prelude
    from sftflow.chat.render import render
    tok, tpl = family(smol_tokenizer, "llama3.jinja")
    saved = with_prelude(tpl, tools=True, reasoning=False)
    loop_turn = {"role": "assistant", "content": "Checking.\n" + CALL, "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]}
    text = render(tok, [{"role": "user", "content": "Weather?"}, loop_turn,
                        {"role": "tool", "tool_call_id": "c", "content": "sunny"}], saved)
    assert text.count("<tool_call>") == 1 and "<tool_response>\nsunny\n</tool_response>" in text
