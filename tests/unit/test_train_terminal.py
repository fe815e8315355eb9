"""A training run's terminal: progress bars and a summary, never the raw log dicts or
known library deprecation warnings; the dicts are in log.jsonl."""

import json
import warnings

from sftflow.io import write_examples
from sftflow.schema import Example
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train


def test_training_prints_bars_and_summary_not_dicts_or_deprecations(tiny_model_dir, tmp_path, capsys):
    exs = [Example.single(f"What is {i} plus {i}?", f"Answer: {2 * i}.") for i in range(24)]
    write_examples(tmp_path / "t.jsonl", exs[:20])
    write_examples(tmp_path / "e.jsonl", exs[20:])
    cfg = TrainConfig(model=tiny_model_dir, data=[str(tmp_path / "t.jsonl")], eval=[str(tmp_path / "e.jsonl")],
                      max_steps=4, eval_steps=2, logging_steps=1, batch_size=4, lora_r=4, lora_alpha=8, merge=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = train(cfg, out_dir=tmp_path / "out")
    printed = capsys.readouterr()
    text = printed.out + printed.err
    assert "{'loss'" not in text and "'eval_loss'" not in text and "'train_runtime'" not in text
    assert "Loading weights" not in text and "Writing model shards" not in text   # the library's bars
    assert "train" in text and "4/4" in text                  # the run's bar, finished
    assert "eval loss (output)" in text and f"{res.eval_loss:.4f}" in text    # the summary table
    deprecations = [str(w.message) for w in caught
                    if issubclass(w.category, (FutureWarning, DeprecationWarning))
                    and "gradient_checkpointing" in str(w.message)]
    assert not deprecations, deprecations
    rows = [json.loads(l) for l in (tmp_path / "out" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 3, 4]       # every step, in the log
    assert [r["step"] for r in rows if "eval_loss" in r] == [2, 4]


def test_quiet_run_prints_nothing(tiny_model_dir, tmp_path, capsys):
    write_examples(tmp_path / "t.jsonl", [Example.single(f"q{i}", f"Answer: {i}") for i in range(8)])
    cfg = TrainConfig(model=tiny_model_dir, data=[str(tmp_path / "t.jsonl")], eval=[str(tmp_path / "t.jsonl")],
                      max_steps=2, logging_steps=1, batch_size=4, lora_r=4, lora_alpha=8)
    train(cfg, out_dir=tmp_path / "out", quiet=True)
    printed = capsys.readouterr()
    assert "loss" not in printed.out + printed.err
