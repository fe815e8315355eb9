"""The trainer's eval_loss and its schedule mean what their names say."""

import pytest
from transformers import AutoModelForCausalLM

from sftflow.evaluate.heldout import heldout_loss
from sftflow.io import load_examples, write_examples
from sftflow.models import load_tokenizer
from sftflow.schema import Example
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train


def conversation(i: int) -> Example:
    # two assistant turns of different lengths: "last" and "assistant" masks differ,
    # and batches of short and long answers make a mean of batch means differ too
    return Example(id=f"c{i}", messages=[
        {"role": "user", "content": f"Start {i}"},
        {"role": "assistant", "content": " ".join(["first"] * (1 + 5 * (i % 3)))},
        {"role": "user", "content": "And then?"},
        {"role": "assistant", "content": " ".join(["word"] * (1 + 9 * (i % 4)))}], metadata={})


def test_trainer_eval_loss_equals_final_heldout_loss(tiny_model_dir, tmp_path):
    write_examples(tmp_path / "t.jsonl", [conversation(i) for i in range(12)])
    write_examples(tmp_path / "e.jsonl", [conversation(i) for i in range(100, 106)])   # batches of 4 and 2
    cfg = TrainConfig(model=tiny_model_dir, data=[str(tmp_path / "t.jsonl")], eval=[str(tmp_path / "e.jsonl")],
                      method="full", max_steps=2, eval_steps=2, batch_size=4, learning_rate=1e-3, keep_best=False,
                      group_by_length=False)
    res = train(cfg, out_dir=tmp_path / "out", quiet=True)
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "out")
    final, _ = heldout_loss(model, load_tokenizer(str(tmp_path / "out")), load_examples(tmp_path / "e.jsonl"),
                            train_on="last")       # sftflow eval's default masks
    assert final["n"] == 6
    assert res.eval_loss == pytest.approx(final["loss"], abs=1e-4)


def test_schedule_counts_steps_per_process():
    """N processes with accumulation k take the steps one process takes with accumulation N*k."""
    from sftflow.train.trainer import plan_schedule
    cfg = TrainConfig(batch_size=4, gradient_accumulation_steps=1, epochs=0.5, warmup_ratio=0.3)
    two = plan_schedule(cfg, 64, num_processes=2)
    one = plan_schedule(cfg.model_copy(update={"gradient_accumulation_steps": 2}), 64, num_processes=1)
    assert two == one
    assert (one.steps_per_epoch, one.total_steps, one.warmup_steps, one.eval_steps) == (8, 4, 2, 4)
    # 8 processes, 3% warmup: still 3% of the steps the run takes, rounded up
    cfg = TrainConfig(batch_size=4, epochs=1, warmup_ratio=0.03)
    assert plan_schedule(cfg, 4096, num_processes=8).total_steps == 128
    assert plan_schedule(cfg, 4096, num_processes=8).warmup_steps == 4
