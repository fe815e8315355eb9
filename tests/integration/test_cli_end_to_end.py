"""The CLI as a user runs it: a subprocess, real files, a tiny model."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sftflow.io import write_examples
from sftflow.schema import Example

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def sftflow(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sftflow", *map(str, args)], capture_output=True,
                          text=True, env=ENV, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    write_examples(d / "train.jsonl", [Example.single(f"Say {i}", f"Answer: {i}") for i in range(24)])
    return d / "train.jsonl"


def test_inspect_marks_trained_tokens(data, tiny_model_dir):
    r = sftflow("inspect", data, "--model", tiny_model_dir, "-n", "1")
    assert r.returncode == 0, r.stderr
    assert "[[Answer: 0<|im_end|>]]" in r.stdout
    assert "supervised share" in r.stdout and "24" in r.stdout


def test_train_cli_with_config_and_overrides(data, tiny_model_dir, tmp_path):
    cfg = tmp_path / "t.yaml"
    cfg.write_text(f"model: {tiny_model_dir}\nmax_steps: 2\nbatch_size: 4\n")
    r = sftflow("train", data, "--config", cfg, "--set", "learning_rate=1e-3", "-o", tmp_path / "out")
    assert r.returncode == 0, r.stderr[-2000:]
    saved = (tmp_path / "out" / "train_config.yaml").read_text()
    assert "learning_rate: 0.001" in saved and "max_steps: 2" in saved
    assert (tmp_path / "out" / "adapter_model.safetensors").exists()
    rows = [json.loads(l) for l in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert any("loss" in r for r in rows)


def test_bad_config_key_is_a_clear_error(data, tmp_path):
    r = sftflow("train", data, "--set", "lora_rank=8", "-o", tmp_path / "x")
    assert r.returncode == 2
    assert "unknown key 'lora_rank'" in r.stderr and "did you mean 'lora_r'" in r.stderr


def test_bad_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x"}\n')
    r = sftflow("convert", bad, tmp_path / "out.jsonl")
    assert r.returncode == 2
    assert "bad.jsonl: line 1: field 'output': missing field" in r.stderr


def test_run_check_validates_shipped_recipe():
    root = Path(__file__).resolve().parents[2]
    r = sftflow("run", "recipes/train.yaml", "--check", cwd=root)
    assert r.returncode == 0, r.stderr
    assert "stages: train" in r.stdout
