"""The curate steps as Ray Data stages (see ``ray_curate`` for the plan).

Each ``run_*`` takes the dataset of ``{order, rec}`` rows that reached the step and
returns (kept rows, rejected rows ``{order, line, sub}``, flagged count); the rejects stay
datasets, written by the workers at the end.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from typing import Any

import numpy as np

from ..embed import EmbeddingCache, example_text
from ..engine import EngineConfig, shuffle_partitions, worker_count
from ..engine.ray_io import encode, encode_examples, examples_of
from ..schema import Example
from .dedup import ExactDedup, SemanticDedup, texts_of
from .end_of_turn import EndOfTurnFilter
from .filters import LengthFilter, words
from .minhash import normalized_key
from .ray_rows import kept_of, reject_line, rejects_of, rows_dataset, verdict_rows
from .steps import Filter, Step, group_of, measurements
from .truncation import TruncationFilter, ends_closed

RECORDS_PER_PARTITION = 20_000     # what one reduce task of a record shuffle holds


def record_partitions(ray, n: int) -> int:
    return max(shuffle_partitions(ray), -(-n // RECORDS_PER_PARTITION))


def gather_sorted(ds) -> list[dict[str, Any]]:
    """Rows of ``ds`` on this process in ``order`` (for the steps that need the whole set)."""
    return sorted(ds.take_all(), key=lambda r: r["order"])


class FilterWorker:
    """One step copy per actor: measure, write the measurement, decide (as ``Filter.run``)."""

    def __init__(self, step: Filter):
        self.step = step

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        exs = examples_of(batch)
        name = self.step.name
        lines, flagged, groups, whys = [], [], [], []
        for ex, m in zip(exs, self.step.measure_many(exs)):
            measurements(ex, name).update(m)
            decision = self.step.decide(ex, m)
            if decision is True:
                lines.append("")
                flagged.append(bool(m.get("flagged")))
                groups.append("")
                whys.append("")
                continue
            if decision is False or not isinstance(decision, tuple) or decision[0] is not False:
                raise TypeError(f"{type(self.step).__name__}.decide must return True or (False, reason), "
                                f"got {decision!r}")
            lines.append(reject_line(ex, name, decision[1], decision[2] if len(decision) > 2 else m))
            g = group_of(ex)
            groups.append("" if g is None else json.dumps(g))
            whys.append(f"member {ex.id} rejected: {decision[1]}")
            flagged.append(False)
        out = verdict_rows(batch, exs, lines)
        out.update(flagged=flagged, group=groups, why=whys)
        return out


def _group_rejects(batch: dict[str, np.ndarray], failed: dict[Any, str], step: str) -> dict[str, Any]:
    exs = examples_of(batch)
    lines = []
    for ex in exs:
        g = group_of(ex)
        hit = g is not None and g in failed
        lines.append(reject_line(ex, step, f"group {g!r}: {failed[g]}", {"group": g}) if hit else "")
    return {"order": batch["order"], "rec": batch["rec"], "line": lines, "flagged": batch["flagged"]}


def _truncation_counts(batch, min_words: int) -> dict[str, Any]:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for ex in examples_of(batch):
        if len(words(ex.response)) >= min_words:
            c = counts[str(ex.metadata.get("_source", ""))]
            c[0] += ends_closed(ex.response)
            c[1] += 1
    return {"source": list(counts), "closed": [c[0] for c in counts.values()], "n": [c[1] for c in counts.values()]}


def prepare_truncation(ds, step: TruncationFilter, eng: EngineConfig) -> None:
    """The convention rule's per-source shares over the whole set, as ``TruncationFilter.run``."""
    part = ds.map_batches(_truncation_counts, fn_kwargs={"min_words": step.p.min_words},
                          batch_size=eng.batch_size, batch_format="numpy")
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for r in part.take_all():
        counts[r["source"]][0] += int(r["closed"])
        counts[r["source"]][1] += int(r["n"])
    # Same package: the filter's own cache of shares, filled as its run() fills it.
    step._closed_share = {s: k / n for s, (k, n) in counts.items() if n >= step.p.convention_min_records}


def _judge_batch(batch: dict[str, np.ndarray], step: Filter) -> dict[str, Any]:
    return FilterWorker(step)(batch)


def run_filter(ray, ds, step: Filter, eng: EngineConfig, n: int):
    """(kept, rejected, flagged count) of a per-record filter.

    A filter that loads a model (the length filter's tokenizer, end_of_turn's scoring model,
    with ``gpus_per_actor`` GPUs) runs in actors, one load per actor; the others run as plain
    tasks, which start in Ray's warm worker pool. What comes to the driver is one (group,
    reason) per rejected member of a group.
    """
    from ray.data.expressions import col
    if isinstance(step, TruncationFilter):
        prepare_truncation(ds, step, eng)
    if isinstance(step, (LengthFilter, EndOfTurnFilter)):
        gpus = {"num_gpus": eng.gpus_per_actor} if isinstance(step, EndOfTurnFilter) and eng.gpus_per_actor else {}
        judged = ds.map_batches(FilterWorker, fn_constructor_args=(step,), batch_size=eng.batch_size,
                                batch_format="numpy", concurrency=worker_count(eng),
                                num_cpus=eng.cpus_per_actor, **gpus)
    else:
        judged = ds.map_batches(_judge_batch, fn_kwargs={"step": step}, batch_size=eng.batch_size,
                                batch_format="numpy")
    judged = judged.materialize()
    members = (judged.filter(expr=(col("line") != "") & (col("group") != ""))
               .select_columns(["order", "group", "why"]).take_all())
    failed: dict[Any, str] = {}
    for r in sorted(members, key=lambda r: r["order"]):
        failed.setdefault(json.loads(r["group"]), str(r["why"]))
    rejected = rejects_of(judged, 0)
    passed = judged.filter(expr=col("line") == "").select_columns(["order", "rec", "flagged"])
    if failed:
        passed = passed.map_batches(_group_rejects, fn_kwargs={"failed": failed, "step": step.name},
                                    batch_size=eng.batch_size, batch_format="numpy").materialize()
        rejected = rejected.union(rejects_of(passed, 1))
        passed = passed.filter(expr=col("line") == "")
    flagged = int(passed.sum("flagged") or 0) if n else 0
    return passed.select_columns(["order", "rec"]), rejected, flagged


# ------------------------------------------------------------------ exact dedup

def _exact_keys(batch, field: str) -> dict[str, Any]:
    exs = examples_of(batch)
    keys = [hashlib.blake2b(normalized_key(t), digest_size=16).hexdigest() for t in texts_of(exs, field)]
    return {"order": batch["order"], "rec": batch["rec"], "key": keys, "id": [ex.id for ex in exs]}


def _exact_group(batch, field: str, step: str) -> dict[str, Any]:
    idx = np.argsort(batch["order"], kind="stable")
    first = batch["id"][idx[0]]
    reason = f"exact duplicate ({field}, normalised) of {first}"
    lines = [""] + [reject_line(Example.from_dict(json.loads(batch["rec"][i])), step, reason,
                                {"duplicate_of": first}) for i in idx[1:]]
    return {"order": batch["order"][idx], "rec": batch["rec"][idx], "line": lines}


def run_exact(ray, ds, step: ExactDedup, eng: EngineConfig, n: int):
    field = step.p.field
    keyed = ds.map_batches(_exact_keys, fn_kwargs={"field": field}, batch_size=eng.batch_size,
                           batch_format="numpy")
    judged = (keyed.groupby("key", num_partitions=record_partitions(ray, n))
              .map_groups(_exact_group, fn_kwargs={"field": field, "step": step.name}, batch_format="numpy")
              .materialize())
    return kept_of(judged), rejects_of(judged, 0), 0


# ------------------------------------------------------------------ steps on the driver

def run_on_driver(ray, ds, step: Step, eng: EngineConfig, n: int):
    """A whole-set step without a distributed form: the local step on the records that reached it."""
    rows = gather_sorted(ds)
    examples = [Example.from_dict(json.loads(r["rec"])) for r in rows]
    return from_driver_result(ray, rows, examples, step.run(examples))


def from_driver_result(ray, rows, examples: list[Example], res):
    kept_ids = {id(ex) for ex in res.kept}
    orders = [r["order"] for r, ex in zip(rows, examples) if id(ex) in kept_ids]
    kept = rows_dataset(ray, [{"order": o, "rec": t} for o, t in zip(orders, encode_examples(res.kept))],
                        {"order": 0, "rec": ""})
    # The step's own reject order is the local one: its index is the sort key.
    rejected = rows_dataset(ray, [{"order": k, "line": encode(r.to_dict()), "sub": 0}
                                  for k, r in enumerate(res.rejected)], {"order": 0, "line": "", "sub": 0})
    return kept, rejected, res.flagged


class EmbedWorker:
    """One sentence embedder per actor (on ``gpus_per_actor`` GPUs), through the run's
    embedding cache: a text embedded before, by this run or an earlier one, is read back."""

    def __init__(self, model: str | None, batch_size: int, cache: str):
        self.model, self.batch_size, self.cache_path = model, batch_size, cache
        self._cache: EmbeddingCache | None = None
        self._thread: int | None = None

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        # Ray calls a batch on another thread than the constructor's; SQLite connections are per thread.
        if self._thread != threading.get_ident():
            self._cache, self._thread = EmbeddingCache(self.cache_path), threading.get_ident()
        before = self._cache.computed
        emb = self._cache.embed([str(t) for t in batch["text"]], method="sbert", model=self.model,
                                batch_size=self.batch_size, progress=False)
        n = len(batch["i"])
        return {"i": batch["i"], "vector": [row.tobytes() for row in emb],
                "computed": [self._cache.computed - before] + [0] * (n - 1)}


def run_semantic(ray, ds, step: SemanticDedup, eng: EngineConfig, n: int, *, cache: str | None = None,
                 notes: dict[str, Any] | None = None):
    """Semantic dedup: sentence embeddings computed by actors through the embedding cache,
    then the local step (its blockwise neighbour search and clustering) on the driver with
    those vectors. A tf-idf space is one fit over the whole set, so that method runs on the
    driver entirely."""
    p = step.p
    rows = gather_sorted(ds)
    examples = [Example.from_dict(json.loads(r["rec"])) for r in rows]
    if p.method != "sbert" or len(examples) < 2:
        return from_driver_result(ray, rows, examples, step.run(examples))
    uniq = list(dict.fromkeys(example_text(ex, p.field) for ex in examples))
    got = (ray.data.from_items([{"i": k, "text": t} for k, t in enumerate(uniq)])
           .map_batches(EmbedWorker, fn_constructor_args=(p.model, p.batch_size, cache), batch_size=eng.batch_size,
                        batch_format="numpy", concurrency=worker_count(eng), num_cpus=eng.cpus_per_actor,
                        num_gpus=eng.gpus_per_actor or None).take_all())
    vectors = {int(r["i"]): np.frombuffer(r["vector"], dtype=np.float32) for r in got}
    if notes is not None:
        notes["embedded"] = notes.get("embedded", 0) + sum(int(r["computed"]) for r in got)
    row_of = {t: vectors[k] for k, t in enumerate(uniq)}
    on_actors = SemanticDedup(p, embeddings=lambda texts, method, model: np.stack([row_of[t] for t in texts]))
    return from_driver_result(ray, rows, examples, on_actors.run(examples))
