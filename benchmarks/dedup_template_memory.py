"""Peak memory of semantic dedup and one-pass clustering on template-heavy data.

Template-heavy pools (the same boilerplate prompt thousands of times) are the worst
case for pair-based dedup: N identical records are N(N-1)/2 similar pairs, so 30,000
of them would be 450 million pairs (7 GB as int64) if every pair were kept. The pool
here is ``--identical`` copies of one record plus ``--distinct`` records with random
embeddings (the embedder is replaced by a fixed function: the point is the pair
search and the clustering, not the model). Each step runs in a fresh process and the
child's peak resident set size is read from the kernel (``ru_maxrss``); the same run
on 2 records gives the fixed cost, and what the data adds is the difference.

    python benchmarks/dedup_template_memory.py                         # 3,000 + 3,000, seconds
    python benchmarks/dedup_template_memory.py --identical 30000 --distinct 30000 --cap-mb 1024

The last line is JSON: ours = MB the data adds to peak RSS for semantic dedup, peer =
the cap (``--cap-mb``), ratio = ours / peer, target 1.0 (at or under the cap).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys

CHILD = r"""
import resource, sys, time
import numpy as np
from sftflow.curate.dedup import SemanticDedup
from sftflow.curate.config import SemanticDedupParams
from sftflow.diversity import one_pass_cluster
from sftflow.schema import Example
step, n_same, n_diff = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
dim = 384
same = np.ones((1, dim), dtype=np.float32) / np.sqrt(dim)
diff = rng.standard_normal((n_diff, dim)).astype(np.float32)
diff /= np.linalg.norm(diff, axis=1, keepdims=True)
emb = np.concatenate([np.repeat(same, n_same, axis=0), diff])
t0 = time.perf_counter()
if step == "semantic":
    examples = [Example.single("Fill in the template: NAME", "ok")] * n_same + \
               [Example.single(f"distinct prompt {i}", "ok") for i in range(n_diff)]
    res = SemanticDedup(SemanticDedupParams(threshold=0.9), embeddings=lambda t, **k: emb).run(examples)
    assert len(res.kept) + len(res.rejected) == len(examples)
    kept = len(res.kept)
else:
    ids, _ = one_pass_cluster(emb, 0.9)
    kept = int(ids.max()) + 1
print(kept, time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def peak(step: str, n_same: int, n_diff: int) -> tuple[int, float, float]:
    out = subprocess.run([sys.executable, "-c", CHILD, step, str(n_same), str(n_diff)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{step} failed (rc {out.returncode}): {out.stderr[-2000:]}")
    kept, secs, rss_kb = out.stdout.split()
    return int(kept), float(secs), int(rss_kb) / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--identical", type=int, default=3000)
    ap.add_argument("--distinct", type=int, default=3000)
    ap.add_argument("--cap-mb", type=float, default=1024.0, help="the memory the data may add")
    ap.add_argument("--steps", default="semantic,one_pass",
                    help="comma-separated; one_pass is O(rows x clusters) in time (blockwise: one matrix product per 256 rows)")
    args = ap.parse_args()
    steps = args.steps.split(",")
    base = {s: peak(s, 1, 1)[2] for s in steps}
    rows = {s: None for s in ("semantic", "one_pass")}
    for s in steps:
        kept, secs, rss = peak(s, args.identical, args.distinct)
        rows[s] = {"kept": kept, "seconds": round(secs, 2), "added_mb": round(rss - base[s], 1)}
        print(f"{s}: kept {kept} of {args.identical + args.distinct} in {secs:.1f} s, "
              f"+{rss - base[s]:.0f} MB over the fixed {base[s]:.0f} MB", file=sys.stderr)
    if rows["semantic"] is None:
        raise SystemExit("the JSON figure is semantic dedup's: include it in --steps")
    ours = rows["semantic"]["added_mb"]
    print(json.dumps({"benchmark": f"semantic_dedup_peak_mb_{args.identical}_identical_{args.distinct}_distinct",
                      "ours": ours, "peer": args.cap_mb, "unit": "MB", "ratio": round(ours / args.cap_mb, 3),
                      "target": 1.0, "one_pass": rows["one_pass"], "semantic": rows["semantic"]}))


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    main()
