"""2-process DDP on CPU (gloo) matches 1 process with doubled gradient accumulation."""

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


def losses(out):
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def test_two_process_ddp_matches_accumulation(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    # answers of different lengths, so wrong loss normalisation would show
    write_examples(data, [Example.single(f"Count {i}", "Answer: " + " ".join(["x"] * (i % 9 + 1)))
                          for i in range(64)])
    common = [data, "--eval", data, "--model", tiny_model_dir, "--method", "full", "--max-steps", "5",
              "--batch-size", "4", "--lr", "1e-2", "--set", "group_by_length=false", "--set", "logging_steps=1",
              "--set", "warmup_ratio=0"]
    ddp = run(*common, "--launcher", "accelerate", "--num-processes", "2", "-o", tmp_path / "ddp")
    assert ddp.stdout.count("trained 5 steps") == 1          # only the main process reports
    run(*common, "--grad-accum", "2", "-o", tmp_path / "single")
    a, b = losses(tmp_path / "ddp"), losses(tmp_path / "single")
    assert [s for s, _ in a] == [s for s, _ in b] == [1, 2, 3, 4, 5]
    for (_, x), (_, y) in zip(a, b):
        assert abs(x - y) / y < 1e-3, (a, b)
    wa = load_file(str(tmp_path / "ddp" / "model.safetensors"))
    wb = load_file(str(tmp_path / "single" / "model.safetensors"))
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-3, atol=1e-5)
