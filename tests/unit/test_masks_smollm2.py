"""Golden loss masks for SmolLM2's chat template: exact supervised positions."""

import pytest

from sftflow import encode
from sftflow.chat import IGNORE_INDEX, ExampleTooLong, NoSupervisedTokens
from sftflow.train.collate import PadCollator

SINGLE = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello there"}]
SYSTEM = [{"role": "system", "content": "Be terse."}] + SINGLE
MULTI = SINGLE + [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]


def supervised(enc):
    return [i for i, lab in enumerate(enc.labels) if lab != IGNORE_INDEX]


# Token layout (single, no system): 0..20 the injected default system prompt,
# 21..26 user turn, 27..30 "<|im_start|>assistant\n", 31 "Hello", 32 " there",
# 33 "<|im_end|>", 34 "\n" (never generated, never trained).
@pytest.mark.parametrize("msgs,mode,expected,length", [
    (SINGLE, "assistant", [31, 32, 33], 35),
    (SINGLE, "last", [31, 32, 33], 35),
    (SYSTEM, "assistant", [19, 20, 21], 23),
    (SYSTEM, "last", [19, 20, 21], 23),
    (MULTI, "assistant", [31, 32, 33, 48, 49], 51),
    (MULTI, "last", [48, 49], 51),
])
def test_golden_positions(smol_tokenizer, msgs, mode, expected, length):
    enc = encode(msgs, smol_tokenizer, train_on=mode)
    assert len(enc) == length
    assert supervised(enc) == expected
    assert all(enc.labels[i] == enc.input_ids[i] for i in expected)


def test_train_on_all_supervises_everything(smol_tokenizer):
    enc = encode(MULTI, smol_tokenizer, train_on="all")
    assert supervised(enc) == list(range(len(enc)))


def test_injected_system_prompt_and_headers_never_supervised(smol_tokenizer):
    enc = encode(MULTI, smol_tokenizer)
    text = smol_tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX])
    assert text == "Hello there<|im_end|>4<|im_end|>"
    assert "SmolLM" in enc.text  # the template injected its default system prompt ...
    assert "SmolLM" not in text  # ... which is never trained on


def test_final_end_of_turn_supervised_even_though_pad_is_eos(smol_tokenizer):
    assert smol_tokenizer.pad_token_id == smol_tokenizer.convert_tokens_to_ids("<|im_end|>")
    a = encode(SINGLE, smol_tokenizer)
    b = encode(MULTI, smol_tokenizer)
    batch = PadCollator(pad_token_id=smol_tokenizer.pad_token_id)([a.to_dict(), b.to_dict()])
    row = batch["labels"][0]
    assert row[33].item() == smol_tokenizer.pad_token_id      # <|im_end|> kept as a label
    assert (row[len(a):] == IGNORE_INDEX).all()                # padding masked by attention mask
    assert (batch["attention_mask"][0][len(a):] == 0).all()


def test_truncation_drops_oldest_turn_first(smol_tokenizer):
    full = encode(MULTI, smol_tokenizer)
    enc = encode(MULTI, smol_tokenizer, max_length=full.__len__() - 1)
    assert enc.truncated and enc.dropped_turns == 1
    assert "Hello there" not in enc.text and enc.text.endswith("4<|im_end|>\n")
    assert smol_tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != -100]) == "4<|im_end|>"


def test_example_that_cannot_fit_raises(smol_tokenizer):
    with pytest.raises(ExampleTooLong):
        encode(MULTI, smol_tokenizer, max_length=20)


def test_all_masked_example_raises(smol_tokenizer, monkeypatch):
    msgs = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]
    # an empty answer still supervises <|im_end|>: that is the model learning to stop
    assert supervised(encode(msgs, smol_tokenizer)) == [31]  # "<|im_end|>" right after the header
    # a template that closes the final turn with nothing: the model stops by emitting its
    # EOS (no generation config here names another stop token), which is appended and trained
    bare = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    enc = encode([msgs[0], {"role": "assistant", "content": "Hello"}], smol_tokenizer, template=bare)
    assert enc.text == "Hi\nHello" + smol_tokenizer.eos_token
    assert smol_tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE_INDEX]) \
        == "Hello" + smol_tokenizer.eos_token
    # and if spans ever come back empty, encode raises instead of returning all -100
    import importlib
    enc_mod = importlib.import_module("sftflow.chat.encode")
    from sftflow.chat.tool_fallback import Formats
    monkeypatch.setattr(enc_mod, "_spans", lambda *a, **k: ("abc", [], [], Formats()))
    with pytest.raises(NoSupervisedTokens):
        encode(msgs, smol_tokenizer)


def test_fallback_templates(smol_tokenizer):
    enc = encode(SYSTEM, smol_tokenizer, template="alpaca")
    assert enc.text.startswith("Be terse.\n\n### Instruction:\nHi\n\n### Response:\nHello there")
    text = smol_tokenizer.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != -100])
    assert text == "Hello there" + smol_tokenizer.eos_token
    enc = encode(SINGLE, smol_tokenizer, template="chatml")
    assert "SmolLM" not in enc.text


def test_missing_template_warns_and_uses_chatml(smol_tokenizer):
    import copy
    tok = copy.deepcopy(smol_tokenizer)
    tok.chat_template = None
    with pytest.warns(UserWarning, match="no chat template"):
        enc = encode(SINGLE, tok)
    assert enc.text.startswith("<|im_start|>user\nHi")
