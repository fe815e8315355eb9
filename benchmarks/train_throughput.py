"""Training throughput: sftflow's trainer vs TRL's SFTTrainer on the same job.

Same model (SmolLM2-135M-Instruct), same encoded examples (our masks, handed to TRL as
a pre-tokenized dataset with a ``labels`` column, so both train on the same tokens with
the same masks), same batch size, sequence limit, optimizer settings and step count.
Each arm runs in its own process so peak memory (max RSS) is per arm.

Reports non-padding tokens/s, supervised tokens/s, peak RSS and the mean training loss.
The like-for-like loss check compares TRL with our trainer in the same sample order
(``group_by_length`` off). Headlines: our default vs TRL default (>= 1.0) and our
fastest arm vs TRL's faster setting (>= 2.0).

    python benchmarks/train_throughput.py            # five arms, ~10 minutes on 2 cores
    python benchmarks/train_throughput.py --arms trl,sftflow --steps 5   # quick look
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
    from sftflow.pipeline.demo import demo_data
    from sftflow.io import load_examples
    from sftflow.models import load_tokenizer
    from sftflow.chat import encode_many
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


ARMS = {
    # name: (trainer, options)
    "trl": ("trl", {}),
    "trl-padding-free": ("trl", {"padding_free": True}),
    # TRL's SFTConfig turns gradient checkpointing on by default; this arm turns it off,
    # for a like-for-like look at what the other levers are worth
    "trl-no-checkpointing": ("trl", {"gradient_checkpointing": False}),
    "sftflow-same-order": ("sftflow", {"group_by_length": False}),
    "sftflow": ("sftflow", {}),
    "sftflow-packed": ("sftflow", {"packing": True}),
    "sftflow-bf16": ("sftflow", {"bf16": True}),
}


def run_arm(arm: str, data: Path, args) -> dict:
    import torch
    from transformers import TrainerCallback

    rows = [json.loads(l) for l in data.read_text().splitlines()]
    meter = Meter()
    kind, opts = ARMS[arm]

    class Timer(TrainerCallback):
        def on_train_begin(self, *a, **k):
            meter.t0 = time.perf_counter()

        def on_train_end(self, *a, **k):
            meter.t1 = time.perf_counter()

    def count(features):
        # counted on the examples each batch is built from: the same measure for every arm
        for f in features:
            meter.tokens += len(f["input_ids"])
            meter.supervised += sum(1 for x in f["labels"][1:] if x != -100)

    lora_targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    if kind == "trl":
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        from sftflow.models import load_model, load_tokenizer
        tok = load_tokenizer()
        model = load_model()
        ds = Dataset.from_list([{"input_ids": r["input_ids"], "labels": r["labels"]} for r in rows])
        peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, task_type="CAUSAL_LM",
                          target_modules=lora_targets) if args.method == "lora" else None
        pf = opts.get("padding_free", False)
        cfg = SFTConfig(output_dir=tempfile.mkdtemp(), max_length=args.max_length, max_steps=args.steps,
                        per_device_train_batch_size=args.batch_size, learning_rate=args.lr,
                        lr_scheduler_type="cosine", warmup_steps=1, weight_decay=0.1, max_grad_norm=1.0,
                        logging_steps=1, report_to="none", save_strategy="no", seed=0, data_seed=0,
                        use_cpu=True, disable_tqdm=True, padding_free=pf, packing=pf,
                        gradient_checkpointing=opts.get("gradient_checkpointing", True))
        trainer = SFTTrainer(model=model, args=cfg, train_dataset=ds, processing_class=tok,
                             peft_config=peft, callbacks=[Timer()])
        collate = trainer.data_collator

        def counting(features):
            count(features)
            return collate(features)
        trainer.data_collator = counting
        result = trainer.train()
    else:
        from sftflow.train.config import TrainConfig
        cfg = TrainConfig(method=args.method, lora_dropout=0.0, learning_rate=args.lr, max_steps=args.steps,
                          batch_size=args.batch_size, max_length=args.max_length, warmup_ratio=0.0,
                          logging_steps=1, keep_best=False, group_by_length=opts.get("group_by_length", True),
                          packing=opts.get("packing", False), bf16=opts.get("bf16", False))
        result = _train_encoded(cfg, rows, Path(tempfile.mkdtemp()), [Timer()], count)
    secs = meter.t1 - meter.t0
    return {"arm": arm, "seconds": secs, "tokens": meter.tokens, "supervised": meter.supervised,
            "tokens_per_s": meter.tokens / secs, "supervised_per_s": meter.supervised / secs,
            "train_loss": result.training_loss,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "threads": torch.get_num_threads()}


def _train_encoded(cfg, rows, out: Path, callbacks, count):
    """Our trainer on already-encoded rows (the same ones TRL gets)."""
    from transformers import TrainingArguments

    from sftflow.models import load_tokenizer
    from sftflow.train.packing import pack_rows
    from sftflow.train.sft import Collator, ListDataset, MaskedLossTrainer, build_model
    tok = load_tokenizer()
    model = build_model(cfg, "smollm2-135m-instruct")
    if cfg.packing:
        rows = pack_rows(rows, cfg.pack_length or cfg.max_length)
        # a packed row holds several examples: fewer rows per batch for the same tokens
        per_row = sum(len(r["seq_lens"]) for r in rows) / len(rows)
        cfg = cfg.model_copy(update={"batch_size": max(1, round(cfg.batch_size / per_row))})
    collate = Collator(tok.pad_token_id)

    def counting(features):
        if "seq_lens" in features[0]:
            for f in features:       # count the examples inside each packed row
                start = 0
                for n in f["seq_lens"]:
                    count([{"input_ids": f["input_ids"][start:start + n],
                            "labels": f["labels"][start:start + n]}])
                    start += n
        else:
            count(features)
        return collate(features)
    args = TrainingArguments(output_dir=str(out / "ck"), learning_rate=cfg.lr, lr_scheduler_type="cosine",
                             warmup_steps=1, weight_decay=0.1, max_grad_norm=1.0, max_steps=cfg.max_steps,
                             per_device_train_batch_size=cfg.batch_size, logging_steps=1, report_to="none",
                             save_strategy="no", seed=0, data_seed=0, use_cpu=True, disable_tqdm=True,
                             remove_unused_columns=False, bf16=bool(cfg.bf16 is True),
                             train_sampling_strategy="group_by_length"
                             if cfg.group_by_length and not cfg.packing else "random")
    trainer = MaskedLossTrainer(model=model, args=args, train_dataset=ListDataset(rows),
                             data_collator=counting, processing_class=tok, callbacks=callbacks)
    return trainer.train()


def matmul_gflops(bf16: bool = False) -> float:
    import torch
    dt = torch.bfloat16 if bf16 else torch.float32
    a, b = torch.randn(1024, 1024, dtype=dt), torch.randn(1024, 1024, dtype=dt)
    for _ in range(3):
        a @ b
    t = time.perf_counter()
    n = 20
    for _ in range(n):
        a @ b
    return 2 * 1024 ** 3 * n / (time.perf_counter() - t) / 1e9


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--examples", type=int, default=240)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256)
    p.add_argument("--method", default="lora", choices=["lora", "full"])
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--data", help=argparse.SUPPRESS)
    p.add_argument("--arms", default="trl,sftflow-same-order,sftflow,sftflow-packed,trl-padding-free",
                   help=f"comma-separated, from {', '.join(ARMS)}")
    args = p.parse_args()
    if args.arm:
        print("RESULT " + json.dumps(run_arm(args.arm, Path(args.data), args)))
        return
    work = Path(tempfile.mkdtemp())
    data = build_data(args.examples, args.max_length, work / "encoded.jsonl")
    base = [sys.executable, __file__, "--data", str(data), "--steps", str(args.steps), "--batch-size",
            str(args.batch_size), "--max-length", str(args.max_length), "--method", args.method,
            "--lr", str(args.lr), "--arms", args.arms]
    results = {}
    for arm in args.arms.split(","):
        out = subprocess.run(base + ["--arm", arm], capture_output=True, text=True)
        line = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not line:
            sys.exit(f"arm {arm} failed:\n{out.stderr[-3000:]}")
        results[arm] = json.loads(line[0][7:])
        r = results[arm]
        print(f"{arm:20s} {r['tokens_per_s']:7.1f} tok/s  {r['supervised_per_s']:7.1f} sup tok/s  "
              f"loss {r['train_loss']:.4f}  peak RSS {r['peak_rss_mb']:.0f} MB  ({r['seconds']:.0f} s)",
              flush=True)
    gf32, gf16 = matmul_gflops(), matmul_gflops(bf16=True)
    n_params = 134_515_008                     # SmolLM2-135M
    k = 4 if args.method == "lora" else 6      # FLOPs/token/param: fwd 2 + bwd-activations 2 (+ weight grads 2)
    print(f"\nmatmul peak here: {gf32:.0f} GFLOPS fp32, {gf16:.0f} GFLOPS bf16; "
          f"share of fp32 peak at ~{k}N FLOPs/token:")
    for arm, r in results.items():
        print(f"  {arm:20s} {r['tokens_per_s'] * k * n_params / (gf32 * 1e9):6.1%}")
    trl_arms = {a: r for a, r in results.items() if a.startswith("trl")}
    our_arms = {a: r for a, r in results.items() if a.startswith("sftflow")}
    best_trl = max(trl_arms, key=lambda a: trl_arms[a]["tokens_per_s"])
    best_ours = max(our_arms, key=lambda a: our_arms[a]["tokens_per_s"])
    if "trl" in results and "sftflow-same-order" in results:
        trl, same = results["trl"], results["sftflow-same-order"]
        gap = abs(same["train_loss"] - trl["train_loss"]) / trl["train_loss"]
        print(f"same tokens, same order, same masks: mean loss ours {same['train_loss']:.4f} vs TRL "
              f"{trl['train_loss']:.4f} ({gap:.2%} apart; target <= 2%)")
    if "trl" in results and "sftflow" in results:
        print(f"defaults: ours {results['sftflow']['tokens_per_s']:.1f} vs TRL {results['trl']['tokens_per_s']:.1f} "
              f"tok/s = {results['sftflow']['tokens_per_s'] / results['trl']['tokens_per_s']:.2f}x (target >= 1.0)")
    o, t = our_arms[best_ours], trl_arms[best_trl]
    print(f"best: {best_ours} {o['tokens_per_s']:.1f} vs {best_trl} {t['tokens_per_s']:.1f} tok/s = "
          f"{o['tokens_per_s'] / t['tokens_per_s']:.2f}x (target >= 2.0); peak RSS {o['peak_rss_mb']:.0f} vs "
          f"{t['peak_rss_mb']:.0f} MB")
    print(json.dumps({"benchmark": "train_throughput", "ours": round(o["tokens_per_s"], 1),
                      "peer": round(t["tokens_per_s"], 1), "unit": "non-padding tokens/s",
                      "ratio": round(o["tokens_per_s"] / t["tokens_per_s"], 3), "target": 2.0}))


if __name__ == "__main__":
    main()
