"""Training on a tiny random Llama: loss logged, LoRA moves, base frozen, best kept, merge works."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from sftflow.io import write_examples
from sftflow.schema import Example
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    exs = [Example.single(f"What is {i} plus {i}?", f"Answer: {2 * i}.") for i in range(48)]
    write_examples(d / "train.jsonl", exs[:40])
    write_examples(d / "eval.jsonl", exs[40:])
    return d


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, data, tmp_path_factory):
    out = tmp_path_factory.mktemp("lora")
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], eval=[str(data / "eval.jsonl")],
                      max_steps=12, eval_steps=4, logging_steps=2, batch_size=4, learning_rate=5e-2,
                      merge=True, lora_r=4, lora_alpha=8, save_total_limit=5)
    return train(cfg, out_dir=out, quiet=True), out


def test_loss_is_logged_and_falls(lora_run):
    res, out = lora_run
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) >= 5 and all(x == x for x in losses)
    assert losses[-1] < losses[0]
    assert any("eval_loss" in r for r in rows)
    assert res.steps == 12


def test_lora_changes_adapter_and_not_base(lora_run, tiny_model_dir):
    _, out = lora_run
    adapter = load_file(str(out / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert lora_b and all(v.abs().sum() > 0 for v in lora_b)   # B starts at zero: it moved
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    merged = load_file(str(out / "merged" / "model.safetensors"))
    # merged q_proj differs from base (adapter applied), embeddings identical (frozen)
    key = next(k for k in base if k.endswith("layers.0.self_attn.q_proj.weight"))
    assert not torch.equal(base[key], merged[key])
    assert torch.equal(base["model.embed_tokens.weight"], merged["model.embed_tokens.weight"])


def test_best_checkpoint_is_the_output(lora_run):
    res, out = lora_run
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    evals = {r["step"]: r["eval_loss"] for r in rows if "eval_loss" in r and r["step"] % 4 == 0}
    best_step = min(evals, key=evals.get)
    assert res.best_eval_loss == pytest.approx(evals[best_step])
    ck = load_file(str(out / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors"))
    final = load_file(str(out / "adapter_model.safetensors"))
    assert all(torch.equal(ck[k], final[k]) for k in final)
    assert (out / "train_config.yaml").exists() and (out / "tokenizer.json").exists()


def test_heldout_split_is_seeded_and_disjoint(tiny_model_dir, data, tmp_path):
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], max_steps=1, batch_size=4,
                      eval_fraction=0.25, seed=3)
    train(cfg, out_dir=tmp_path / "a", quiet=True)
    train(cfg, out_dir=tmp_path / "b", quiet=True)
    ev_a = (tmp_path / "a" / "data" / "eval.jsonl").read_text()
    assert ev_a == (tmp_path / "b" / "data" / "eval.jsonl").read_text()
    ids_eval = {json.loads(l)["id"] for l in ev_a.splitlines()}
    ids_train = {json.loads(l)["id"] for l in (tmp_path / "a" / "data" / "train.jsonl").read_text().splitlines()}
    assert len(ids_eval) == 10 and not ids_eval & ids_train


def test_qlora_refused_with_reason_without_cuda(tiny_model_dir, data, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], load_in_4bit=True, max_steps=1)
    with pytest.raises(ValueError, match="needs a CUDA GPU"):
        train(cfg, out_dir=tmp_path, quiet=True)
    from sftflow.config import ConfigError, validate
    with pytest.raises(ConfigError, match="use method=lora"):
        validate(TrainConfig, {"load_in_4bit": True, "method": "full"})


def test_final_eval_is_not_repeated_without_keep_best(tiny_model_dir, data, tmp_path, monkeypatch, capsys):
    """The eval logged at the last step measured the final weights: no second pass."""
    from sftflow.train import sft
    calls = []
    orig = sft.MaskedLossTrainer.evaluate

    def counting(self, *a, **kw):
        calls.append(self.state.global_step)
        return orig(self, *a, **kw)

    monkeypatch.setattr(sft.MaskedLossTrainer, "evaluate", counting)
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], eval=[str(data / "eval.jsonl")],
                      max_steps=4, eval_steps=2, batch_size=4, lora_r=4, lora_alpha=8, keep_best=False)
    res = train(cfg, out_dir=tmp_path / "o", quiet=True)
    assert calls == [2, 4]                       # the two scheduled evaluations, nothing after
    assert "'loss'" not in capsys.readouterr().out           # quiet: the log goes to log.jsonl only
    rows = [json.loads(l) for l in (tmp_path / "o" / "log.jsonl").read_text().splitlines()]
    assert res.eval_loss == [r["eval_loss"] for r in rows if "eval_loss" in r][-1]
    # max_steps not a multiple of eval_steps: the final weights were never measured, so they are
    cfg = cfg.model_copy(update={"max_steps": 3})
    calls.clear()
    train(cfg, out_dir=tmp_path / "p", quiet=True)
    assert calls == [2, 3]
