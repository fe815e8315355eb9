"""Training throughput: sftflow's trainer vs TRL's SFTTrainer on the same job.

Same model (SmolLM2-135M-Instruct), same encoded examples (our masks, handed to TRL as
a pre-tokenized dataset with a ``labels`` column, so both train on the same tokens with
the same masks), same batch size, sequence limit, optimizer settings and step count.
Each arm runs in its own process so peak memory (max RSS) is per arm.

Reports non-padding tokens/s, supervised tokens/s, peak RSS and the mean training loss.
The like-for-like loss check compares TRL with our trainer in the same sample order
(``group_by_length`` off); the speed headline uses our default settings.

    python benchmarks/train_throughput.py            # ~8 minutes on 2 cores
    python benchmarks/train_throughput.py --steps 6 --examples 96   # quick look
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def build_data(n: int, max_length: int, out: Path) -> Path:
    """Demo finance data plus real T0 records (when ../shared is present), encoded once."""
    from sftflow.demo import demo_data
    from sftflow.io import load_examples
    from sftflow.models import load_tokenizer
    from sftflow.templates import encode_many
    tok = load_tokenizer()
    exs = load_examples(demo_data()[0])
    t0 = sorted((SHARED / "t0-sample").glob("*.jsonl")) if SHARED.exists() else []
    if t0:
        exs += load_examples(t0)
    import random
    random.Random(0).shuffle(exs)
    enc, _ = encode_many(exs[: n * 2], tok, max_length=max_length)
    rows = [e.to_dict() for e in enc[:n]]
    with open(out, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
    return out


class Meter:
    """Counts non-padding and supervised tokens of every batch the trainer consumes."""

    def __init__(self):
        self.tokens = 0
        self.supervised = 0
        self.t0 = None
        self.t1 = None


def run_arm(arm: str, data: Path, args) -> dict:
    import torch
    from transformers import TrainerCallback

    rows = [json.loads(l) for l in data.read_text().splitlines()]
    meter = Meter()

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            meter.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            meter.t1 = time.perf_counter()

    def count(batch):
        meter.tokens += int(batch["attention_mask"].sum()) if "attention_mask" in batch \
            else int((batch["labels"] != -100).numel())
        meter.supervised += int((batch["labels"][:, 1:] != -100).sum())

    common = dict(max_steps=args.steps, per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                  lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.1, max_grad_norm=1.0,
                  logging_steps=1, report_to="none", save_strategy="no", seed=0, data_seed=0,
                  use_cpu=True, disable_tqdm=True)
    if arm == "trl":
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        from sftflow.models import load_model, load_tokenizer
        tok = load_tokenizer()
        model = load_model()
        ds = Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
        peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                          "down_proj"]) if args.method == "lora" else None
        cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=args.max_length, **common,
                        padding_free=args.trl_padding_free, packing=args.trl_padding_free)
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok,
                             peft_config=peft, callbacks=[Timer()])
        collate = trainer.data_collator

        def counting(features):
            b = collate(features)
            count(b)
            return b
        trainer.data_collator = counting
        result = trainer.train()
    else:
        from sftflow.train import sft
        from sftflow.train.config import TrainConfig
        cfg = TrainConfig(method=args.method, lora_dropout=0.0, learning_rate=args.lr, max_steps=args.steps,
                          batch_size=args.batch_size, max_length=args.max_length, warmup_ratio=0.0,
                          group_by_length=(arm == "sftflow"), logging_steps=1, keep_best=False)
        orig = sft.PadCollator.__call__

        def counting(self, features):
            b = orig(self, features)
            count(b)
            return b
        sft.PadCollator.__call__ = counting
        result = _train_encoded(cfg, rows, Path(tempfile.mkdtemp()), [Timer()])
    secs = meter.t1 - meter.t0
    return {"arm": arm, "seconds": secs, "tokens": meter.tokens, "supervised": meter.supervised,
            "tokens_per_s": meter.tokens / secs, "supervised_per_s": meter.supervised / secs,
            "train_loss": result.training_loss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def _train_encoded(cfg, rows, out: Path, callbacks):
    """Our trainer on already-encoded rows (the same ones TRL gets)."""
    from transformers import TrainingArguments

    from sftflow.models import load_tokenizer
    from sftflow.train.collate import PadCollator
    from sftflow.train.sft import ListDataset, SFTTrainerLite, build_model
    tok = load_tokenizer()
    model = build_model(cfg, "smollm2-135m-instruct")
    args = TrainingArguments(output_dir=str(out / "ck"), learning_rate=cfg.lr, lr_scheduler_type="cosine",
                             warmup_steps=1, weight_decay=0.1, max_grad_norm=1.0, max_steps=cfg.max_steps,
                             per_device_train_batch_size=cfg.batch_size, logging_steps=1, report_to="none",
                             save_strategy="no", seed=0, data_seed=0, use_cpu=True, disable_tqdm=True,
                             remove_unused_columns=False,
                             train_sampling_strategy="group_by_length" if cfg.group_by_length else "random")
    trainer = SFTTrainerLite(model=model, args=args, train_dataset=ListDataset(rows),
                             data_collator=PadCollator(tok.pad_token_id), processing_class=tok,
                             callbacks=callbacks)
    return trainer.train()


def matmul_gflops() -> float:
    import torch
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    n = 20
    for _ in range(n):
        a @ b
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t) / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=15)
    p.add_argument("--examples", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=512)
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--trl-padding-free", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.arm:
        print("RESULT " + json.dumps(run_arm(args.arm, Path(args.data), args)))
        return
    work = Path(tempfile.mkdtemp())
    data = build_data(args.examples, args.max_length, work / "encoded.jsonl")
    base = [sys.executable, __file__, "--data", str(data), "--steps", str(args.steps), "--batch-size",
            str(args.batch_size), "--max-length", str(args.max_length), "--method", args.method,
            "--lr", str(args.lr)]
    results = {}
    for arm in ("trl", "sftflow-same-order", "sftflow"):
        out = subprocess.run(base + ["--arm", arm], capture_output=True, text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            sys.exit(f"arm {arm} failed:\n{out.stderr[-3000:]}")
        results[arm] = json.loads(line[0][7:])
        r = results[arm]
        print(f"{arm:20s} {r['tokens_per_s']:7.1f} tok/s  {r['supervised_per_s']:7.1f} sup tok/s  "
              f"loss {r['train_loss']:.4f}  peak RSS {r['peak_rss_mb']:.0f} MB  ({r['seconds']:.0f} s)",
              flush=True)
    gf = matmul_gflops()
    trl, same, ours = results["trl"], results["sftflow-same-order"], results["sftflow"]
    loss_gap = abs(same["train_loss"] - trl["train_loss"]) / trl["train_loss"]
    print(f"\nmatmul peak here: {gf:.0f} GFLOPS fp32")
    print(f"same tokens, same order: loss ours {same['train_loss']:.4f} vs TRL {trl['train_loss']:.4f} "
          f"({loss_gap:.2%} apart; target <= 2%)")
    print(f"throughput ratio (ours default / TRL default): {ours['tokens_per_s'] / trl['tokens_per_s']:.2f}x; "
          f"same order: {same['tokens_per_s'] / trl['tokens_per_s']:.2f}x")
    print(json.dumps({"benchmark": "train_throughput", "ours": round(ours["tokens_per_s"], 1),
                      "peer": round(trl["tokens_per_s"], 1), "unit": "non-padding tokens/s",
                      "ratio": round(ours["tokens_per_s"] / trl["tokens_per_s"], 3), "target": 1.0}))


if __name__ == "__main__":
    main()
