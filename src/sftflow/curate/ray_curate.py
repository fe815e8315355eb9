"""``sftflow curate --engine ray``: the same steps as locally, run as Ray Data stages.

The step objects are the ones ``build_steps`` makes for a local run; only the way they
meet the records changes, and every result is the local one:

- a per-record ``Filter`` runs in ``map_batches`` tasks; one that loads a model (the
  length filter's tokenizer) in actors, one load per actor. A group with a rejected member is rejected whole, naming
  its first rejected member in input order, exactly as ``Filter.run`` does: the failed
  groups are gathered (one entry per failed group) and sent back to the workers.
- exact dedup is a groupby on a 128-bit digest of the normalised text; the first record
  of a group in input order is kept.
- near dedup (``ray_near_dedup``): signatures per batch with the local hashing, a shuffle
  by band key, exact-Jaccard confirmation, representatives by the local keep policy.
- semantic dedup: sentence embeddings computed by actors (one embedder load each), the
  neighbour search and clustering of the local step on the driver.
- any other step that needs the whole set (diversity, leakage) runs on the driver over
  the records that reached it, unchanged.

Rows carry ``order`` (the local reader's position), so what the driver finally writes is
the local run's kept/rejected files, line for line, with the same manifest and stats.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import EngineConfig, ray_session, shuffle_partitions, worker_count
from ..embed import embed_texts, example_text
from ..engine.ray_io import encode_examples, examples_of, gather_sorted, read_dataset
from ..io import Rejected, read_examples
from ..schema import Example
from .config import CurateConfig
from .dedup import ExactDedup, NearDedup, SemanticDedup, texts_of
from .filters import LengthFilter, words
from .minhash import normalized_key
from .ray_near_dedup import run_near
from .ray_rows import kept_of, rejected_row, rejects_of, verdict_rows
from .steps import Filter, Step, group_of, measurements
from .truncation import TruncationFilter, ends_closed


class FilterWorker:
    """One step copy per actor: measure, write the measurement, decide (as ``Filter.run``)."""

    def __init__(self, step: Filter):
        self.step = step

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        exs = examples_of(batch)
        verdicts, values, flagged = [], [], []
        for ex, m in zip(exs, self.step.measure_many(exs)):
            measurements(ex, self.step.name).update(m)
            decision = self.step.decide(ex, m)
            if decision is True:
                verdicts.append("")
                values.append(None)
                flagged.append(bool(m.get("flagged")))
                continue
            if decision is False or not isinstance(decision, tuple) or decision[0] is not False:
                raise TypeError(f"{type(self.step).__name__}.decide must return True or (False, reason), "
                                f"got {decision!r}")
            verdicts.append(decision[1])
            values.append(decision[2] if len(decision) > 2 else m)
            flagged.append(False)
        out = verdict_rows(batch, exs, verdicts, values)
        out["flagged"] = flagged
        return out


def _group_rejects(batch: dict[str, np.ndarray], failed: dict[Any, str], step: str) -> dict[str, Any]:
    exs = examples_of(batch)
    verdicts, values = [], []
    for ex in exs:
        g = group_of(ex)
        hit = g is not None and g in failed
        verdicts.append(f"group {g!r}: {failed[g]}" if hit else "")
        values.append({"group": g} if hit else None)
    out = verdict_rows(batch, exs, verdicts, values)
    out["flagged"] = batch["flagged"]
    return out


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


def run_filter(ray, ds, step: Filter, eng: EngineConfig):
    """(kept dataset, rejected in local order, flagged count) of a per-record filter.

    A filter that loads a model (the length filter's tokenizer) runs in actors, one load
    per actor; the others run as plain tasks, which start in Ray's warm worker pool.
    """
    if isinstance(step, TruncationFilter):
        prepare_truncation(ds, step, eng)
    if isinstance(step, LengthFilter):
        judged = ds.map_batches(FilterWorker, fn_constructor_args=(step,), batch_size=eng.batch_size,
                                batch_format="numpy", concurrency=worker_count(eng),
                                num_cpus=eng.cpus_per_actor)
    else:
        judged = ds.map_batches(_judge_batch, fn_kwargs={"step": step}, batch_size=eng.batch_size,
                                batch_format="numpy")
    judged = judged.materialize()
    marked = gather_sorted(judged.filter(lambda r: r["verdict"] != "" or r["flagged"]))
    direct = [rejected_row(r, step.name) for r in marked if r["verdict"]]
    flagged = {int(r["order"]) for r in marked if not r["verdict"]}
    failed: dict[Any, str] = {}
    for r in direct:
        g = group_of(Example.from_dict(r.record))
        if g is not None and g not in failed:
            failed[g] = f"member {r.record['id']} rejected: {r.reason}"
    passed = judged.filter(lambda r: r["verdict"] == "")
    if failed:
        passed = passed.map_batches(_group_rejects, fn_kwargs={"failed": failed, "step": step.name},
                                    batch_size=eng.batch_size, batch_format="numpy").materialize()
        by_group = gather_sorted(passed.filter(lambda r: r["verdict"] != ""))
        flagged -= {int(r["order"]) for r in by_group}
        direct += [rejected_row(r, step.name) for r in by_group]
    return passed.filter(lambda r: r["verdict"] == "").select_columns(["order", "rec"]), direct, len(flagged)


# ------------------------------------------------------------------ exact dedup

def _exact_keys(batch, field: str) -> dict[str, Any]:
    exs = examples_of(batch)
    keys = [hashlib.blake2b(normalized_key(t), digest_size=16).hexdigest() for t in texts_of(exs, field)]
    return {"order": batch["order"], "rec": batch["rec"], "key": keys, "id": [ex.id for ex in exs]}


def _exact_group(batch, field: str) -> dict[str, Any]:
    idx = np.argsort(batch["order"], kind="stable")
    first = batch["id"][idx[0]]
    verdicts = ["" if k == 0 else f"exact duplicate ({field}, normalised) of {first}" for k in range(len(idx))]
    values = ["null" if k == 0 else json.dumps({"duplicate_of": first}) for k in range(len(idx))]
    return {"order": batch["order"][idx], "rec": batch["rec"][idx], "verdict": verdicts, "value": values}


def run_exact(ray, ds, step: ExactDedup, eng: EngineConfig):
    field = step.p.field
    keyed = ds.map_batches(_exact_keys, fn_kwargs={"field": field}, batch_size=eng.batch_size,
                           batch_format="numpy")
    judged = (keyed.groupby("key", num_partitions=shuffle_partitions(ray))
              .map_groups(_exact_group, fn_kwargs={"field": field}, batch_format="numpy").materialize())
    return kept_of(judged), rejects_of(judged, step.name), 0


# ------------------------------------------------------------------ the rest, and the run

def run_on_driver(ray, ds, step: Step, eng: EngineConfig):
    """A whole-set step without a distributed form: the local step on the records that reached it."""
    rows = gather_sorted(ds)
    examples = [Example.from_dict(json.loads(r["rec"])) for r in rows]
    return _from_driver_result(ray, rows, examples, step.run(examples))


def _from_driver_result(ray, rows, examples: list[Example], res):
    kept_ids = {id(ex) for ex in res.kept}
    orders = [r["order"] for r, ex in zip(rows, examples) if id(ex) in kept_ids]
    kept = ray.data.from_items([{"order": o, "rec": t} for o, t in zip(orders, encode_examples(res.kept))])
    return kept, list(res.rejected), res.flagged


class EmbedWorker:
    """One sentence embedder per actor (on ``gpus_per_actor`` GPUs)."""

    def __init__(self, model: str | None, batch_size: int):
        self.model, self.batch_size = model, batch_size

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        emb = embed_texts([str(t) for t in batch["text"]], self.model, method="sbert", batch_size=self.batch_size)
        return {"i": batch["i"], "vector": [row.tobytes() for row in emb]}


def run_semantic(ray, ds, step: SemanticDedup, eng: EngineConfig):
    """Semantic dedup: sentence embeddings computed by actors, then the local step (its
    blockwise neighbour search and clustering) on the driver with those vectors. A tf-idf
    space is one fit over the whole set, so that method runs on the driver entirely."""
    p = step.p
    rows = gather_sorted(ds)
    examples = [Example.from_dict(json.loads(r["rec"])) for r in rows]
    if p.method != "sbert" or len(examples) < 2:
        return _from_driver_result(ray, rows, examples, step.run(examples))
    uniq = list(dict.fromkeys(example_text(ex, p.field) for ex in examples))
    got = (ray.data.from_items([{"i": k, "text": t} for k, t in enumerate(uniq)])
           .map_batches(EmbedWorker, fn_constructor_args=(p.model, p.batch_size), batch_size=eng.batch_size,
                        batch_format="numpy", concurrency=worker_count(eng), num_cpus=eng.cpus_per_actor,
                        num_gpus=eng.gpus_per_actor or None).take_all())
    vectors = {int(r["i"]): np.frombuffer(r["vector"], dtype=np.float32) for r in got}
    row_of = {t: vectors[k] for k, t in enumerate(uniq)}
    on_actors = SemanticDedup(p, embeddings=lambda texts, method, model: np.stack([row_of[t] for t in texts]))
    return _from_driver_result(ray, rows, examples, on_actors.run(examples))


def run_step(ray, ds, step: Step, eng: EngineConfig):
    if isinstance(step, Filter):
        return run_filter(ray, ds, step, eng)
    if isinstance(step, ExactDedup):
        return run_exact(ray, ds, step, eng)
    if isinstance(step, NearDedup):
        return run_near(ray, ds, step, eng)
    if isinstance(step, SemanticDedup):
        return run_semantic(ray, ds, step, eng)
    return run_on_driver(ray, ds, step, eng)


def curate_on_ray(inputs: list[str | Path], out: Path, cfg: CurateConfig, *, fmt: str = "auto",
                  model: str | None = None, tokenizer=None, progress: bool = True):
    """``curate()`` on Ray: reads shards in parallel, runs the steps, writes the local outputs."""
    from ..embed import EmbeddingCache
    from .pipeline import CurateResult, build_steps, write_outputs
    with ray_session(cfg.engine) as ray:
        ds, read_rejects = read_dataset(ray, inputs, fmt, duplicate_ids=cfg.duplicate_ids)
        evals = read_examples(cfg.leakage.eval).examples if "leakage" in cfg.steps and cfg.leakage.eval else None
        steps = build_steps(cfg, model=model, tokenizer=tokenizer, evals=evals,
                            embeddings=EmbeddingCache(out / "cache"))
        n_read = ds.count()
        rejected: list[Rejected] = []
        funnel = []
        current, n_current = ds, n_read
        for step in steps:
            t0 = time.perf_counter()
            kept, rej, flagged = run_step(ray, current, step, cfg.engine)
            n_kept = kept.count()
            if n_kept + len(rej) != n_current:
                raise RuntimeError(f"step {step.name} lost records: {n_current} in, {n_kept} kept + "
                                   f"{len(rej)} rejected")
            funnel.append({"step": step.name, "in": n_current, "out": n_kept, "rejected": len(rej),
                           "flagged": flagged, "seconds": round(time.perf_counter() - t0, 3)})
            if progress:
                print(f"  {step.name:<15} {n_current:>8} -> {n_kept:>8}  ({len(rej)} rejected)", flush=True)
            rejected.extend(rej)
            current, n_current = kept, n_kept
        kept_examples = [Example.from_dict(json.loads(r["rec"])) for r in gather_sorted(current)]
    result = CurateResult(kept=kept_examples, rejected=list(read_rejects) + rejected, funnel=funnel,
                          n_input=n_read + len(read_rejects))
    if read_rejects:
        result.funnel.insert(0, {"step": "read", "in": result.n_input, "out": n_read,
                                 "rejected": len(read_rejects), "flagged": 0, "seconds": 0.0})
    write_outputs(result, out, cfg, inputs=list(inputs) + list(cfg.leakage.eval if evals else []),
                  model=model, tokenizer=tokenizer, progress=progress)
    return result
