"""Multiple-choice log-likelihood scoring: sftflow vs lm-evaluation-harness, same model, same data.

Scores the shipped general-knowledge task (241 questions x 4 choices, zero-shot) with
SmolLM2-135M-Instruct, first with ``sftflow.evaluate.choice.score_items`` and then with
lm-evaluation-harness's ``HFLM.loglikelihood`` on the identical (context, continuation)
pairs, and reports wall time, the largest log-likelihood difference, and acc / acc_norm
/ acc_bytes from both (computed from each side's log-likelihoods with the harness's
rules). Needs the bench extra:  pip install -e '.[bench]'

    OMP_NUM_THREADS=2 HF_HUB_OFFLINE=1 python benchmarks/choice_scoring.py [--limit N] [--batch-size 16]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def accuracies(items, lls):
    hits = {"acc": 0, "acc_norm": 0, "acc_bytes": 0}
    pos = 0
    for it in items:
        ll = np.array(lls[pos:pos + len(it.choices)])
        pos += len(it.choices)
        hits["acc"] += int(np.argmax(ll) == it.answer)
        hits["acc_norm"] += int(np.argmax(ll / np.array([len(c) for c in it.choices])) == it.answer)
        hits["acc_bytes"] += int(np.argmax(ll / np.array([len(c.encode()) for c in it.choices])) == it.answer)
    return {k: v / len(items) for k, v in hits.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch-size", type=int, default=16)
    a = ap.parse_args()

    import torch
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    from sftflow.evaluate.choice import build_context, load_task, score_items
    from sftflow.models import load_model, load_tokenizer, resolve_model

    path = resolve_model("smollm2-135m-instruct")
    model, tok = load_model(path), load_tokenizer(path)
    model.eval()
    _, items = load_task("general_knowledge")
    items = items[: a.limit] if a.limit else items
    pairs = [(build_context(items, i, 0, 0), " " + c) for i, it in enumerate(items) for c in it.choices]
    print(f"model {path}\n{len(items)} questions, {len(pairs)} (context, choice) pairs, "
          f"batch {a.batch_size}, torch threads {torch.get_num_threads()}")

    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=a.batch_size, device="cpu")
    reqs = [Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i) for i, p in enumerate(pairs)]
    # Warm both paths up first (kernel selection, allocator), so neither pays it in the timing.
    score_items(model, tok, items[:4], batch_size=a.batch_size)
    lm.loglikelihood(reqs[:16], disable_tqdm=True)

    t = time.perf_counter()
    ours = score_items(model, tok, items, batch_size=a.batch_size)
    t_ours = time.perf_counter() - t
    ours_ll = [x for r in ours["items"] for x in r["loglik"]]

    t = time.perf_counter()
    peer_ll = [ll for ll, _ in lm.loglikelihood(reqs, disable_tqdm=True)]
    t_peer = time.perf_counter() - t

    diff = float(np.max(np.abs(np.array(ours_ll) - np.array(peer_ll))))
    acc_ours, acc_peer = accuracies(items, ours_ll), accuracies(items, peer_ll)
    print(f"sftflow score_items      : {t_ours:7.2f} s  ({len(pairs) / t_ours:6.1f} pairs/s)  {acc_ours}")
    print(f"lm-eval HFLM.loglikelihood: {t_peer:7.2f} s  ({len(pairs) / t_peer:6.1f} pairs/s)  {acc_peer}")
    print(f"max |loglik difference| = {diff:.2e}; sftflow's own acc/acc_norm/acc_bytes: "
          f"{ours['acc']:.4f}/{ours['acc_norm']:.4f}/{ours['acc_bytes']:.4f}")
    print(json.dumps({"benchmark": "choice_scoring_general_knowledge_smollm2", "ours": round(t_ours, 3),
                      "peer": round(t_peer, 3), "unit": "s", "ratio": round(t_ours / t_peer, 3),
                      "target": 1.0}))


if __name__ == "__main__":
    main()
