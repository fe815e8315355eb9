"""`sftflow train` killed with SIGKILL before the first checkpoint, between checkpoints, while a
checkpoint is written and while the final weights are written, then rerun with --resume:
the run continues from the newest complete checkpoint, and its weights and step log equal
an uninterrupted run's (every step logged once, none trained twice into the result)."""

from __future__ import annotations

import json

import _kill_resume as kr
import pytest
import torch
from safetensors.torch import load_file

from sftflow.io import write_examples
from sftflow.schema import Example

pytestmark = pytest.mark.slow     # nine short training runs; `make test` runs it, `make test-fast` does not
STEPS = 6
CONFIG = """model: {model}
data: [{data}]
eval: [{data}]
max_steps: {steps}
eval_steps: 2
batch_size: 4
logging_steps: 1
learning_rate: 0.01
seed: 5
save_total_limit: 10
keep_best: false
packing: true
pack_length: 64
"""
HOOK = """
import transformers
kr.counted(transformers.Trainer, "training_step", {asked!r}, die_at={die_at})
{extra}
"""
POINTS = {   # kill point: (die at this training step call, extra hook, checkpoint the rerun starts from)
    "early": (2, "", None),                                         # step 1 done, nothing saved
    "middle": (5, "", "checkpoint-4"),
    "checkpoint_write": (None, "kr.die_mid_save('checkpoint-4/optimizer.pt')", "checkpoint-2"),
    "final_write": (None, "kr.die_on_rename('adapter_model.safetensors')", "checkpoint-6"),
}


def launch(d, out, name, resume, die_at=None, extra=""):
    asked = d / f"{name}.asked"
    argv = ["train", "--config", d / "train.yaml", "-o", out, "--resume" if resume else "--no-resume"]
    code = kr.run(argv, log=d / f"{name}.log", env={"SFTFLOW_CACHE": str(d / "cache")},
                  hook=HOOK.format(asked=str(asked), die_at=die_at, extra=extra))
    return code, kr.total(asked)


def log_rows(out):
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith(("runtime", "per_second")) and k != "total_flos"}
            for r in rows]


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("train-ref")
    write_examples(d / "d.jsonl", [Example.single(f"Count {i}", f"Answer: {' '.join(['x'] * (i % 7 + 1))}")
                                   for i in range(24)])
    (d / "train.yaml").write_text(CONFIG.format(model=tiny_model_dir, data=d / "d.jsonl", steps=STEPS))
    code, steps = launch(d, d / "full", "ref", resume=False)
    assert code == 0, kr.log_tail(d / "ref.log")
    assert steps == STEPS
    return d, load_file(str(d / "full" / "adapter_model.safetensors")), log_rows(d / "full")


@pytest.mark.parametrize("when", list(POINTS))
def test_train_killed_then_resumed_matches_an_uninterrupted_run(when, reference, tmp_path):
    d, ref_weights, ref_log = reference
    die_at, extra, start = POINTS[when]
    out = tmp_path / "out"
    code, _ = launch(d, out, f"killed-{when}", resume=False, die_at=die_at, extra=extra)
    assert code == -9, kr.log_tail(d / f"killed-{when}.log")
    assert not (out / "adapter_model.safetensors").exists()            # really interrupted
    code, steps = launch(d, out, f"rerun-{when}", resume=True)
    log = kr.log_tail(d / f"rerun-{when}.log", 20000)
    assert code == 0, log
    done = int(start.split("-")[1]) if start else 0
    assert steps == STEPS - done, log                                   # started from `start`
    if when == "checkpoint_write":
        assert "checkpoint-4" in log and "incomplete" in log
    weights = load_file(str(out / "adapter_model.safetensors"))
    assert weights.keys() == ref_weights.keys()
    for k in ref_weights:
        torch.testing.assert_close(weights[k], ref_weights[k], rtol=1e-4, atol=1e-6)
    rows = log_rows(out)
    losses = [r for r in rows if "loss" in r and "train_loss" not in r]
    ref_losses = [r for r in ref_log if "loss" in r and "train_loss" not in r]
    assert [r["step"] for r in losses] == list(range(1, STEPS + 1))   # each step logged once
    for a, b in zip(losses, ref_losses):
        assert abs(a["loss"] - b["loss"]) < 1e-4
    assert sum("train_loss" in r for r in rows) == 1                    # one summary, not one per attempt
