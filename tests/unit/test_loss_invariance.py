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
from sftflow.train.loss import supervised_loss_sum
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
