"""2-process DDP on CPU (gloo) matches 1 process with doubled gradient accumulation: the
same losses, weights and schedule (total steps, warmup, evaluation cadence).

The run is epoch-based with warmup on purpose: with a fixed max_steps and no warmup a
schedule that counted steps over all processes instead of per process would go unseen."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file

from sftflow.io import write_examples
from sftflow.schema import Example

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


def run(*args):
    r = subprocess.run([sys.executable, "-m", "sftflow", "train", *map(str, args)], capture_output=True,
                       text=True, env=ENV, timeout=900)
    # rank 0's traceback first: the other ranks usually only report that rank 0 went away
    lines = r.stderr.splitlines()
    assert r.returncode == 0, "\n".join([l for l in lines if "[rank0]" in l][-80:]
                                        + [l for l in lines if "Error" in l and "[rank0]" not in l][-20:])
    return r


def log_rows(out):
    return [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]


def losses(out):
    return [(r["step"], r["loss"]) for r in log_rows(out) if "loss" in r]


def learning_rates(out):
    return [(r["step"], r["learning_rate"]) for r in log_rows(out) if "learning_rate" in r]


def schedule(out):
    return json.loads((out / "train_result.json").read_text())["extra"]["schedule"]


def test_two_process_ddp_matches_accumulation(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    # answers of different lengths, so wrong loss normalisation would show
    write_examples(data, [Example.single(f"Count {i}", "Answer: " + " ".join(["x"] * (i % 9 + 1)))
                          for i in range(64)])
    # 64 examples / (4 per batch x 2) = 8 steps an epoch; half an epoch = 4 steps, warmup
    # ceil(0.3 x 4) = 2 steps, evaluation every 4 steps. Counting batches over both
    # processes would make it 8 steps an epoch: warmup 3 and evaluation every 8.
    common = [data, "--eval", data, "--model", tiny_model_dir, "--method", "full", "--epochs", "0.5",
              "--batch-size", "4", "--lr", "1e-2", "--set", "group_by_length=false", "--set", "logging_steps=1",
              "--set", "warmup_ratio=0.3", "--set", "lr_scheduler=linear"]
    ddp = run(*common, "--launcher", "accelerate", "--num-processes", "2", "-o", tmp_path / "ddp")
    assert ddp.stdout.count("trained 4 steps") == 1          # only the main process reports
    run(*common, "--grad-accum", "2", "-o", tmp_path / "single")
    lr_a, lr_b = learning_rates(tmp_path / "ddp"), learning_rates(tmp_path / "single")
    assert lr_a == lr_b, (lr_a, lr_b)
    # linear warmup over 2 steps to 1e-2, then linear decay to 0 at step 4
    assert [round(lr, 6) for _, lr in lr_b] == [0.0, 0.005, 0.01, 0.005]
    assert schedule(tmp_path / "ddp") == schedule(tmp_path / "single")
    assert [r["step"] for r in log_rows(tmp_path / "ddp") if "eval_loss" in r] == [4]
    # held-out loss gathered from both processes: the same token-weighted number
    ev_a, ev_b = ([r["eval_loss"] for r in log_rows(tmp_path / k) if "eval_loss" in r] for k in ("ddp", "single"))
    assert abs(ev_a[0] - ev_b[0]) < 1e-4, (ev_a, ev_b)
    assert sorted(p.name for p in (tmp_path / "ddp" / "checkpoints").iterdir()) == ["checkpoint-4"]
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4]
    for (_, x), (_, y) in zip(a, b):
        assert abs(x - y) / y < 1e-3, (a, b)
    wa = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    wb = load_file(str(tmp_path / "single" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=1e-5)
