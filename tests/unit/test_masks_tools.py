"""Masks for tool calls and reasoning traces on real templates, checked against their training twins.

For every (template, conversation) pair of the matrix in ``_chat_families``: sftflow either
refuses with a reason listed below, or its supervised text per assistant turn equals what
the template's ``*_training.jinja`` twin marks with ``{% generation %}``, up to

- text of our generation prompt that the twin also marks (role headers, pre-filled think
  blocks: the model never writes them at inference) and trailing whitespace after the
  end-of-turn marker (the model never has to write it), or
- a difference documented in ``DOCUMENTED`` (and in docs/chat_templates.md).

Tool results, user and system text are never supervised, asserted on every case.
"""

from __future__ import annotations

import importlib
import json
import re

import jinja2
import pytest
from _chat_families import CONVERSATIONS, TOOLS, family_tokenizer, matrix, supervised_runs, templates_dir, twin_of

from sftflow.chat import HistoryRewritten, TemplateCannotShow, TemplateError, encode, encode_many, encode_turns
from sftflow.chat.render import string_leaves
from sftflow.chat.tool_fallback import rewrite, split_parallel_calls
from sftflow.schema import Example

trl = pytest.importorskip("trl")

# What each refused pair is refused for. Anything refused and not listed, or listed and
# not refused, fails.
CANNOT_SHOW = "does not render|failed to render|closes an empty think block"
REFUSED = {
    ("diffusion_gemma.jinja", "multi_turn_tools"): "not prefix-stable at turn 3",
    ("gemma4_v5.jinja", "multi_turn_tools"): "not prefix-stable at turn 3",
    ("gptoss.jinja", "reasoning_with_tools"): "not prefix-stable at turn 3",
}
# The template itself cannot show the record (TemplateCannotShow): Gemma 1 has no system
# turn; gpt-oss and Llama 3.1 take no text beside a call (a trace on a call turn is such
# text where it goes into the content) and Llama 3.1 one call per turn; muse-glimmer drops
# the text beside a call; the no-think Qwen3.5 template has no reasoning at generation.
for _name, _convs in {
    "gemma.jinja": ("plain_system", "json_tool_result"),
    "gptoss.jinja": ("multi_turn_tools",),
    "llama3_1.jinja": ("parallel_calls", "multi_turn_tools", "reasoning_with_tools"),
    "llama3_2.jinja": ("parallel_calls", "multi_turn_tools", "reasoning_with_tools"),
    "muse_glimmer.jinja": ("multi_turn_tools",),
    "qwen3_5_nothink.jinja": ("reasoning_last", "reasoning_every_turn", "reasoning_with_tools"),
}.items():
    for _c in _convs:
        REFUSED[(_name, _c)] = CANNOT_SHOW


def _reasoning_then(ours, twin, turn):
    # DeepSeek: the twin trains without the trace and without the <think> pre-fill; the
    # model, prompted with <think>\n, writes trace, </think> and answer: we train that.
    # A turn without a trace: the model closes the pre-filled block at once ("\n</think>\n\n").
    return ours == turn.get("reasoning_content", "") + "\n</think>\n\n" + twin.removeprefix("<｜Assistant｜>")


DOCUMENTED = {
    "deepseek_r1_distill.jinja": _reasoning_then,
    "deepseekv3.jinja": _reasoning_then,
    # Diffusion Gemma: the model hands over to the tool by writing <|tool_response>; after
    # a tool result the generation prompt does not reopen the model turn, the model does.
    "diffusion_gemma.jinja": lambda ours, twin, turn: ours in (twin + "<|tool_response>", "<|turn>model\n" + twin),
    # gpt-oss: the model ends an answer with <|return|>; history rewrites it to <|end|>,
    # which the model never writes, so a middle answer's closing is not trained.
    "gptoss.jinja": lambda ours, twin, turn: ours + "<|end|>" == twin,
    # Idefics3 / SmolVLM twins render string content as nothing (they expect parts).
    "idefics3.jinja": lambda ours, twin, turn: ours.replace(turn["content"], "") == twin,
    "smolvlm.jinja": lambda ours, twin, turn: ours.replace(turn["content"], "") == twin,
}


@pytest.fixture(scope="module")
def tokenizers(smol_tokenizer, tmp_path_factory):
    """One family tokenizer per template; GLM-4's saved with its generation config, whose
    stop tokens (<|user|>, <|observation|>) are how that model ends a turn."""
    from transformers import AutoTokenizer
    cache = {}

    def get(name):
        if name not in cache:
            src = (templates_dir() / name).read_text()
            twin = twin_of(name)
            tok = family_tokenizer(smol_tokenizer, src + ((templates_dir() / twin).read_text() if twin else ""))
            if name.startswith("glm4"):
                d = tmp_path_factory.mktemp("glm")
                tok.save_pretrained(d)
                eos = tok.convert_tokens_to_ids(["<|endoftext|>", "<|user|>", "<|observation|>"])
                (d / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
                tok = AutoTokenizer.from_pretrained(d)
            cache[name] = tok
        return cache[name]
    return get


def ours_per_turn(msgs, tok, tpl, tools):
    """[(turn index, encoded, supervised text)]: one sequence when faithful, else per turn."""
    try:
        enc = encode(msgs, tok, tools=tools, template=tpl)
    except HistoryRewritten:
        return [(e.turn, e, supervised_runs(e.input_ids, e.labels, tok)[-1])
                for e in encode_turns(msgs, tok, tools=tools, template=tpl)]
    turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    runs = supervised_runs(enc.input_ids, enc.labels, tok)
    assert len(runs) == len(turns)
    return [(i, enc, r) for i, r in zip(turns, runs)]


def all_runs(msgs, tok, tpl, tools):
    """Supervised runs of every trained turn, in order (one sequence, or one example per turn)."""
    try:
        enc = encode(msgs, tok, tools=tools, template=tpl)
    except HistoryRewritten:
        return [supervised_runs(e.input_ids, e.labels, tok)[-1] for e in encode_turns(msgs, tok, tools=tools,
                                                                                      template=tpl)]
    return supervised_runs(enc.input_ids, enc.labels, tok)


def as_rendered(msgs, tok, tpl, tools):
    """The conversation as sftflow hands it to the template: parallel calls split where the
    template takes one per message, tool data and traces it cannot show rewritten."""
    msgs, _ = split_parallel_calls(tok, msgs, tpl)
    msgs, tools, _ = rewrite(tok, msgs, tpl, tools)
    return msgs, tools


def twin_run(tok, twin, msgs, tools, k):
    kw = {"tools": tools, "chat_template": twin, "tokenize": True, "return_dict": True,
          "return_assistant_tokens_mask": True}
    try:
        out = tok.apply_chat_template(msgs, **kw)
    except jinja2.exceptions.UndefinedError:       # LLaVA-NeXT's twin reads content only as text parts
        out = tok.apply_chat_template([dict(m, content=[{"type": "text", "text": m["content"]}]) for m in msgs], **kw)
    return supervised_runs(out["input_ids"], out["assistant_masks"], tok, mask=True)[k]


def agrees_with_twin(ours: str, twin: str, prompt: str) -> bool:
    """Equal up to a twin-marked prefix that is our generation prompt's tail and trailing whitespace."""
    at = twin.find(ours)
    return at >= 0 and prompt.endswith(twin[:at]) and not twin[at + len(ours):].strip()


def outside_prompt(msgs):
    return [m["content"] for m in msgs if m["role"] != "assistant" and m["content"].strip()]


@pytest.mark.parametrize("name,conv", matrix())
def test_template_conversation(tokenizers, name, conv):
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    original = Example(messages=CONVERSATIONS[conv]).messages
    tools = TOOLS if any(m.get("tool_calls") for m in original) else None
    if (name, conv) in REFUSED:
        reason = REFUSED[(name, conv)]
        with pytest.raises(TemplateCannotShow if reason == CANNOT_SHOW else TemplateError, match=reason):
            ours_per_turn(original, tok, tpl, tools)
        return
    msgs, tools = as_rendered(original, tok, tpl, tools)
    results = ours_per_turn(msgs, tok, tpl, tools)
    assert all_runs(original, tok, tpl, TOOLS if tools or "tool" in {m["role"] for m in original} else None
                    ) == [t for _, _, t in results]         # the rewrite is what encode does
    twin = twin_of(name)
    for i, enc, text in results:
        turn = msgs[i]
        for never in outside_prompt(original) + outside_prompt(msgs):   # tool results, user, system, the
            assert never not in text, (i, never)                        # tools block: never trained
        assert turn["content"].strip() in text
        for c in turn.get("tool_calls", []):
            assert c["function"]["name"] in text and all(v in text for v in string_leaves(c["function"]["arguments"]))
        if turn.get("reasoning_content"):
            assert turn["reasoning_content"] in text
        if twin is None:
            continue
        twin_tpl = (templates_dir() / twin).read_text()
        one_sequence = enc.turn is None
        k = [j for j, m in enumerate(msgs) if m["role"] == "assistant"].index(i) if one_sequence else -1
        theirs = twin_run(tok, twin_tpl, msgs if one_sequence else msgs[:i + 1], tools, k)
        span = enc.spans[k]
        if agrees_with_twin(text, theirs, enc.text[:span[0]]):
            continue
        header = max(j for j in range(len(theirs) + 1) if enc.text[:span[0]].endswith(theirs[:j]))
        core = theirs[header:].rstrip()
        assert name in DOCUMENTED and DOCUMENTED[name](text, core, turn), \
            f"silent mismatch with {twin}: ours {text!r} vs twin {theirs!r}"


def test_usable_fraction(tokenizers, capsys):
    """The share of the whole matrix (every conversation on every template) sftflow trains on."""
    pairs = matrix()
    refused = [p for p in pairs if p in REFUSED]
    usable = len(pairs) - len(refused)
    with capsys.disabled():
        print(f"\nusable: {usable}/{len(pairs)} = {usable / len(pairs):.1%} of all template x conversation pairs "
              f"({sum(REFUSED[p] == CANNOT_SHOW for p in refused)} refused because the template cannot show "
              f"the record, {sum(REFUSED[p] != CANNOT_SHOW for p in refused)} not prefix-stable)")
    assert usable / len(pairs) >= 0.95


def test_golden_qwen3_tool_loop_trains_calls_not_results(tokenizers):
    name = "qwen3.jinja"
    msgs, tpl = CONVERSATIONS["reasoning_with_tools"], (templates_dir() / name).read_text()
    encs = encode_turns(msgs, tokenizers(name), tools=TOOLS, template=tpl)
    tok = tokenizers(name)
    assert [supervised_runs(e.input_ids, e.labels, tok) for e in encs] == [
        [('<think>\nI need the tool.\n</think>\n\n<tool_call>\n{"name": "get_weather", "arguments": {"city": '
          '"Paris"}}\n</tool_call><|im_end|>')],
        ["<think>\nReport it.\n</think>\n\nSunny.<|im_end|>"]]
    assert "RESULT sunny" in encs[1].text and "get_weather" in encs[1].text.split("<|im_start|>user")[0]


def test_golden_glm4_supervises_its_stop_tokens(tokenizers):
    name = "glm4moe.jinja"
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    enc = encode(CONVERSATIONS["tool_round_trip"], tok, tools=TOOLS, template=tpl)
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        ("\n<think></think>\n<tool_call>get_weather\n<arg_key>city</arg_key>\n<arg_value>Paris</arg_value>\n"
         "</tool_call><|observation|>"), "\n<think></think>\nIt is sunny, 21C.<|user|>"]
    assert enc.text.endswith("It is sunny, 21C.<|user|>")       # the template writes nothing there


def test_golden_deepseek_r1_builds_the_trace_after_the_prefill(tokenizers):
    name = "deepseek_r1_distill.jinja"
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    enc = encode(CONVERSATIONS["reasoning_last"], tok, template=tpl)
    assert enc.text.endswith("<｜Assistant｜><think>\nAdd two and two.\n</think>\n\nIt is 4.<｜end▁of▁sentence｜>")
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        "Add two and two.\n</think>\n\nIt is 4.<｜end▁of▁sentence｜>"]


def test_template_that_ignores_tool_calls_is_refused_under_native_naming_the_option(tokenizers):
    tpl = (templates_dir() / "llama3.jinja").read_text()
    with pytest.raises(TemplateCannotShow, match=r"does not render tool calls and tool results "
                                                 r"\(tool_format='native'\); tool_format='auto' or 'hermes'"):
        encode(CONVERSATIONS["tool_round_trip"], tokenizers("llama3.jinja"), tools=TOOLS, template=tpl,
               tool_format="native")
    with pytest.raises(TemplateCannotShow, match=r"does not render reasoning traces \(reasoning_content\) \(tool_format='native'\)"):
        encode(CONVERSATIONS["reasoning_last"], tokenizers("llama3.jinja"), template=tpl, tool_format="native")


def test_one_sequence_training_on_rewritten_history_errors_and_encode_many_expands(tokenizers, monkeypatch):
    encode_module = importlib.import_module("sftflow.chat.encode")
    monkeypatch.setattr(encode_module, "_noticed", set())   # the notice is given once per process and template
    name = "qwen3.jinja"
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    msgs = CONVERSATIONS["reasoning_every_turn"]
    with pytest.raises(HistoryRewritten, match="renders assistant turn 1 differently"):
        encode(msgs, tok, template=tpl)
    ex = Example(messages=msgs)
    with pytest.warns(UserWarning, match="one example per assistant turn"):
        encoded, skipped = encode_many([ex, ex], tok, template=tpl)
    assert not skipped and [e.turn for e in encoded] == [1, 3, 1, 3]
    texts = [supervised_runs(e.input_ids, e.labels, tok) for e in encoded[:2]]
    assert texts == [["<think>\nGreet back.\n</think>\n\nHello!<|im_end|>"],
                     ["<think>\nAdd two and two.\n</think>\n\nIt is 4.<|im_end|>"]]
    assert "Greet back." not in encoded[1].text          # history as inference renders it


def test_token_straddling_the_turn_start_is_split_there_or_refused(smol_tokenizer):
    # "A:" + " Hello": BPE merges the space into " Hello", across the prompt/answer seam.
    tpl = ("{% for m in messages %}{% if m['role'] == 'user' %}Q: {{ m['content'] }}\n{% else %}A:"
           "{{ ' ' + m['content'] }}<|im_end|>\n{% endif %}{% endfor %}{% if add_generation_prompt %}A: {% endif %}")
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    enc = encode(msgs, smol_tokenizer, template=tpl)
    prompt_ids = smol_tokenizer("Q: Hi\nA: ", add_special_tokens=False)["input_ids"]
    assert enc.input_ids[:len(prompt_ids)] == prompt_ids           # the prompt exactly as inference sees it
    assert supervised_runs(enc.input_ids, enc.labels, smol_tokenizer) == ["Hello<|im_end|>"]
    two = msgs + [{"role": "user", "content": "More"}, {"role": "assistant", "content": "Sure"}]
    with pytest.raises(HistoryRewritten, match="holds the end of the generation prompt"):
        encode(two, smol_tokenizer, template=tpl)
    assert [e.turn for e in encode_turns(two, smol_tokenizer, template=tpl)] == [1, 3]


def test_token_straddling_the_turn_end_is_refused_naming_the_turn(smol_tokenizer):
    from sftflow.chat.encode import _tokenize_with_labels
    text = "Q: Hi\nA:\nHello there"
    with pytest.raises(TemplateError, match=r"'Hello' straddles the end of assistant turn 2"):
        _tokenize_with_labels(text, [(len("Q: Hi\nA:\n"), len("Q: Hi\nA:\nHel"))], smol_tokenizer, [2])
    ids, labels = _tokenize_with_labels(text + "\n", [(9, len(text))], smol_tokenizer, [2])
    assert smol_tokenizer.decode([t for t, lab in zip(ids, labels) if lab != -100]) == "Hello there"


def test_tools_reach_the_template_from_the_record(tokenizers):
    name = "qwen2_5.jinja"
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    ex = Example(messages=CONVERSATIONS["tool_round_trip"], tools=TOOLS)
    (enc,), _ = encode_many([ex], tok, template=tpl)
    assert "Weather for a city" in enc.text                          # the tools block is rendered ...
    assert all("Weather for a city" not in r for r in supervised_runs(enc.input_ids, enc.labels, tok))
    assert re.search(r"<tools>", enc.text)


def test_raw_openai_messages_with_json_string_arguments_and_null_content(tokenizers):
    import sftflow
    name = "qwen2_5.jinja"
    tok, tpl = tokenizers(name), (templates_dir() / name).read_text()
    raw = [{"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
           {"role": "assistant", "content": None, "tool_calls": [
               {"id": "a", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}]},
           {"role": "tool", "tool_call_id": "a", "content": "cold"},
           {"role": "assistant", "content": "Cold."}]
    enc = sftflow.encode(raw, tok, tools=TOOLS, template=tpl)
    assert supervised_runs(enc.input_ids, enc.labels, tok) == [
        '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call><|im_end|>',
        "Cold.<|im_end|>"]
    last = sftflow.encode(raw, tok, tools=TOOLS, template=tpl, train_on="last")
    assert supervised_runs(last.input_ids, last.labels, tok) == ["Cold.<|im_end|>"]
