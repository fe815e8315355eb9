"""``sftflow curate --engine ray``: the same steps as locally, run as Ray Data stages.

The step objects are the ones ``build_steps`` makes for a local run; only the way they
meet the records changes, and every result is the local one:

- a per-record ``Filter`` runs in actors (``map_batches``; one copy of the step, so one
  tokenizer load, per actor). A group with a rejected member is rejected whole, naming
  its first rejected member in input order, exactly as ``Filter.run`` does: the failed
  groups are gathered (one entry per failed group) and sent back to the workers.
- exact dedup is a groupby on a 128-bit digest of the normalised text; the first record
  of a group in input order is kept.
- near dedup: shingles and MinHash signatures per batch with ``minhash``'s own hashing
  (bit-identical signatures), band keys as ``minhash`` computes them, a shuffle by band
  key that lists the candidate pairs of each bucket by the same rule as locally
  (``_band_pairs``), two joins that bring each pair its shingle sets, exact Jaccard, and
  the representatives chosen by the keep policy (``representative_clusters``) on the
  confirmed pairs, which is the only part gathered to the driver: its size is the number
  of near duplicates, not of records.
- any other step that needs the whole set (semantic dedup, diversity, leakage) runs on
  the driver over the records that reached it, unchanged.

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
import rensa

from ..engine import EngineConfig, ray_session, shuffle_partitions, worker_count
from ..engine.ray_io import encode_examples, examples_of, gather_sorted, read_dataset
from ..io import Rejected, read_examples
from ..schema import Example
from .config import CurateConfig
from .dedup import ExactDedup, NearDedup, _get_path, keep_order, texts_of
from .filters import LengthFilter, words
from .minhash import _pos_mult, choose_bands, jaccard_many, normalized_key, representative_clusters, shingle_hashes
from .steps import Filter, Step, group_of, measurements, reject
from .truncation import TruncationFilter, ends_closed

MAX_GROUP = 32          # as minhash._band_pairs: a bigger bucket gives a star plus a chain


def _verdict_rows(batch, exs: list[Example], verdicts: list[str], values: list[Any]) -> dict[str, Any]:
    return {"order": batch["order"], "rec": encode_examples(exs), "verdict": verdicts,
            "value": [json.dumps(v, default=str) for v in values]}


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
        out = _verdict_rows(batch, exs, verdicts, values)
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
    out = _verdict_rows(batch, exs, verdicts, values)
    out["flagged"] = batch["flagged"]
    return out


def _rejected(row: dict[str, Any], step: str) -> Rejected:
    return reject(Example.from_dict(json.loads(row["rec"])), step, row["verdict"], json.loads(row["value"]))


def _rejects_of(ds, step: str) -> list[Rejected]:
    return [_rejected(r, step) for r in gather_sorted(ds.filter(lambda r: r["verdict"] != ""))]


def _kept_of(ds):
    return ds.filter(lambda r: r["verdict"] == "").select_columns(["order", "rec"])


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
    direct = [_rejected(r, step.name) for r in marked if r["verdict"]]
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
        direct += [_rejected(r, step.name) for r in by_group]
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
    judged = keyed.groupby("key", num_partitions=shuffle_partitions(ray)).map_groups(_exact_group, fn_kwargs={"field": field},
                                             batch_format="numpy").materialize()
    return _kept_of(judged), _rejects_of(judged, step.name), 0


# ------------------------------------------------------------------ near dedup

def _signatures(batch, p, bands: int, rows: int) -> dict[str, Any]:
    """Per record: its shingle hashes, its band keys (as ``_band_pairs`` keys them) and
    what the keep policy reads. MinHash comes from rensa on the same flat shingle buffer
    as locally: a record's signature does not depend on the batch it is in."""
    exs = examples_of(batch)
    flat, off = shingle_hashes(texts_of(exs, p.field), p.ngram)
    lens = np.diff(off)
    keys = np.zeros((len(exs), bands), dtype=np.uint64)
    nonempty = np.flatnonzero(lens > 0)
    if len(nonempty):
        sub_off = np.zeros(len(nonempty) + 1, dtype=np.int64)
        np.cumsum(lens[nonempty], out=sub_off[1:])
        take = np.concatenate([np.arange(off[i], off[i + 1]) for i in nonempty])
        mat = rensa.RMinHash.digest_matrix_from_flat_token_hashes(flat[take], sub_off.astype(np.uint64),
                                                                  bands * rows, p.seed)
        sig = np.array(mat.to_rows(), dtype=np.uint32).astype(np.uint64)
        mult = _pos_mult(rows)
        with np.errstate(over="ignore"):
            for b in range(bands):
                keys[nonempty, b] = (sig[:, b * rows:(b + 1) * rows] * mult).sum(axis=1, dtype=np.uint64)
    score = [_get_path(ex.metadata, p.score_key) if p.score_key else None for ex in exs]
    return {"order": batch["order"], "id": [ex.id for ex in exs],
            "shingles": [flat[off[i]:off[i + 1]].tobytes() for i in range(len(exs))],
            "bandkeys": [keys[i].tobytes() for i in range(len(exs))], "nonempty": lens > 0,
            "response_len": [len(ex.response) for ex in exs],
            "score": [json.dumps(s) for s in score]}


def _band_rows(batch, bands: int, partitions: int) -> dict[str, Any]:
    """One row per (record, band) of a non-empty record: the shuffle's input."""
    keep = np.flatnonzero(batch["nonempty"])
    keys = np.frombuffer(b"".join(batch["bandkeys"][i] for i in keep), dtype=np.uint64).reshape(-1, bands)
    band = np.tile(np.arange(bands, dtype=np.int64), len(keep))
    key = keys.reshape(-1).view(np.int64)
    # The shuffle partition mixes band and key, so one band's buckets spread over the cluster.
    with np.errstate(over="ignore"):
        part = ((keys.reshape(-1) ^ (band.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
                % np.uint64(partitions)).astype(np.int64)
    return {"part": part, "band": band, "key": key, "order": np.repeat(batch["order"][keep], bands)}


def _bucket_pairs(batch) -> dict[str, Any]:
    """Candidate pairs of every (band, key) bucket in one shuffle partition, by
    ``_band_pairs``' rule: all pairs up to MAX_GROUP members, else a star plus a chain."""
    order = np.lexsort((batch["order"], batch["key"], batch["band"]))
    band, key, pos = batch["band"][order], batch["key"][order], batch["order"][order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(order))
    out: list[np.ndarray] = []
    for s, e in zip(starts[ends - starts >= 2], ends[ends - starts >= 2]):
        members = pos[s:e]                              # already by position
        if len(members) <= MAX_GROUP:
            i, j = np.triu_indices(len(members), k=1)
            out.append(np.stack([members[i], members[j]], axis=1))
        else:
            out.append(np.stack([np.full(len(members) - 1, members[0]), members[1:]], axis=1))
            out.append(np.stack([members[:-1], members[1:]], axis=1))
    pairs = np.unique(np.concatenate(out), axis=0) if out else np.zeros((0, 2), dtype=np.int64)
    return {"a": pairs[:, 0], "b": pairs[:, 1]}


def _pair_rows(batch, side: str, partitions: int) -> dict[str, Any]:
    """Candidate pairs as rows of a join on ``side`` ("a" or "b"): keyed by that record."""
    n = len(batch["a"])
    key = batch[side].astype(np.int64)
    return {"part": key % partitions, "key": key, "kind": np.zeros(n, np.int8), "a": batch["a"],
            "b": batch["b"], "sh_a": batch["sh_a"] if "sh_a" in batch else [b""] * n, "sh": [b""] * n}


def _set_rows(batch, partitions: int) -> dict[str, Any]:
    """Each record's shingle set as a row of the same joins (kind 1)."""
    n = len(batch["order"])
    key = batch["order"].astype(np.int64)
    return {"part": key % partitions, "key": key, "kind": np.ones(n, np.int8), "a": np.full(n, -1),
            "b": np.full(n, -1), "sh_a": [b""] * n, "sh": batch["shingles"]}


def _join_a(batch) -> dict[str, Any]:
    """One partition of the join on a: each distinct candidate pair gets a's shingles."""
    kind = batch["kind"]
    sets = dict(zip(batch["key"][kind == 1].tolist(), batch["sh"][kind == 1]))
    pairs = np.unique(np.stack([batch["a"][kind == 0], batch["b"][kind == 0]], axis=1), axis=0)
    return {"a": pairs[:, 0], "b": pairs[:, 1], "sh_a": [sets[int(a)] for a in pairs[:, 0]]}


def _join_b_and_confirm(batch, threshold: float) -> dict[str, Any]:
    """One partition of the join on b: exact Jaccard of each pair (``jaccard_many``)."""
    kind = batch["kind"]
    sets = dict(zip(batch["key"][kind == 1].tolist(), batch["sh"][kind == 1]))
    pick = np.flatnonzero(kind == 0)
    a, b = batch["a"][pick], batch["b"][pick]
    arrays = [np.frombuffer(x, dtype=np.uint64) for i in pick
              for x in (batch["sh_a"][i], sets[int(batch["b"][i])])]
    off = np.zeros(len(arrays) + 1, dtype=np.int64)
    np.cumsum([len(x) for x in arrays], out=off[1:])
    flat = np.concatenate(arrays) if arrays else np.zeros(0, dtype=np.uint64)
    jac = jaccard_many(flat, off, np.arange(len(arrays), dtype=np.int64).reshape(-1, 2))
    ok = jac >= threshold
    return {"a": a[ok], "b": b[ok], "jaccard": jac[ok]}


def confirmed_pairs(ds_sig, bands: int, p, partitions: int):
    """(a, b, jaccard) arrays of the confirmed near-duplicate pairs, by record ``order``.

    Three shuffles, each a groupby on a hash partition with numpy inside (one call per
    partition, not per key): band buckets -> candidate pairs; the pairs joined with the
    shingle sets of a, then of b, where the exact Jaccard is taken. The joins are written
    as groupbys so they run on the sort shuffle's tasks (``Dataset.join`` starts
    aggregator actors and needs polars).
    """
    bucketed = ds_sig.map_batches(_band_rows, fn_kwargs={"bands": bands, "partitions": partitions},
                                  batch_format="numpy")
    cand = bucketed.groupby("part", num_partitions=partitions).map_groups(_bucket_pairs, batch_format="numpy")
    sets = ds_sig.map_batches(_set_rows, fn_kwargs={"partitions": partitions}, batch_format="numpy")
    with_a = (cand.map_batches(_pair_rows, fn_kwargs={"side": "a", "partitions": partitions},
                               batch_format="numpy").union(sets)
              .groupby("part", num_partitions=partitions).map_groups(_join_a, batch_format="numpy"))
    conf = (with_a.map_batches(_pair_rows, fn_kwargs={"side": "b", "partitions": partitions},
                               batch_format="numpy").union(sets)
            .groupby("part", num_partitions=partitions)
            .map_groups(_join_b_and_confirm, fn_kwargs={"threshold": p.threshold}, batch_format="numpy"))
    rows = conf.take_all()
    a = np.array([r["a"] for r in rows], dtype=np.int64)
    b = np.array([r["b"] for r in rows], dtype=np.int64)
    j = np.array([r["jaccard"] for r in rows], dtype=np.float64)
    return a, b, j


def _nested(key: str | None, value: Any) -> dict[str, Any]:
    if not key:
        return {}
    node: Any = value
    for part in reversed(key.split(".")):
        node = {part: node}
    return node


def near_plan(ds_sig, a, b, jac, p) -> dict[int, dict[str, Any]]:
    """Per linked record (by order): its cluster, and for a removed one the record kept and
    the similarity, chosen as ``resolve_clusters`` chooses them."""
    linked = np.unique(np.concatenate([a, b]))
    wanted = set(linked.tolist())
    info = {int(r["order"]): r for r in ds_sig.select_columns(["order", "id", "response_len", "score"])
            .filter(lambda r: int(r["order"]) in wanted).take_all()}
    local = {int(o): k for k, o in enumerate(linked)}      # index order == position order
    pairs = np.array([[local[int(x)], local[int(y)]] for x, y in zip(a, b)], dtype=np.int64).reshape(-1, 2)
    sims = {(local[int(x)], local[int(y)]): float(v) for x, y, v in zip(a, b, jac)}
    # keep_order reads a record's response length or score: stand-ins carry just those.
    stand_ins = [Example(messages=[{"role": "user", "content": ""},
                                   {"role": "assistant", "content": "x" * int(info[int(o)]["response_len"])}],
                         metadata=_nested(p.score_key, json.loads(info[int(o)]["score"])), id=info[int(o)]["id"])
                 for o in linked]
    order = keep_order(list(range(len(linked))), stand_ins, p.keep, p.score_key)
    rep = representative_clusters(len(linked), pairs, order)
    sizes = np.bincount(rep, minlength=len(linked))
    plan = {}
    for k, o in enumerate(linked):
        r = int(rep[k])
        entry = {"cluster": stand_ins[r].id, "cluster_size": int(sizes[r])}
        if r != k:
            entry["duplicate_of"] = stand_ins[r].id
            entry["similarity"] = round(sims[(min(k, r), max(k, r))], 4)
        plan[int(o)] = entry
    return plan


def _apply_plan(batch, plan: dict[int, dict[str, Any]], step: str, describe: str, policy: str) -> dict[str, Any]:
    exs = examples_of(batch)
    verdicts, values = [], []
    for o, ex in zip(batch["order"], exs):
        entry = plan.get(int(o))
        if entry is not None:
            m = measurements(ex, step)
            m["cluster"], m["cluster_size"] = entry["cluster"], entry["cluster_size"]
        if entry is None or "duplicate_of" not in entry:
            verdicts.append("")
            values.append(None)
            continue
        verdicts.append(f"{describe} of {entry['duplicate_of']} (similarity {entry['similarity']:.3f}; "
                        f"kept by policy '{policy}')")
        values.append({"duplicate_of": entry["duplicate_of"], "similarity": entry["similarity"]})
    return _verdict_rows(batch, exs, verdicts, values)


def run_near(ray, ds, step: NearDedup, eng: EngineConfig):
    p = step.p
    if ds.count() < 2:
        return ds, [], 0
    bands, rows = (p.bands, p.rows) if p.bands else choose_bands(p.threshold, p.num_perm)
    partitions = shuffle_partitions(ray)
    sig = ds.map_batches(_signatures, fn_kwargs={"p": p, "bands": bands, "rows": rows},
                         batch_size=eng.batch_size, batch_format="numpy").materialize()
    a, b, jac = confirmed_pairs(sig, bands, p, partitions)
    plan = near_plan(sig, a, b, jac, p) if len(a) else {}
    describe = f"near duplicate (word {p.ngram}-gram Jaccard >= {p.threshold})"
    judged = ds.map_batches(_apply_plan, fn_kwargs={"plan": plan, "step": step.name,
                                                    "describe": describe, "policy": p.keep},
                            batch_size=eng.batch_size, batch_format="numpy").materialize()
    return _kept_of(judged), _rejects_of(judged, step.name), 0


# ------------------------------------------------------------------ the rest, and the run

def run_on_driver(ray, ds, step: Step, eng: EngineConfig):
    """A whole-set step without a distributed form: the local step on the records that reached it."""
    rows = gather_sorted(ds)
    examples = [Example.from_dict(json.loads(r["rec"])) for r in rows]
    res = step.run(examples)
    kept_ids = {id(ex) for ex in res.kept}
    orders = [r["order"] for r, ex in zip(rows, examples) if id(ex) in kept_ids]
    kept = ray.data.from_items([{"order": o, "rec": t} for o, t in zip(orders, encode_examples(res.kept))])
    return kept, list(res.rejected), res.flagged


def run_step(ray, ds, step: Step, eng: EngineConfig):
    if isinstance(step, Filter):
        return run_filter(ray, ds, step, eng)
    if isinstance(step, ExactDedup):
        return run_exact(ray, ds, step, eng)
    if isinstance(step, NearDedup):
        return run_near(ray, ds, step, eng)
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
