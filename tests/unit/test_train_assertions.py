"""Training on a tiny random Llama, asserted on numbers that would be wrong if training were.

Stronger versions of checks that used to accept almost any outcome: the merged model
must *be* base + adapter (same logits, same greedy tokens, not the base's), a full
fine-tune must move every tensor, a packed run must start from the same loss and the
same supervised tokens as the unpacked run over the same examples, and the checkpoint
kept by a probe must be the one whose saved weights score best on that probe.
"""

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


def _log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def test_merged_model_is_base_plus_adapter_and_generates_like_it(tiny_model_dir, data, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], max_steps=6, batch_size=4,
                      learning_rate=5e-2, merge=True, lora_r=4, lora_alpha=8, logging_steps=2)
    train(cfg, out_dir=tmp_path, quiet=True)
    tok = AutoTokenizer.from_pretrained(tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged").eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path).eval()
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 3 plus 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        lm, la, lb = (m(**ids).logits for m in (merged, adapted, base))
    assert torch.allclose(lm, la, atol=1e-4)              # merging kept the adapter's function
    assert (lm - lb).abs().max() > 1e-2                   # and the adapter changed the model
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
    g_merged = merged.generate(**ids, **kw)[0, ids["input_ids"].shape[1]:]
    g_adapted = adapted.generate(**ids, **kw)[0, ids["input_ids"].shape[1]:]
    assert g_merged.tolist() == g_adapted.tolist() and len(g_merged) >= 1


def test_full_finetune_moves_every_weight_tensor(tiny_model_dir, data, tmp_path):
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], method="full", max_steps=3,
                      batch_size=4, learning_rate=1e-3, logging_steps=1)
    train(cfg, out_dir=tmp_path, quiet=True)
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    tuned = load_file(str(tmp_path / "model.safetensors"))
    assert set(tuned) == set(base)
    unchanged = [k for k in base if torch.equal(base[k], tuned[k])]
    assert unchanged == [], f"full fine-tuning left these tensors untouched: {unchanged}"


def test_packed_run_starts_from_the_unpacked_loss_over_the_same_tokens(tiny_model_dir, data, tmp_path):
    # One optimiser step over all 40 examples either way: the first logged loss is the
    # initial model's token-weighted loss on the same supervised tokens, packed or not.
    common = dict(model=tiny_model_dir, data=[str(data / "train.jsonl")], max_steps=1, batch_size=40,
                  learning_rate=1e-3, logging_steps=1, warmup_ratio=0.0)
    plain = train(TrainConfig(**common), out_dir=tmp_path / "plain", quiet=True)
    packed = train(TrainConfig(**common, packing=True, pack_length=128), out_dir=tmp_path / "packed", quiet=True)
    assert packed.train_examples == plain.train_examples == 36       # 10% held out for eval
    assert packed.supervised_tokens == plain.supervised_tokens > 0
    first = [next(r["loss"] for r in _log(tmp_path / d) if "loss" in r) for d in ("plain", "packed")]
    assert first[1] == pytest.approx(first[0], rel=1e-4)
    assert packed.total_tokens < 36 * 128                 # rows were actually packed, not padded


def _probe_rate(tiny_model_dir, adapter_dir, prompts, probe) -> float:
    """The probe's rate for one saved checkpoint, measured again from its files."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from sftflow.backends import GenParams
    from sftflow.backends.transformers_backend import TransformersBackend
    from sftflow.probes import run_probes
    from sftflow.models import load_tokenizer
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), adapter_dir).eval()
    be = TransformersBackend(model="checkpoint", model_obj=model, tokenizer=load_tokenizer(tiny_model_dir),
                             device="cpu")
    answers = [{"text": c.text, "finish_reason": c.finish_reason}
               for c in be.generate(prompts, GenParams(max_new_tokens=64))]
    return run_probes(answers, [probe])[probe["name"]]["rate"]


def test_probe_chosen_checkpoint_has_the_best_probe_rate(tiny_model_dir, data, tmp_path):
    from sftflow.io import read_examples
    probe = {"name": "says_answer", "kind": "regex", "pattern": "Answer"}
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], eval=[str(data / "eval.jsonl")],
                      max_steps=6, eval_steps=2, batch_size=4, learning_rate=1e-2, best_probe=probe,
                      best_probe_prompts=2, logging_steps=2, save_total_limit=5)
    res = train(cfg, out_dir=tmp_path, quiet=True)
    prompts = [e.context for e in read_examples([str(data / "eval.jsonl")]).examples[:2]]
    ck = tmp_path / "checkpoints"
    rates = {s: _probe_rate(tiny_model_dir, ck / f"checkpoint-{s}", prompts, probe) for s in (2, 4, 6)}
    # higher is better; on a tie the earliest checkpoint stays best (a later one must be strictly better)
    best = min(s for s in rates if rates[s] == max(rates.values()))
    state = json.loads((ck / "checkpoint-6" / "trainer_state.json").read_text())
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best}"), rates
    assert state["best_metric"] == rates[best] == res.best_eval_loss
    kept = load_file(str(ck / f"checkpoint-{best}" / "adapter_model.safetensors"))
    final = load_file(str(tmp_path / "adapter_model.safetensors"))
    assert set(kept) == set(final) and all(torch.equal(kept[k], final[k]) for k in final)
    # the probe generated with left padding on its own tokenizer, not on the one saved
    from sftflow.models import load_tokenizer
    assert load_tokenizer(str(tmp_path)).padding_side == load_tokenizer(tiny_model_dir).padding_side


def test_load_model_merges_an_adapter_folder_for_inference(tiny_model_dir, data, tmp_path):
    """An adapter folder loads as one plain model with the adapter merged in: unmerged LoRA
    layers cost a second matmul per projection at every decoding step (about 5x slower
    generation of the demo's tuned model on this CPU), for the same function."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from sftflow.models import load_model
    cfg = TrainConfig(model=tiny_model_dir, data=[str(data / "train.jsonl")], max_steps=6, batch_size=4,
                      learning_rate=5e-2, lora_r=4, lora_alpha=8, logging_steps=2)
    train(cfg, out_dir=tmp_path, quiet=True)
    loaded = load_model(str(tmp_path))
    assert not isinstance(loaded, PeftModel)
    assert not any("lora" in name for name, _ in loaded.named_parameters())
    adapted = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), tmp_path).eval()
    tok = AutoTokenizer.from_pretrained(tmp_path)
    ids = tok.apply_chat_template([{"role": "user", "content": "What is 3 plus 3?"}], add_generation_prompt=True,
                                  return_tensors="pt", return_dict=True)
    with torch.no_grad():
        assert torch.allclose(loaded.eval()(**ids).logits, adapted(**ids).logits, atol=1e-4)
