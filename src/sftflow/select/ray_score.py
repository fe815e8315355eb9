"""``sftflow score --engine ray``: model scores computed by a pool of Ray actors.

Each actor holds one ``ModelScorer`` (one model load per actor, on ``gpus_per_actor``
GPUs and ``cpus_per_actor`` CPUs) and scores with the local code, so a score is the same
number as locally (within float noise from padding: the batches differ). Records are
sorted by length before they are cut into shards of ``engine.batch_size``, so a batch pads
to about its own length instead of the longest record's.

Two layers make a rerun cheap:

- the score cache (``score.cache``; on a cluster, a path every node sees): every actor
  consults it per record before computing and commits every chunk, so a rerun computes
  only what is not cached;
- shard checkpoints: an actor that finishes a shard writes its scores to
  ``<cache>.ray-parts/<key>.json`` (atomically), the key a hash of the scoring settings
  and the shard's record ids. A run after a killed one finds them and sends only the
  other shards to the actors (none at all when every shard is there: no model is
  loaded); this holds with ``use_cache: false`` too. A run that finishes removes its
  checkpoints: from then on the cache answers.

Embeddings are computed on the driver as locally (``score_examples`` does that part).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import ray_session, worker_count
from ..io.atomic import atomic_write_json
from ..schema import Example
from .cache import ScoreCache, default_cache_path
from .config import ScoreConfig
from .scorers import MODEL_SCORES, ModelScorer

COUNTS = ("flagged", "ifd_above_1", "multiple_choice")


class ScoreWorker:
    """One model per actor; scores one shard per call and writes its checkpoint."""

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

    def score_shard(self, recs: list[str]) -> dict[str, Any]:
        self._open_cache()
        exs = [Example.from_dict(json.loads(t)) for t in recs]
        before = self.scorer.computed
        counts = self.scorer.score(exs, self.kinds)
        return {"scores": [ex.metadata.get("scores", {}) for ex in exs], "computed": self.scorer.computed - before,
                "counts": {k: counts.get(k, 0) for k in COUNTS}, "identity": self.scorer.identity.to_dict()}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        paths = []
        for path, recs in zip(batch["path"], batch["recs"]):
            atomic_write_json(path, self.score_shard(json.loads(recs)), indent=None)
            paths.append(path)
        return {"path": paths}


def _length(ex: Example) -> int:
    return sum(len(m.get("content") or "") for m in ex.messages)


def parts_dir(cfg: ScoreConfig) -> Path:
    cache = Path(cfg.cache) if cfg.cache else default_cache_path()
    return cache.with_name(cache.name + ".ray-parts")


def shard_plan(examples: list[Example], cfg: ScoreConfig, model: str | None, kinds: list[str]):
    """[(checkpoint path, positions)] of the length-sorted shards."""
    by_length = sorted(range(len(examples)), key=lambda i: (_length(examples[i]), i))
    settings = json.dumps({"model": cfg.model or model, "kinds": kinds, "max_length": cfg.max_length,
                           "template": cfg.template, "precision": cfg.precision}, sort_keys=True, default=str)
    folder, size = parts_dir(cfg), cfg.engine.batch_size
    plan = []
    for s in range(0, len(by_length), size):
        pos = by_length[s:s + size]
        h = hashlib.sha256(settings.encode())
        for i in pos:
            h.update(b"\0" + examples[i].id.encode())
        plan.append((folder / f"{h.hexdigest()[:32]}.json", pos))
    return plan


def score_on_ray(examples: list[Example], cfg: ScoreConfig, *, model: str | None = None,
                 worker: type = ScoreWorker) -> dict[str, Any]:
    """The model scores of ``score_examples`` for ``examples``, computed on Ray; same report keys."""
    kinds = [k for k in cfg.scores if k in MODEL_SCORES]
    report: dict[str, Any] = {}
    if not kinds or not examples:
        return report
    eng = cfg.engine
    t = time.perf_counter()
    plan = shard_plan(examples, cfg, model, kinds)
    actors = 0
    todo = [(k, p, pos) for k, (p, pos) in enumerate(plan) if not p.exists()]
    if todo:
        plan[0][0].parent.mkdir(parents=True, exist_ok=True)
        items = [{"shard": k, "path": str(p), "recs": json.dumps([json.dumps(examples[i].to_dict()) for i in pos])}
                 for k, p, pos in todo]
        with ray_session(eng) as ray:
            actors = min(worker_count(eng), len(items))
            ds = ray.data.from_items(items, override_num_blocks=len(items))
            ds.map_batches(worker, fn_constructor_args=(cfg, model, kinds), batch_size=1,
                           batch_format="numpy", concurrency=actors, num_cpus=eng.cpus_per_actor,
                           num_gpus=eng.gpus_per_actor or None).materialize()
    totals, computed, identity = dict.fromkeys(COUNTS, 0), 0, None
    fresh = {k for k, _, _ in todo}
    for k, (path, pos) in enumerate(plan):
        part = json.loads(path.read_text())
        if len(part["scores"]) != len(pos):
            raise RuntimeError(f"{path}: {len(part['scores'])} scores for a shard of {len(pos)} records")
        for i, s in zip(pos, part["scores"]):
            examples[i].metadata["scores"] = s
        identity = part["identity"]
        # A resumed shard's work was done by the run that wrote it.
        computed += part["computed"] if k in fresh else 0
        for c in COUNTS:
            totals[c] += part["counts"][c]
    for path, _ in plan:
        path.unlink(missing_ok=True)
    report.update(totals)
    report["model"] = identity
    report["losses_computed"] = computed
    report["score_s"] = round(time.perf_counter() - t, 2)
    report["engine"] = {"kind": "ray", "actors": actors, "shards": len(plan), "resumed_shards": len(plan) - len(todo)}
    return report
