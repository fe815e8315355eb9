"""`train --smoke` runs a short job and fails loudly on broken configs."""

import json

from sftflow.io import write_examples
from sftflow.schema import Example
from sftflow.train.config import TrainConfig
from sftflow.train.smoke import run_smoke


def data(tmp_path, n=40):
    write_examples(tmp_path / "d.jsonl", [Example.single(f"Say {i}", f"Answer: {i}") for i in range(n)])
    return str(tmp_path / "d.jsonl")


def verdict(out):
    return {c["name"]: c for c in json.loads((out / "smoke.json").read_text())["checks"]}


def test_huge_learning_rate_fails_with_nonfinite_loss(tiny_model_dir, tmp_path):
    cfg = TrainConfig(model=tiny_model_dir, data=[data(tmp_path)], method="full", learning_rate=1e8,
                      max_steps=6, batch_size=4, logging_steps=1, max_grad_norm=1e12)
    assert run_smoke(cfg, tmp_path / "out") == 1
    v = verdict(tmp_path / "out")
    assert not v["loss_finite"]["ok"] and "non-finite" in v["loss_finite"]["detail"]


def test_all_labels_masked_fails(tiny_model_dir, tmp_path):
    # max_length so short that no example keeps a supervised token: nothing to learn
    cfg = TrainConfig(model=tiny_model_dir, data=[data(tmp_path)], max_steps=4, batch_size=4, max_length=8)
    assert run_smoke(cfg, tmp_path / "out") == 1
    v = verdict(tmp_path / "out")
    assert not v["supervised_tokens"]["ok"] and not v["no_crash"]["ok"]


def test_sane_config_passes(tiny_model_dir, tmp_path):
    cfg = TrainConfig(model=tiny_model_dir, data=[data(tmp_path, 64)], method="full", learning_rate=3e-3,
                      max_steps=40, batch_size=8, logging_steps=2, warmup_ratio=0.0)
    code = run_smoke(cfg, tmp_path / "out")
    v = verdict(tmp_path / "out")
    assert code == 0, v
    assert v["loss_falling"]["ok"] and v["sample_format"]["ok"]
