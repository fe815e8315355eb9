"""Perplexity + IFD scoring throughput: sftflow's scorer vs a plain per-example transformers loop.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/score_throughput.py [--records 300]

Both compute the same numbers for the same real records (T0 sample + Self-Instruct
seed tasks from ../shared/data) with SmolLM2-135M-Instruct on this machine's CPU:
for each record the response loss given its instruction and the response loss alone
(IFD's two terms), with the training masks.

* peer: for each record and each of the two conversations, one fp32 forward of the
  full sequence, logits at every position, cross-entropy over the supervised tokens.
* ours: ``ModelScorer`` (``sftflow.nll``): length-sorted batches, the start all
  records share computed once, LM head only at scored positions, bf16 only where the CPU
  has native bf16 (``precision=auto``); no cache (a cached rerun is reported apart).

Throughput = tokens of all sequences / wall time, the same token count for both. The
script also prints the matmul FLOPs of both: the levers an exact fp32 scorer has (the
shared start, the LM head only where a token is scored) bound its speed-up at equal
matmul efficiency, whatever the batching. The
machine's forward-pass limit is measured in the same run: matmul GFLOPS (fp32, bf16)
/ (2 x parameters) tokens per second. Accuracy: per-record relative error of our
losses vs the peer's fp32, and the Spearman correlation of the two IFD rankings.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def load_records(n: int, seed: int = 0):
    from sftflow import Example
    from sftflow.io import load_examples
    t0_files = sorted((SHARED / "t0-sample").glob("*.jsonl"))
    seeds_file = SHARED / "self-instruct" / "seed_tasks.jsonl"
    if not t0_files or not seeds_file.exists():
        sys.exit(f"needs ../shared/data (T0 sample and Self-Instruct seeds) beside the repo: {SHARED}")
    rng = random.Random(seed)
    seeds = []
    for line in seeds_file.read_text().splitlines():
        task = json.loads(line)
        inst = task["instances"][0]
        prompt = task["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
        seeds.append(Example.single(prompt, inst["output"]))
    n_seed = n // 4
    t0 = [e for f in t0_files for e in load_examples(f)]
    return rng.sample(t0, n - n_seed) + rng.sample(seeds, n_seed)


def matmul_gflops(dtype, size: int = 1024, seconds: float = 2.0) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    a @ b
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        n += 1
    return 2 * size ** 3 * n / (time.perf_counter() - t0) / 1e9


def flop_floor(model, tok, records) -> dict[str, float]:
    """Matmul FLOPs of the plain loop, and the least an exact scorer needs for the same numbers.

    Per token the decoder costs 2 x (non-embedding parameters) and the LM head
    2 x vocab x hidden. The peer pays both at every position. The floor pays the
    decoder once for the prefix all conversations of a pass share, then for every
    other token; and the head only where a supervised token is predicted.
    """
    from sftflow.nll import _shared_prefix
    from sftflow.select.scorers import alone_messages
    from sftflow.chat import encode
    head_w, emb_w = model.get_output_embeddings().weight, model.get_input_embeddings().weight
    head = head_w.numel()
    body = sum(p.numel() for p in model.parameters() if p is not head_w and p is not emb_w)
    peer = floor = scored = 0
    for pick in (lambda ex: ex.messages, alone_messages):
        encs = [encode(pick(ex), tok, train_on="last") for ex in records]
        g = _shared_prefix(encs)
        for e in encs:
            n, s = len(e.input_ids), sum(1 for x in e.labels[1:] if x != -100)
            peer += n * 2 * (body + head)
            floor += (n - g) * 2 * body + s * 2 * head
            scored += s
        floor += g * 2 * body
    return {"peer": peer, "floor": floor, "scored": scored}


def plain_loop(model, tok, records):
    """The peer: one example at a time, full logits, fp32."""
    from sftflow.select.scorers import alone_messages
    from sftflow.chat import encode
    out = []
    with torch.inference_mode():
        for ex in records:
            pair = []
            for msgs in (ex.messages, alone_messages(ex)):
                enc = encode(msgs, tok, train_on="last")
                ids, labels = torch.tensor([enc.input_ids]), torch.tensor([enc.labels])
                logits = model(input_ids=ids).logits
                lsum = F.cross_entropy(logits[0, :-1], labels[0, 1:], reduction="sum")
                pair.append(float(lsum) / int((labels[0, 1:] != -100).sum()))
            out.append(pair)
    return out


def int8_check(model, tok, records, ref, tokens: int, batch_size: int) -> None:
    """Speed and error of dynamic int8 (per-tensor activations) for the same numbers."""
    import warnings

    from scipy.stats import spearmanr

    from sftflow.nll import LossOptions, example_losses
    from sftflow.select.scorers import alone_messages
    qm = copy.deepcopy(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        qm.model = torch.ao.quantization.quantize_dynamic(qm.model, {torch.nn.Linear}, dtype=torch.qint8)
    convs = [ex.messages for ex in records] + [alone_messages(ex) for ex in records]
    example_losses(qm, tok, convs[:4], LossOptions(batch_size=batch_size))
    t = time.perf_counter()
    out = example_losses(qm, tok, convs, LossOptions(batch_size=batch_size))
    dt = time.perf_counter() - t
    n = len(records)
    got = np.asarray([o.mean for o in out])
    want = np.asarray([g for g, _ in ref] + [a for _, a in ref])
    rel = np.abs(got - want) / np.abs(want)
    rho = float(spearmanr(got[:n] / got[n:], want[:n] / want[n:]).statistic)
    print(f"int8 dynamic (not used): {dt:7.1f} s  {tokens / dt:7.1f} tok/s; relative error max {rel.max():.2e}, "
          f"mean {rel.mean():.2e}; IFD Spearman {rho:.4f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--records", type=int, default=300)
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    ap.add_argument("--int8-check", action="store_true",
                    help="also score with torch's dynamic int8 Linear layers (VNNI) and print their error: "
                         "the one lever left on a CPU without native bf16")
    args = ap.parse_args()

    from scipy.stats import spearmanr

    from sftflow.models import load_model, load_tokenizer, resolve_model
    from sftflow.select.cache import ScoreCache
    from sftflow.select.scorers import ModelScorer, alone_messages
    from sftflow.chat import encode

    records = load_records(args.records)
    name = resolve_model("smollm2-135m-instruct")
    tok = load_tokenizer(name)
    model = load_model(name, dtype=torch.float32).eval()
    params = sum(p.numel() for p in model.parameters())
    tokens = sum(len(encode(m, tok, train_on="last").input_ids)
                 for ex in records for m in (ex.messages, alone_messages(ex)))
    print(f"{len(records)} records, {tokens} tokens (instruction+response and response alone), "
          f"{params / 1e6:.1f}M parameters, torch threads {torch.get_num_threads()}")

    floor = flop_floor(model, tok, records)
    print(f"matmul FLOPs: plain loop {floor['peer'] / 1e12:.2f} TFLOP; what remains after our exact fp32 levers "
          f"(shared system prompt once, LM head only at the {floor['scored']} scored positions, no "
          f"padding) {floor['floor'] / 1e12:.2f} TFLOP -> at most {floor['peer'] / floor['floor']:.2f}x "
          f"at equal matmul efficiency")

    g32, g16 = matmul_gflops(torch.float32), matmul_gflops(torch.bfloat16)
    lim32, lim16 = g32 * 1e9 / (2 * params), g16 * 1e9 / (2 * params)
    print(f"matmul: fp32 {g32:.1f} GFLOPS, bf16 {g16:.1f} GFLOPS -> forward-pass limit "
          f"fp32 {lim32:.0f} tok/s, bf16 {lim16:.0f} tok/s")

    warm = records[:4]
    plain_loop(model, tok, warm)
    t = time.perf_counter()
    ref = plain_loop(model, tok, records)
    t_peer = time.perf_counter() - t
    peer_tps = tokens / t_peer
    print(f"peer  (plain fp32 per-example loop): {t_peer:7.1f} s  {peer_tps:7.1f} tok/s  "
          f"({peer_tps / lim32:.0%} of the fp32 limit)")

    def timed_score(recs, cache=None):
        """Score copies of ``recs`` with a fresh scorer; (records, seconds, scorer)."""
        out = copy.deepcopy(recs)
        sc = ModelScorer(name, model_obj=model, tokenizer=tok, max_length=None, batch_size=args.batch_size,
                         precision=args.precision, cache=cache)
        t = time.perf_counter()
        sc.score(out, ["ppl", "ifd"])
        return out, time.perf_counter() - t, sc

    with tempfile.TemporaryDirectory() as tmp:
        timed_score(warm)
        ours_recs, t_ours, s = timed_score(records, ScoreCache(Path(tmp) / "c.sqlite"))
        prec = s.identity.precision
        ours_tps = tokens / t_ours
        lim = lim16 if prec == "bf16" else lim32
        print(f"ours  (sftflow scorer, {prec}):         {t_ours:7.1f} s  {ours_tps:7.1f} tok/s  "
              f"({ours_tps / lim:.0%} of the {prec} limit, counting the same tokens)")
        _, t_cached, s2 = timed_score(records, ScoreCache(Path(tmp) / "c.sqlite"))
        print(f"ours, rerun from the score cache:      {t_cached:7.2f} s  ({s2.computed} losses computed)")

    rel = []
    ifd_ours, ifd_ref = [], []
    for ex, (g, a) in zip(ours_recs, ref):
        sc = ex.metadata["scores"]
        rel.append(abs(sc["response_loss"] - g) / abs(g))
        rel.append(abs(sc["response_loss_alone"] - a) / abs(a))
        ifd_ours.append(sc["ifd"])
        ifd_ref.append(g / a)
    rel = np.asarray(rel)
    rho = float(spearmanr(ifd_ours, ifd_ref).statistic)
    print(f"per-record relative error of losses vs fp32 peer: max {rel.max():.2e}, mean {rel.mean():.2e} "
          f"(target <= 1%)")
    print(f"IFD ranking Spearman vs fp32 peer: {rho:.6f} (target >= 0.99)")
    if args.int8_check:
        int8_check(model, tok, records, ref, tokens, args.batch_size)
    ratio = ours_tps / peer_tps
    print(f"speed-up: {ratio:.2f}x (target >= 2x)")
    print(json.dumps({"benchmark": "score_throughput", "ours": round(ours_tps, 1), "peer": round(peer_tps, 1),
                      "unit": "tokens/s", "ratio": round(ratio, 3), "target": 2.0}))
    if not math.isfinite(ratio):
        sys.exit(1)


if __name__ == "__main__":
    main()
