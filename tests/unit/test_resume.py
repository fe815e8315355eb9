"""A run killed with SIGKILL mid-epoch and resumed ends where an uninterrupted run ends."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
from safetensors.torch import load_file

from sftflow.io import write_examples
from sftflow.schema import Example

SCRIPT = """
import sys
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train
model, data, out, resume = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
train(TrainConfig(model=model, data=[data], eval=[data], max_steps=10, eval_steps=2, batch_size=4,
                  logging_steps=1, learning_rate=1e-2, seed=5, resume=resume, save_total_limit=10,
                  keep_best=False, packing=True, pack_length=64), out_dir=out, quiet=True)
"""


def launch(model, data, out, resume):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, model, data, str(out), "1" if resume else "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def log_rows(out):
    rows = [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if not k.endswith(("runtime", "per_second")) and k != "total_flos"}
            for r in rows]


def test_sigkill_and_resume_matches_uninterrupted(tiny_model_dir, tmp_path):
    data = tmp_path / "d.jsonl"
    write_examples(data, [Example.single(f"Count {i}", f"Answer: {' '.join(['x'] * (i % 7 + 1))}")
                          for i in range(40)])
    full = launch(tiny_model_dir, str(data), tmp_path / "full", False)
    assert full.wait(timeout=600) == 0, full.stderr.read().decode()[-2000:]

    out = tmp_path / "killed"
    p = launch(tiny_model_dir, str(data), out, False)
    target = out / "checkpoints" / "checkpoint-4" / "trainer_state.json"
    deadline = time.time() + 600
    while not target.exists() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    assert target.exists() and not (out / "adapter_model.safetensors").exists()   # really interrupted
    resumed = launch(tiny_model_dir, str(data), out, True)
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read().decode()[-2000:]

    a = load_file(str(tmp_path / "full" / "adapter_model.safetensors"))
    b = load_file(str(out / "adapter_model.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    la, lb = log_rows(tmp_path / "full"), log_rows(out)
    steps = lambda rows: [r["step"] for r in rows if "loss" in r and "train_loss" not in r]  # noqa: E731
    assert steps(la) == steps(lb) == list(range(1, 11))       # nothing trained twice or skipped
    for ra, rb in zip([r for r in la if "loss" in r], [r for r in lb if "loss" in r]):
        assert abs(ra["loss"] - rb["loss"]) < 1e-4
