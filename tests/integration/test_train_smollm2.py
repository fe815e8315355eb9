"""A few real steps on the embedded SmolLM2-135M-Instruct."""

import json

import pytest

from sftflow.pipeline.demo import demo_data
from sftflow.io import load_examples, write_examples
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train


@pytest.mark.slow
def test_lora_steps_on_smollm2(tmp_path):
    train_file, heldout = demo_data()
    write_examples(tmp_path / "t.jsonl", load_examples(train_file)[:16])
    write_examples(tmp_path / "e.jsonl", load_examples(heldout)[:4])
    cfg = TrainConfig(data=[str(tmp_path / "t.jsonl")], eval=[str(tmp_path / "e.jsonl")], max_steps=4,
                      batch_size=4, learning_rate=1e-3, logging_steps=1, max_length=256)
    res = train(cfg, out_dir=tmp_path / "out", quiet=True)
    losses = [json.loads(l).get("loss") for l in res.log_path.read_text().splitlines()]
    losses = [x for x in losses if x is not None]
    assert len(losses) >= 4 and all(0 < x < 20 for x in losses)
    assert res.best_eval_loss is not None and res.best_eval_loss < 5
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
    assert "<|im_end|>" in (tmp_path / "out" / "chat_template.jinja").read_text()
