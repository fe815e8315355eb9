"""Masks on real model families' chat templates (as shipped in the trl package).

For every template: each supervised span is exactly what the model must generate
for that assistant turn (template-written preamble such as an empty think block,
the content, the end-of-turn marker), nothing from system/user turns is supervised,
or the template is refused with an error that names the problem.
"""

from pathlib import Path

import pytest

from sftflow import encode
from sftflow.chat import IGNORE_INDEX, HistoryRewritten, TemplateError, assistant_spans, encode_turns

trl = pytest.importorskip("trl")
TEMPLATES = Path(trl.__file__).parent / "chat_templates"

MSGS = [{"role": "user", "content": "Hi there"},
        {"role": "assistant", "content": "Hello! How can I help?"},
        {"role": "user", "content": "What is 2+2?"},
        {"role": "assistant", "content": "It is 4."}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief."}] + MSGS

# family template -> expected supervised text of each assistant turn
ACCEPTED = {
    "llama3.jinja": ["Hello! How can I help?<|eot_id|>", "It is 4.<|eot_id|>"],
    "llama3_1.jinja": ["Hello! How can I help?<|eot_id|>", "It is 4.<|eot_id|>"],
    "qwen2_5.jinja": ["Hello! How can I help?<|im_end|>", "It is 4.<|im_end|>"],   # injects a system prompt
    "gemma3.jinja": ["Hello! How can I help?<end_of_turn>", "It is 4.<end_of_turn>"],
    # Phi-3 appends EOS only after the last turn: middle turns close with <|end|> alone.
    "phi3.jinja": ["Hello! How can I help?<|end|>", "It is 4.<|end|>\n{eos}"],
    "cohere.jinja": ["Hello! How can I help?<|END_OF_TURN_TOKEN|>", "It is 4.<|END_OF_TURN_TOKEN|>"],
    "lfm2.jinja": ["Hello! How can I help?<|im_end|>", "It is 4.<|im_end|>"],
    "gemma4.jinja": ["Hello! How can I help?<turn|>", "It is 4.<turn|>"],
    "qwen3_instruct_2507.jinja": ["Hello! How can I help?<|im_end|>", "It is 4.<|im_end|>"],
    "gptoss.jinja": ["<|channel|>final<|message|>Hello! How can I help?",
                     "<|channel|>final<|message|>It is 4.<|return|>"],
}
MISTRAL = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + "
           "' [/INST]' }}{% elif m['role'] == 'assistant' %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}")


def family_tokenizer(base, template: str):
    """The SmolLM2 tokenizer plus the family's markers as atomic special tokens, as in
    the family's own tokenizer (otherwise BPE merges '>' with the next '<')."""
    import copy
    import re
    tok = copy.deepcopy(base)
    markers = sorted(set(re.findall(r"<\|?[A-Za-z_]+\|?>|</?think>", template)))
    tok.add_special_tokens({"additional_special_tokens": markers})
    return tok


def supervised_text(enc, tok):
    return tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_families(smol_tokenizer, name):
    tpl = (TEMPLATES / name).read_text()
    expected = [e.replace("{eos}", smol_tokenizer.eos_token) for e in ACCEPTED[name]]
    msgs = WITH_SYSTEM if name != "gemma.jinja" else MSGS
    text, spans = assistant_spans(msgs, smol_tokenizer, tpl)
    assert [text[a:b] for a, b in spans] == expected
    outside = "".join(text[b:a] for (_, b), (a, _) in zip([(0, 0)] + spans, spans + [(len(text), 0)]))
    for m in msgs:
        if m["role"] == "assistant":
            assert m["content"] not in outside          # every assistant token is supervised
        else:
            assert not any(m["content"] in text[a:b] for a, b in spans)   # no prompt text is
    tok = family_tokenizer(smol_tokenizer, tpl)
    enc = encode(msgs, tok, template=tpl)
    assert supervised_text(enc, tok) == "".join(expected)


def test_mistral_family(smol_tokenizer):
    enc = encode(MSGS, smol_tokenizer, template=MISTRAL)
    eos = smol_tokenizer.eos_token
    assert supervised_text(enc, smol_tokenizer) == f"Hello! How can I help?{eos}It is 4.{eos}"


def test_qwen3_empty_think_block_only_in_the_final_turn_trains_per_turn(smol_tokenizer):
    # Qwen3 writes an empty think block only in the final turn, and the model writes one in
    # every turn it generates: one sequence would train earlier answers without it.
    tpl = (TEMPLATES / "qwen3.jinja").read_text()
    with pytest.raises(HistoryRewritten, match="renders assistant turn 2 differently"):
        assistant_spans(WITH_SYSTEM, smol_tokenizer, tpl)
    tok = family_tokenizer(smol_tokenizer, tpl)
    assert [supervised_text(e, tok) for e in encode_turns(WITH_SYSTEM, tok, template=tpl)] == [
        "<think>\n\n</think>\n\nHello! How can I help?<|im_end|>", "<think>\n\n</think>\n\nIt is 4.<|im_end|>"]
    text, spans = assistant_spans(WITH_SYSTEM, smol_tokenizer, tpl, train_on="last")
    assert [text[a:b] for a, b in spans] == ["<think>\n\n</think>\n\nIt is 4.<|im_end|>"]


def test_deepseek_r1_turn_without_a_trace_closes_the_prefilled_think_block(smol_tokenizer):
    # The generation prompt pre-fills <think>\n; a turn without a trace is the model skipping
    # thinking: it writes \n</think>\n\n and the answer. History drops think blocks: per turn.
    tpl = (TEMPLATES / "deepseek_r1_distill.jinja").read_text()
    tok = family_tokenizer(smol_tokenizer, tpl)
    with pytest.raises(HistoryRewritten, match="pre-fills a think block the history lacks"):
        encode(MSGS, tok, template=tpl)
    first, last = encode_turns(MSGS, tok, template=tpl)
    assert last.text.endswith("<｜Assistant｜><think>\n\n</think>\n\nIt is 4.<｜end▁of▁sentence｜>")
    assert "</think>" not in last.text[:-40]                   # the earlier answer as history renders it
    assert [supervised_text(e, tok) for e in (first, last)] == [
        "\n</think>\n\nHello! How can I help?<｜end▁of▁sentence｜>", "\n</think>\n\nIt is 4.<｜end▁of▁sentence｜>"]


def test_qwen3_stripped_reasoning_is_one_example_per_turn(smol_tokenizer):
    tpl = (TEMPLATES / "qwen3.jinja").read_text()
    msgs = [dict(m) for m in MSGS]
    msgs[1]["content"] = "<think>\nGreet back.\n</think>\n\nHello! How can I help?"
    msgs[3]["content"] = "<think>\nAdd.\n</think>\n\nIt is 4."
    with pytest.raises(HistoryRewritten, match="renders assistant turn 1 differently"):
        encode(msgs, smol_tokenizer, template=tpl)
    enc = encode(msgs, smol_tokenizer, template=tpl, train_on="last")
    assert supervised_text(enc, smol_tokenizer) == "<think>\nAdd.\n</think>\n\nIt is 4.<|im_end|>"
    first, last = encode_turns(msgs, smol_tokenizer, template=tpl)
    assert supervised_text(first, smol_tokenizer) == \
        "<think>\nGreet back.\n</think>\n\nHello! How can I help?<|im_end|>"
    assert supervised_text(last, smol_tokenizer) == supervised_text(enc, smol_tokenizer)


def test_template_error_is_ours_and_names_the_cause(smol_tokenizer):
    tpl = (TEMPLATES / "gemma.jinja").read_text()         # Gemma 1 rejects system prompts
    with pytest.raises(TemplateError, match="System role not supported"):
        encode(WITH_SYSTEM, smol_tokenizer, template=tpl)
    text, spans = assistant_spans(MSGS, smol_tokenizer, tpl)
    assert [text[a:b] for a, b in spans] == ["Hello! How can I help?<end_of_turn>", "It is 4.<end_of_turn>"]
