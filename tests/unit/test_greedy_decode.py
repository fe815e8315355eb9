"""The row-dropping greedy loop picks the tokens ``model.generate`` picks."""

from __future__ import annotations

import pytest
import torch

from sftflow.backends import GenParams
from sftflow.backends.greedy_decode import greedy_generate
from sftflow.backends.transformers_backend import TransformersBackend
from sftflow.models import load_model


@pytest.fixture(scope="module")
def sharp(sharp_model_dir):
    lm = load_model(sharp_model_dir)
    lm.eval()
    return lm


def _prompts(n: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(0)
    return [torch.randint(10, 2000, (int(torch.randint(3, 40, (1,), generator=g)),), generator=g).tolist()
            for _ in range(n)]


def _hf(lm, rows, pad, stops, max_new):
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r)
        attn[i, width - len(r):] = 1
    with torch.no_grad():
        out = lm.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new, do_sample=False,
                          pad_token_id=pad, eos_token_id=stops, temperature=None, top_p=None, top_k=None)
    res = []
    for i in range(len(rows)):
        new = out[i, width:].tolist()
        hit = [j for j, t in enumerate(new) if t in stops]
        res.append(new[: hit[0] + 1] if hit else new)
    return res


def test_tokens_match_generate_with_rows_ending_at_different_steps(sharp):
    rows = _prompts(12)
    # A stop set made of tokens this model emits early for some rows, so rows leave the batch
    # at different steps while others run to the limit.
    first = _hf(sharp, rows, 0, [1], 24)
    stops = sorted({r[k] for r in first for k in (3, 7) if len(r) > k})[:6]
    want = _hf(sharp, rows, 0, stops, 24)
    assert len({len(w) for w in want}) > 2, "the case must have rows ending at different steps"
    got = greedy_generate(sharp, rows, pad_id=0, stop_ids=stops, max_new_tokens=24)
    assert got == want
    # prompts prefilled a few at a time, each chunk padded to its own length, then joined
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    chunked = greedy_generate(sharp, [rows[i] for i in order], pad_id=0, stop_ids=stops, max_new_tokens=24,
                              prefill_rows=3)
    assert chunked == [want[i] for i in order]


def test_backend_answers_are_the_same_on_both_paths(sharp_model_dir, smol_tokenizer, monkeypatch):
    convs = [[{"role": "user", "content": f"question number {i} " * (1 + i % 4)}] for i in range(9)]
    backend = TransformersBackend(sharp_model_dir, batch_size=4)
    plain = backend.generate(convs, GenParams(max_new_tokens=20))
    # a stop string that one answer contains part-way and some others never do
    stop = next(t.text[6:9] for t in plain if sum(t.text[6:9] in u.text for u in plain) < len(plain) - 2)
    params = GenParams(max_new_tokens=20, stop=[stop])
    fast = backend.generate(convs, params)
    import sftflow.backends.transformers_backend as tb
    monkeypatch.setattr(tb, "greedy_supported", lambda lm: False)
    slow = TransformersBackend(sharp_model_dir, batch_size=4).generate(convs, params)
    assert [(c.text, c.finish_reason) for c in fast] == [(c.text, c.finish_reason) for c in slow]
    assert any(c.finish_reason == "stop" for c in fast) and any(c.finish_reason == "length" for c in fast)


def test_stop_text_ends_a_row(sharp):
    rows = _prompts(3)
    full = greedy_generate(sharp, rows, pad_id=0, stop_ids=[], max_new_tokens=16)
    decode = lambda ids: "".join(f"<{t}>" for t in ids)  # noqa: E731  one visible piece per token
    stop = f"<{full[1][4]}>"
    got = greedy_generate(sharp, rows, pad_id=0, stop_ids=[], max_new_tokens=16, stop_texts=[stop], decode=decode)
    assert got[1] == full[1][: full[1].index(full[1][4]) + 1]
    for g, f in zip(got, full):
        assert f[: len(g)] == g
