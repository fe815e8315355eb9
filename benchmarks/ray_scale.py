"""The data stages on Ray vs in one process, on this machine: near dedup and scoring.

    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_scale.py [--records 20000] [--cpus 2]
    HF_HUB_OFFLINE=1 .venv/bin/python benchmarks/ray_scale.py --records 1000000   # the 1M pool

* near dedup: ``sftflow curate --steps near_dedup`` on a synthetic pool (one in ten
  records a near copy of another) written as JSONL shards of 10,000 records, local engine vs a Ray
  cluster of ``--cpus`` CPUs started here; reading and writing included. The kept and
  rejected files are checked equal before any number is printed.
* peak memory per worker: the largest own memory (unique pages outside Ray's object
  store; see ``own_and_store``) of any Ray worker process, sampled every 0.2 s, on a pool
  of a quarter of the records and on the whole pool: a worker holds a batch and a shuffle
  partition (partitions grow with the input), so the figure should stay about level. The
  driver's own growth is sampled the same way.
* scoring: ppl + IFD with a tiny random 2-layer model (so the run takes seconds, and the
  figure is the engine's overhead, not the model's speed), local vs 2 Ray actors.

On 2 cores Ray can at best match one process (the same arithmetic plus scheduling and
serialisation); the point of the engine is more machines. The last line is the JSON
summary: ours = near-dedup records/s on Ray, peer = the same locally.
"""

from __future__ import annotations

import argparse
import gc
import itertools
import json
import os
import random
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import psutil  # noqa: E402

from sftflow.curate.config import CurateConfig  # noqa: E402
from sftflow.curate.pipeline import curate  # noqa: E402
from sftflow.engine import EngineConfig, start_or_join  # noqa: E402
from sftflow.io import write_examples  # noqa: E402
from sftflow.schema import Example  # noqa: E402

VOCAB = [f"w{i}" for i in range(5000)]


def iter_pool(n: int, seed: int = 0) -> Iterator[Example]:
    rng = random.Random(seed)
    made = 0
    while made < n:
        words = [rng.choice(VOCAB) for _ in range(40)]
        yield Example.single(" ".join(words) + "?", "Answer: " + " ".join(rng.choices(VOCAB, k=30)))
        made += 1
        if rng.random() < 0.1 and made < n:          # a near copy: two words changed
            w = list(words)
            w[rng.randrange(40)] = rng.choice(VOCAB)
            w[rng.randrange(40)] = rng.choice(VOCAB)
            yield Example.single(" ".join(w) + "?", "Answer: " + " ".join(rng.choices(VOCAB, k=30)))
            made += 1


def synthetic_pool(n: int, seed: int = 0) -> list[Example]:
    return list(iter_pool(n, seed))


def write_shards(n: int, folder: Path, size: int = 10_000) -> list[Path]:
    """The first ``n`` records of the pool as shards of ``size`` records, as a sharded data
    set is laid out (more records, more shards); written as generated, so this process
    never holds the pool and its memory figure is the run's."""
    folder.mkdir(parents=True, exist_ok=True)
    paths: list[Path] = []
    pool = iter_pool(n)
    while len(paths) * size < n:
        paths.append(folder / f"part-{len(paths):05d}.jsonl")
        write_examples(paths[-1], itertools.islice(pool, size))
    return paths


def own_and_store(proc: psutil.Process) -> tuple[int, int]:
    """(own, store) bytes of a process: its unique pages outside Ray's object store, and
    the object-store pages (``/dev/shm/plasma*``) it alone has mapped. psutil's USS counts
    both, and the second is Ray's shared store (bounded by ``object_store_memory``,
    spilled to disk past it), not memory the process holds."""
    own = store = 0
    for m in proc.memory_maps(grouped=True):
        private = m.private_clean + m.private_dirty
        if "plasma" in m.path:
            store += private
        else:
            own += private
    return own, store


class WorkerMemory:
    """Peak memory of Ray worker processes (named ``ray::...``) and of this process (the
    driver, above what it held at the start), sampled in a thread, split by
    ``own_and_store``: what the process holds itself, and the object-store pages it alone
    touched (a worker that creates or reads a block maps the store's shared memory)."""

    def __init__(self):
        gc.collect()
        self._me = psutil.Process()
        self._base = own_and_store(self._me)[0]
        self.peak = self.peak_store = self.driver = self.driver_store = 0
        self.by_task: dict[str, int] = {}     # the process title Ray gives a busy worker -> peak own
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for p in psutil.process_iter(["cmdline"]):
                cmd = " ".join(p.info["cmdline"] or [])
                if cmd.startswith("ray::"):
                    try:
                        own, store = own_and_store(p)
                    except (psutil.NoSuchProcess, psutil.AccessDenied, FileNotFoundError):
                        continue
                    self.peak, self.peak_store = max(self.peak, own), max(self.peak_store, store)
                    title = cmd.split()[0][:60]
                    self.by_task[title] = max(self.by_task.get(title, 0), own)
            own, store = own_and_store(self._me)
            self.driver, self.driver_store = max(self.driver, own - self._base), max(self.driver_store, store)
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def near_dedup(paths, out: Path, engine: str, batch: int) -> tuple[float, int]:
    cfg = CurateConfig(steps=["near_dedup"], stats=False, plots=False,
                       engine=EngineConfig(kind=engine, batch_size=batch))
    t0 = time.perf_counter()
    res = curate(paths, out, cfg, progress=False)
    return time.perf_counter() - t0, len(res.rejected)


def same_files(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in ("kept.jsonl", "rejected.jsonl"))


def scoring(tmp: Path, n: int) -> dict[str, float]:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from sftflow.models import load_tokenizer, resolve_model
    from sftflow.select.config import ScoreConfig, SelectConfig
    from sftflow.select.pipeline import score_file
    tok = load_tokenizer(resolve_model("smollm2-135m-instruct"))
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=128,
                                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                         max_position_embeddings=1024, tie_word_embeddings=True))
    mdir = tmp / "tiny"
    model.save_pretrained(mdir)
    tok.save_pretrained(mdir)
    src = tmp / "score.jsonl"
    write_examples(src, synthetic_pool(n, seed=1))
    out = {}
    for engine in ("local", "ray"):
        cfg = SelectConfig(score=ScoreConfig(model=str(mdir), precision="fp32", max_length=256, use_cache=False,
                                             engine=EngineConfig(kind=engine, actors=2, batch_size=32)))
        t0 = time.perf_counter()
        score_file([src], tmp / f"scored-{engine}.jsonl", cfg, progress=False)
        out[engine] = n / (time.perf_counter() - t0)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=20000)
    ap.add_argument("--cpus", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--score-records", type=int, default=256, help="0 skips the scoring part")
    args = ap.parse_args()
    import ray
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        quarter = write_shards(args.records // 4, tmp / "quarter")
        whole = write_shards(args.records, tmp / "whole")
        local_s, removed = near_dedup(whole, tmp / "local", "local", args.batch_size)
        start_or_join(EngineConfig(kind="ray", num_cpus=args.cpus))     # the cluster a user's run starts
        try:
            near_dedup(quarter, tmp / "warm", "ray", args.batch_size)      # worker start-up, not counted
            with WorkerMemory() as mem_quarter:
                near_dedup(quarter, tmp / "ray-quarter", "ray", args.batch_size)
            with WorkerMemory() as mem_whole:
                ray_s, _ = near_dedup(whole, tmp / "ray", "ray", args.batch_size)
            scores = scoring(tmp, args.score_records) if args.score_records else None
        finally:
            ray.shutdown()
        if not same_files(tmp / "local", tmp / "ray"):
            sys.exit("Ray and local near dedup wrote different files: no figures")
    local_rps, ray_rps = args.records / local_s, args.records / ray_s
    print(f"near dedup, {args.records} records ({removed} removed), {args.cpus} Ray CPUs on a "
          f"{os.cpu_count()}-core machine; Ray and local outputs identical")
    print(f"  local: {local_rps:>10,.0f} records/s ({local_s:.1f} s)")
    print(f"  ray:   {ray_rps:>10,.0f} records/s ({ray_s:.1f} s)   ratio ray/local {ray_rps / local_rps:.2f}")
    mb = 2 ** 20
    print(f"  peak worker memory (own, outside the object store): {mem_quarter.peak / mb:,.0f} MB at "
          f"{args.records // 4} records, {mem_whole.peak / mb:,.0f} MB at {args.records}")
    print(f"  peak object-store pages one worker alone mapped: {mem_quarter.peak_store / mb:,.0f} MB, "
          f"{mem_whole.peak_store / mb:,.0f} MB")
    print(f"  driver growth (own): {mem_quarter.driver / mb:,.0f} MB at {args.records // 4} records, "
          f"{mem_whole.driver / mb:,.0f} MB at {args.records}; object-store pages it mapped: "
          f"{mem_quarter.driver_store / mb:,.0f} MB, {mem_whole.driver_store / mb:,.0f} MB")
    top = sorted(mem_whole.by_task.items(), key=lambda kv: -kv[1])[:4]
    print("  largest at the whole pool: " + ", ".join(f"{t} {v / 2**20:,.0f} MB" for t, v in top))
    if scores:
        print(f"scoring (tiny 2-layer model, ppl+ifd), {args.score_records} records: local "
              f"{scores['local']:.1f} records/s, ray {scores['ray']:.1f} records/s, "
              f"ratio {scores['ray'] / scores['local']:.2f}")
    print(json.dumps({"benchmark": "ray_near_dedup_scale", "ours": round(ray_rps, 1), "peer": round(local_rps, 1),
                      "unit": "records/s", "ratio": round(ray_rps / local_rps, 3), "target": 0.5}))


if __name__ == "__main__":
    main()
