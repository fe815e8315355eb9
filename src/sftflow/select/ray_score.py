"""``sftflow score --engine ray``: model scores computed by a pool of Ray actors.

Each actor holds one ``ModelScorer`` (one model load per actor, on ``gpus_per_actor``
GPUs and ``cpus_per_actor`` CPUs) and scores the batches Ray Data hands it with the local
code, so a score is the same number as locally (within float noise from padding: the
batches differ). Records are sorted by length before they are cut into batches, so a
batch pads to about its own length instead of the longest record's.

Every actor opens the score cache (``score.cache``; on a cluster, a path every node
sees) and consults it per record before computing, and commits every chunk: a rerun, or
a run after a killed one, computes only what is not cached. Embeddings are computed on
the driver as locally (``score_examples`` does that part).
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import numpy as np

from ..engine import ray_session, worker_count
from ..schema import Example
from .cache import ScoreCache
from .config import ScoreConfig
from .scorers import MODEL_SCORES, ModelScorer

COUNTS = ("flagged", "ifd_above_1", "multiple_choice")


class ScoreWorker:
    """One model per actor; scores a batch of records and returns their ``scores``."""

    def __init__(self, cfg: ScoreConfig, model: str | None, kinds: list[str]):
        self.cfg, self.kinds = cfg, kinds
        self.scorer = ModelScorer(cfg.model or model, max_length=cfg.max_length, batch_size=cfg.batch_size,
                                  precision=cfg.precision, template=cfg.template, cache=None,
                                  chunk_size=cfg.chunk_size, progress=False, device=cfg.device)
        self._cache_thread: int | None = None

    def _open_cache(self) -> None:
        # Ray Data calls a batch on another thread than the constructor's, and an SQLite
        # connection belongs to the thread that opened it.
        if self.cfg.use_cache and self._cache_thread != threading.get_ident():
            self.scorer.cache = ScoreCache(self.cfg.cache)
            self._cache_thread = threading.get_ident()

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        self._open_cache()
        exs = [Example.from_dict(json.loads(t)) for t in batch["rec"]]
        before = self.scorer.computed
        counts = self.scorer.score(exs, self.kinds)
        n = len(exs)
        out: dict[str, Any] = {"pos": batch["pos"],
                               "scores": [json.dumps(ex.metadata.get("scores", {})) for ex in exs],
                               "computed": [self.scorer.computed - before] + [0] * (n - 1),
                               "identity": [json.dumps(self.scorer.identity.to_dict())] * n}
        for k in COUNTS:
            out[k] = [counts.get(k, 0)] + [0] * (n - 1)
        return out


def _length(ex: Example) -> int:
    return sum(len(m.get("content") or "") for m in ex.messages)


def score_on_ray(examples: list[Example], cfg: ScoreConfig, *, model: str | None = None) -> dict[str, Any]:
    """The model scores of ``score_examples`` for ``examples``, computed on Ray; same report keys."""
    kinds = [k for k in cfg.scores if k in MODEL_SCORES]
    report: dict[str, Any] = {}
    if not kinds or not examples:
        return report
    eng = cfg.engine
    t = time.perf_counter()
    by_length = sorted(range(len(examples)), key=lambda i: (_length(examples[i]), i))
    rows = [{"pos": i, "rec": json.dumps(examples[i].to_dict())} for i in by_length]
    with ray_session(eng) as ray:
        actors = worker_count(eng)
        ds = ray.data.from_items(rows, override_num_blocks=max(1, min(len(rows) // eng.batch_size + 1, 8 * actors)))
        scored = ds.map_batches(ScoreWorker, fn_constructor_args=(cfg, model, kinds), batch_size=eng.batch_size,
                                batch_format="numpy", concurrency=actors, num_cpus=eng.cpus_per_actor,
                                num_gpus=eng.gpus_per_actor or None).take_all()
    totals = dict.fromkeys(COUNTS, 0)
    computed = 0
    for r in scored:
        examples[int(r["pos"])].metadata["scores"] = json.loads(r["scores"])
        computed += int(r["computed"])
        for k in COUNTS:
            totals[k] += int(r[k])
    if len(scored) != len(examples) or len({int(r["pos"]) for r in scored}) != len(examples):
        raise RuntimeError(f"scoring on Ray returned {len(scored)} rows for {len(examples)} records")
    report.update(totals)
    report["model"] = json.loads(scored[0]["identity"])
    report["losses_computed"] = computed
    report["score_s"] = round(time.perf_counter() - t, 2)
    report["engine"] = {"kind": "ray", "actors": actors}
    return report
