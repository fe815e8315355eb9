"""The speed levers must not change what is learned."""

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from sftflow import encode
from sftflow.io import write_examples
from sftflow.schema import Example
from sftflow.train.collate import PadCollator
from sftflow.train.config import TrainConfig
from sftflow.train.supervised_loss import supervised_loss_sum
from sftflow.train.sft import train


def batch_of(tok, n=4):
    exs = [[{"role": "user", "content": f"Question {i} " * (i + 1)},
            {"role": "assistant", "content": f"Answer {i}" * (2 * i + 1)}] for i in range(n)]
    return PadCollator(tok.pad_token_id)([encode(m, tok).to_dict() for m in exs])


def test_supervised_head_equals_full_head(tiny_model_dir, smol_tokenizer):
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    batch = batch_of(smol_tokenizer)
    fast, n1 = supervised_loss_sum(model, batch, fast_head=True)
    g_fast = torch.autograd.grad(fast, list(model.parameters()), allow_unused=True)
    full, n2 = supervised_loss_sum(model, batch, fast_head=False)
    g_full = torch.autograd.grad(full, list(model.parameters()), allow_unused=True)
    assert n1 == n2 and n1 > 0
    assert fast.item() == pytest.approx(full.item(), rel=1e-5)
    # and both equal the transformers loss (mean over supervised tokens)
    ref = model(**batch).loss
    assert (full / n2).item() == pytest.approx(ref.item(), rel=1e-5)
    for a, b in zip(g_fast, g_full):
        if a is not None:
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_batch8_equals_batch1_times_accum8(tiny_model_dir, tmp_path):
    # Examples of very different answer lengths: averaging per micro-batch would differ.
    # Plain SGD, because Adam's first step is sign(gradient) and would hide a scale error.
    exs = [Example.single(f"q{i}", " ".join(["word"] * (1 + 7 * i))) for i in range(8)]
    write_examples(tmp_path / "d.jsonl", exs)
    common = dict(model=tiny_model_dir, data=[str(tmp_path / "d.jsonl")], eval=[str(tmp_path / "d.jsonl")],
                  method="full", max_steps=1, learning_rate=1.0, optimizer="sgd", warmup_ratio=0.0, weight_decay=0.0,
                  group_by_length=False, logging_steps=1, max_grad_norm=1e9)
    train(TrainConfig(batch_size=8, gradient_accumulation_steps=1, **common), out_dir=tmp_path / "a", quiet=True)
    train(TrainConfig(batch_size=1, gradient_accumulation_steps=8, **common), out_dir=tmp_path / "b", quiet=True)
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    base = load_file(str(__import__("pathlib").Path(tiny_model_dir) / "model.safetensors"))
    k = "model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(a[k], base[k])
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=2e-6)


def test_best_fit_decreasing_fills_rows():
    from sftflow.train.packing import best_fit_decreasing
    bins = best_fit_decreasing([5, 3, 4, 2, 6, 1, 7], capacity=10)
    assert sorted(i for b in bins for i in b) == list(range(7))
    assert all(sum([5, 3, 4, 2, 6, 1, 7][i] for i in b) <= 10 for b in bins)
    assert len(bins) == 3                                   # 28 tokens in 3 rows of 10
    with pytest.raises(ValueError, match="pack capacity"):
        best_fit_decreasing([11], capacity=10)


def test_packed_equals_unpacked_per_example(tiny_model_dir, smol_tokenizer):
    from sftflow.chat import IGNORE_INDEX
    from sftflow.train.packing import PackedCollator, pack_rows
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    rows = [encode([{"role": "user", "content": f"Question {i} " * (i + 1)},
                    {"role": "assistant", "content": f"Answer {i} " * (3 * i + 1)}], smol_tokenizer).to_dict()
            for i in range(5)]
    # unpacked: one example at a time
    single, grads_single = [], None
    for r in rows:
        b = PadCollator(smol_tokenizer.pad_token_id)([r])
        s, n = supervised_loss_sum(model, b)
        single.append((s / n).item())
    total_single = sum(supervised_loss_sum(model, PadCollator(smol_tokenizer.pad_token_id)([r]))[0] for r in rows)
    grads_single = torch.autograd.grad(total_single, list(model.parameters()))
    # packed: two rows of <= 200 tokens, padding between rows
    packed = pack_rows(rows, capacity=200)
    assert len(packed) < len(rows)
    batch = PackedCollator(smol_tokenizer.pad_token_id)(packed)
    assert "attention_mask" not in batch
    total_packed, n = supervised_loss_sum(model, batch)
    grads_packed = torch.autograd.grad(total_packed, list(model.parameters()))
    assert total_packed.item() == pytest.approx(total_single.item(), rel=1e-5)
    for a, b in zip(grads_single, grads_packed):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # per-example losses read back from the packed row
    # use_cache=False matters: with a cache transformers does not read packed position ids
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"], use_cache=False).logits
    logp = torch.log_softmax(logits.float(), -1)
    per_example = {}
    for row_i, row in enumerate(packed):
        start = 0
        for length in row["seq_lens"]:
            lab = batch["labels"][row_i, start + 1:start + length]
            lp = logp[row_i, start:start + length - 1]
            m = lab != IGNORE_INDEX
            nll = -lp[m].gather(-1, lab[m].unsqueeze(-1)).mean().item()
            per_example[tuple(row["input_ids"][start:start + length])] = nll
            start += length
    for r, loss in zip(rows, single):
        assert per_example[tuple(r["input_ids"])] == pytest.approx(loss, abs=1e-4)
