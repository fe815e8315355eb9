"""Greedy answer throughput: sftflow's row-dropping loop vs ``model.generate``, same prompts, same tokens.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/greedy_generate.py [--prompts 40] [--max-new-tokens 128]

The prompts are the demo's test questions (``sftflow/data/demo/test.jsonl``) under the
embedded SmolLM2-135M-Instruct, the demo's evaluation job on this machine.

* peer: ``model.generate`` (greedy, left-padded, length-sorted batches of ``--peer-batch``,
  8 as sftflow's backend used before), the usual way to batch answers with transformers.
* ours: ``sftflow.backends.greedy_decode.greedy_generate`` in batches of ``--batch``
  (the demo evaluates its 40 test prompts in one): a finished row leaves the batch.

Throughput = generated tokens (up to and including each row's stop token) / wall time;
both sides must produce the same tokens, which the script checks row by row.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

from sftflow.backends.greedy_decode import left_pad  # noqa: E402


def _prompts(tok, n: int) -> list[list[int]]:
    from sftflow.pipeline.demo import demo_test_file
    rows = [json.loads(x) for x in demo_test_file().read_text().splitlines() if x.strip()][:n]
    out = []
    for r in rows:
        ids = tok.apply_chat_template(r["messages"][:-1], add_generation_prompt=True, tokenize=True)
        out.append(list(ids["input_ids"] if hasattr(ids, "keys") else ids))
    return out


def _peer(lm, rows, pad, stops, max_new, batch):
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = [None] * len(rows)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        ids, attn, _ = left_pad([rows[i] for i in idx], pad)
        width = ids.shape[1]
        with torch.no_grad():
            g = lm.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new, do_sample=False,
                            pad_token_id=pad, eos_token_id=stops, temperature=None, top_p=None, top_k=None)
        for r, i in enumerate(idx):
            new = g[r, width:].tolist()
            hit = [j for j, t in enumerate(new) if t in stops]
            out[i] = new[: hit[0] + 1] if hit else new
    return out


def _ours(lm, rows, pad, stops, max_new, batch):
    from sftflow.backends.greedy_decode import greedy_generate
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    out = [None] * len(rows)
    for s in range(0, len(order), batch):
        idx = order[s:s + batch]
        for i, new in zip(idx, greedy_generate(lm, [rows[i] for i in idx], pad_id=pad, stop_ids=stops,
                                               max_new_tokens=max_new)):
            out[i] = new
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prompts", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--batch", type=int, default=40)
    ap.add_argument("--peer-batch", type=int, default=8)
    args = ap.parse_args()

    from sftflow.backends.transformers_backend import TransformersBackend
    from sftflow.models import resolve_model
    backend = TransformersBackend(resolve_model("smollm2-135m-instruct"))
    lm, tok = backend.lm, backend.tok
    rows = _prompts(tok, args.prompts)
    pad, stops = tok.pad_token_id, backend.stop_ids
    print(f"{len(rows)} prompts ({sum(map(len, rows))} prompt tokens), max_new_tokens {args.max_new_tokens}, "
          f"torch threads {torch.get_num_threads()}")
    _ours(lm, rows[:2], pad, stops, 4, 2)                     # warm-up
    t = time.perf_counter()
    ref = _peer(lm, rows, pad, stops, args.max_new_tokens, args.peer_batch)
    t_peer = time.perf_counter() - t
    t = time.perf_counter()
    got = _ours(lm, rows, pad, stops, args.max_new_tokens, args.batch)
    t_ours = time.perf_counter() - t
    same = sum(a == b for a, b in zip(got, ref))
    tokens = sum(map(len, ref))
    print(f"peer  generate, batches of {args.peer_batch}: {t_peer:6.1f} s  {tokens / t_peer:6.1f} tok/s")
    print(f"ours  row-dropping loop, batches of {args.batch}: {t_ours:6.1f} s  {tokens / t_ours:6.1f} tok/s")
    print(f"same tokens: {same} / {len(rows)} rows ({tokens} tokens)")
    if same != len(rows):
        raise SystemExit("the two paths generated different tokens")
    print(json.dumps({"benchmark": "greedy_generate", "ours": round(tokens / t_ours, 1),
                      "peer": round(tokens / t_peer, 1), "unit": "tokens/s",
                      "ratio": round(t_peer / t_ours, 3), "target": 1.5}))


if __name__ == "__main__":
    main()
