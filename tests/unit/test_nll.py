"""example_losses against a direct, per-example transformers computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sftflow import Example
from sftflow.chat import encode
from sftflow.nll import LossOptions, example_losses

EXAMPLES = [
    Example.single("What is 2 + 2?", "4"),
    Example.single("Name a colour.", "Blue, like the sky on a clear summer day."),
    Example(messages=[{"role": "system", "content": "Be brief."},
                      {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello!"},
                      {"role": "user", "content": "Translate 'cat' to French."},
                      {"role": "assistant", "content": "chat"}]),
    Example.single("Write a haiku about rain.", "Soft rain on the roof\nthe garden drinks quietly\n"
                   "puddles hold the sky"),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    return model, tok


def direct(model, tok, messages, train_on="last"):
    """Plain reference: one example, full forward, cross-entropy over supervised tokens."""
    enc = encode(messages, tok, train_on=train_on)
    ids = torch.tensor([enc.input_ids])
    labels = torch.tensor([enc.labels])
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    lsum = F.cross_entropy(logits[0, :-1], labels[0, 1:], ignore_index=-100, reduction="sum")
    n = int((labels[0, 1:] != -100).sum())
    return float(lsum), n


@pytest.mark.parametrize("train_on", ["last", "assistant"])
def test_matches_direct_transformers_computation(tiny, train_on):
    model, tok = tiny
    got = example_losses(model, tok, EXAMPLES, LossOptions(train_on=train_on, batch_size=3))
    assert [g.id for g in got] == [e.id for e in EXAMPLES]      # input order kept
    for g, ex in zip(got, EXAMPLES):
        ref_sum, ref_n = direct(model, tok, ex.messages, train_on)
        assert g.flag is None
        assert g.n_tokens == ref_n
        assert g.loss_sum == pytest.approx(ref_sum, rel=1e-4, abs=1e-4)
        assert g.mean == pytest.approx(ref_sum / ref_n, rel=1e-4)


def test_batch_size_does_not_change_results(tiny):
    model, tok = tiny
    a = example_losses(model, tok, EXAMPLES, LossOptions(batch_size=1))
    b = example_losses(model, tok, EXAMPLES, LossOptions(batch_size=4))
    for x, y in zip(a, b):
        assert x.loss_sum == pytest.approx(y.loss_sum, rel=1e-5)


def test_message_lists_are_accepted(tiny):
    model, tok = tiny
    got = example_losses(model, tok, [EXAMPLES[0].messages])
    assert got[0].id == EXAMPLES[0].id


def test_too_long_is_flagged_not_truncated(tiny):
    model, tok = tiny
    long = Example.single("word " * 200, "answer")
    got = example_losses(model, tok, [EXAMPLES[0], long], LossOptions(max_length=64))
    assert got[0].flag is None and math.isfinite(got[0].mean)
    assert got[1].flag == "too_long"
    assert math.isnan(got[1].mean) and math.isnan(got[1].loss_sum)
    assert got[1].length > 64


def test_nonfinite_loss_is_flagged(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    with torch.no_grad():
        model.lm_head.weight[5] = float("nan")      # poisons every softmax
    got = example_losses(model, tok, EXAMPLES[:2])
    assert [g.flag for g in got] == ["nonfinite", "nonfinite"]
    assert all(math.isnan(g.mean) for g in got)


def test_softcapped_model_falls_back_to_full_forward(tiny):
    """A model whose forward changes logits after the head must not use the shortcut."""
    model, tok = tiny

    class Capped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.base_model = inner.model

        def get_output_embeddings(self):
            return self.inner.lm_head

        def forward(self, **kw):
            out = self.inner(**kw)
            out.logits = 3.0 * torch.tanh(out.logits / 3.0)
            return out

    capped = Capped(model)
    got = example_losses(capped, tok, EXAMPLES[:2])
    for g, ex in zip(got, EXAMPLES[:2]):
        enc = encode(ex.messages, tok, train_on="last")
        ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
        with torch.no_grad():
            logits = 3.0 * torch.tanh(model(input_ids=ids).logits / 3.0)
        ref = F.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="sum")
        assert g.loss_sum == pytest.approx(float(ref), rel=1e-4)


def test_bf16_close_to_fp32(tiny):
    model, tok = tiny
    a = example_losses(model, tok, EXAMPLES, LossOptions(precision="fp32"))
    b = example_losses(model, tok, EXAMPLES, LossOptions(precision="bf16"))
    for x, y in zip(a, b):
        assert y.mean == pytest.approx(x.mean, rel=0.02)


def test_shared_prefix_is_computed_once_and_changes_nothing(tiny):
    from sftflow.nll import _shared_prefix
    model, tok = tiny
    single = [e for e in EXAMPLES if e.system is None]          # all start with the default system prompt
    encs = [encode(e.messages, tok, train_on="last") for e in single]
    start = _shared_prefix(encs)
    assert start >= 10
    assert all(e.input_ids[:start] == encs[0].input_ids[:start] for e in encs)
    first_scored = min(next(i for i, x in enumerate(e.labels) if x != -100) for e in encs)
    assert start <= first_scored - 1
    shared = example_losses(model, tok, single, LossOptions(batch_size=8, share_prefix=True))
    plain = example_losses(model, tok, single, LossOptions(batch_size=8, share_prefix=False))
    for a, b in zip(shared, plain):
        assert a.loss_sum == pytest.approx(b.loss_sum, rel=1e-4)
        ref, _ = direct(model, tok, [m for m in next(e for e in single if e.id == a.id).messages])
        assert a.loss_sum == pytest.approx(ref, rel=1e-4)


def test_common_prefix_runs_through_the_model_once(tiny):
    """With the shared start computed once per call, the decoder sees it once, not per batch."""
    from sftflow.nll import _shared_prefix
    model, tok = tiny
    single = [e for e in EXAMPLES if e.system is None]
    encs = [encode(e.messages, tok, train_on="last") for e in single]
    g = _shared_prefix(encs)
    example_losses(model, tok, single[:1])                  # the head-shortcut check runs once per model
    seen = []
    hook = model.get_input_embeddings().register_forward_hook(lambda m, i, o: seen.append(i[0].numel()))
    try:
        got = example_losses(model, tok, single, LossOptions(batch_size=1))
    finally:
        hook.remove()
    assert sum(seen) == g + sum(len(e.input_ids) - g for e in encs)
    for a, ex in zip(got, single):
        assert a.loss_sum == pytest.approx(direct(model, tok, ex.messages)[0], rel=1e-4)


def test_shared_prefix_raises_no_deprecation_warning(tiny):
    """The prefix cache is handed over with the keyword transformers 5 accepts, so scoring
    prints no ``past_key_values`` deprecation (the old keyword warned on every batch)."""
    import warnings
    model, tok = tiny
    single = [e for e in EXAMPLES if e.system is None]          # shared start: the cache path runs
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        got = example_losses(model, tok, single, LossOptions(batch_size=1))
    assert all(g.ok for g in got)
    assert not [w for w in caught if "past_key_values" in str(w.message)], [str(w.message) for w in caught]


def test_options_are_typed_and_misspellings_raise():
    with pytest.raises(TypeError):
        LossOptions(batch_sise=4)                   # a dataclass: no option is silently dropped


def test_batches_cut_where_padding_would_dominate():
    from types import SimpleNamespace

    from sftflow.nll import _batches
    lengths = [100, 98, 70, 69, 60, 10]                  # sorted longest first, as example_losses does
    encs = [(i, SimpleNamespace(input_ids=[0] * n)) for i, n in enumerate(lengths)]
    # 70 < 0.75 * 100 starts a batch; 60 >= 0.75 * 70 joins it; 10 goes alone
    assert [[i for i, _ in b] for b in _batches(encs, 4)] == [[0, 1], [2, 3, 4], [5]]
    assert [[i for i, _ in b] for b in _batches(encs[:2] + encs[:1], 2)] == [[0, 1], [0]]   # row cap
