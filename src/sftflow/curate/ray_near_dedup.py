"""Near dedup on Ray with the local step's results (see ``ray_curate`` for the plan).

Per batch: shingles and MinHash signatures with ``minhash``'s own hashing (a record's
signature does not depend on its batch, so they are bit-identical to a local run's) and
the band keys ``_band_pairs`` computes. Then three shuffles, each a groupby on a hash
partition with numpy inside: band buckets -> candidate pairs (the local rule for big
buckets); the pairs joined with the shingle sets of a, then of b, where the exact
Jaccard is taken. The confirmed pairs - as many as there are near duplicates, not
records - come to the driver, where ``representative_clusters`` picks the records kept
by the keep policy, exactly as ``resolve_clusters`` does.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import rensa

from ..engine import EngineConfig, shuffle_partitions
from ..engine.ray_io import encode, examples_of
from ..schema import Example
from .clusters import representative_clusters
from .dedup import NearDedup, _get_path, policy_order, texts_of
from .minhash import _pos_mult, bucket_pairs, choose_bands, jaccard_many, shingle_hashes
from .ray_rows import kept_of, no_rejects, reject_line, rejects_of
from .steps import measurements

MAX_GROUP = 32          # as minhash._band_pairs: a bigger bucket gives a star plus a chain
BAND_ROWS_PER_PARTITION = 250_000       # ~8 MB of band rows (~12k records) per shuffle partition
# Records per block entering a shuffle (at least; a larger --engine-batch-size wins): a sort
# shuffle makes (blocks x partitions) pieces, each an object the driver tracks, so the blocks
# are larger than a filter's batch (16k records: ~10 MB of band rows, ~5 MB of shingle sets).
SHUFFLE_INPUT_RECORDS = 16_384


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
    ``bucket_pairs``, the local rule: all pairs up to MAX_GROUP members, else a star plus a chain."""
    order = np.lexsort((batch["order"], batch["key"], batch["band"]))
    band, key, pos = batch["band"][order], batch["key"][order], batch["order"][order]
    new = np.ones(len(order), dtype=bool)
    new[1:] = (band[1:] != band[:-1]) | (key[1:] != key[:-1])
    starts = np.flatnonzero(new)
    ends = np.append(starts[1:], len(order))
    out: list[np.ndarray] = []
    for s, e in zip(starts[ends - starts >= 2], ends[ends - starts >= 2]):
        out.extend(bucket_pairs(pos[s:e], MAX_GROUP))    # pos is already sorted by position
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


def confirmed_pairs(ds_sig, bands: int, p, partitions: int, block: int = SHUFFLE_INPUT_RECORDS):
    """(a, b, jaccard) arrays of the confirmed near-duplicate pairs, by record ``order``.

    Three shuffles, each a groupby on a hash partition with numpy inside (one call per
    partition, not per key): band buckets -> candidate pairs; the pairs joined with the
    shingle sets of a, then of b, where the exact Jaccard is taken. The joins are written
    as groupbys so they run on the sort shuffle's tasks (``Dataset.join`` starts
    aggregator actors and needs polars).
    """
    bucketed = ds_sig.map_batches(_band_rows, fn_kwargs={"bands": bands, "partitions": partitions},
                                  batch_size=block, batch_format="numpy")
    cand = bucketed.groupby("part", num_partitions=partitions).map_groups(_bucket_pairs, batch_format="numpy")
    sets = ds_sig.map_batches(_set_rows, fn_kwargs={"partitions": partitions},
                              batch_size=block, batch_format="numpy")
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


def _linked_only(batch, linked: np.ndarray) -> dict[str, Any]:
    """What the keep policy reads, for the records in a confirmed pair only."""
    pick = np.isin(batch["order"], linked)
    return {k: batch[k][pick] for k in ("order", "id", "response_len", "score")}


def near_plan(ds_sig, a, b, jac, p) -> dict[str, np.ndarray]:
    """Per linked record (``order``, sorted): the position of its cluster's kept record in
    ``order`` (``rep``), the cluster's size and the similarity to the kept record, chosen as
    ``resolve_clusters`` chooses them; ``id`` holds the linked records' ids.

    Arrays, not a dict per record: the plan goes to every task of the last pass, and on a
    1M-record pool with 10% near copies a dict per linked record held hundreds of MB in the
    driver and in each worker."""
    linked = np.unique(np.concatenate([a, b]))
    cols: dict[str, list] = {k: [] for k in ("order", "id", "response_len", "score")}
    for batch in ds_sig.map_batches(_linked_only, fn_kwargs={"linked": linked},
                                    batch_format="numpy").iter_batches(batch_format="numpy"):
        for k, parts in cols.items():
            parts.append(batch[k])
    got = {k: np.concatenate(v) if v else np.zeros(0) for k, v in cols.items()}
    by_order = np.argsort(got["order"], kind="stable")
    if len(by_order) != len(linked) or not np.array_equal(got["order"][by_order], linked):
        raise RuntimeError(f"near dedup on Ray: {len(by_order)} rows came back for {len(linked)} linked records")
    ids = got["id"][by_order].astype(str)
    response_len = got["response_len"][by_order]
    score = got["score"][by_order]
    # index order == position order: a record's index in ``linked`` is its place in the run
    x, y = np.searchsorted(linked, a), np.searchsorted(linked, b)
    lo, hi = np.minimum(x, y), np.maximum(x, y)
    pair_key = lo * len(linked) + hi
    key_order = np.argsort(pair_key, kind="stable")
    members = list(range(len(linked)))
    order = policy_order(members, p.keep, lambda i: int(response_len[i]),
                         lambda i: json.loads(str(score[i])),      # already read at score_key by _signatures
                         lambda i: str(ids[i]), p.score_key)
    rep = representative_clusters(len(linked), np.stack([x, y], axis=1).astype(np.int64).reshape(-1, 2), order)
    own = np.arange(len(linked))
    removed = rep != own
    # A removed record's kept record is one it shares a confirmed pair with (its similarity is that pair's).
    q = np.minimum(own, rep) * len(linked) + np.maximum(own, rep)
    where = key_order[np.searchsorted(pair_key[key_order], q[removed])]
    if not np.array_equal(pair_key[where], q[removed]):
        raise RuntimeError("near dedup on Ray: a removed record is not paired with its cluster's kept record")
    sim = np.full(len(linked), np.nan)
    sim[removed] = np.asarray(jac, dtype=np.float64)[where]      # rounded as locally, where it is written
    return {"order": linked, "id": ids, "rep": rep.astype(np.int64),
            "size": np.bincount(rep, minlength=len(linked))[rep], "sim": sim}


def _apply_plan(batch, plan: dict[str, np.ndarray], step: str, describe: str, policy: str) -> dict[str, Any]:
    """The plan's records get their cluster measurement (and the removed ones their reject);
    every other record's line is passed on as it came, undecoded."""
    recs, lines = list(batch["rec"]), []
    linked = plan["order"]
    orders = np.asarray(batch["order"], dtype=np.int64)
    pos = np.minimum(np.searchsorted(linked, orders), max(len(linked) - 1, 0))
    hit = linked[pos] == orders if len(linked) else np.zeros(len(orders), dtype=bool)
    for k in range(len(orders)):
        if not hit[k]:
            lines.append("")
            continue
        i = int(pos[k])
        r = int(plan["rep"][i])
        ex = Example.from_dict(json.loads(recs[k]))
        m = measurements(ex, step)
        m["cluster"], m["cluster_size"] = str(plan["id"][r]), int(plan["size"][i])
        recs[k] = encode(ex.to_dict())
        if r == i:
            lines.append("")
            continue
        dup_of, sim = str(plan["id"][r]), round(float(plan["sim"][i]), 4)
        lines.append(reject_line(ex, step, f"{describe} of {dup_of} (similarity "
                                 f"{sim:.3f}; kept by policy '{policy}')",
                                 {"duplicate_of": dup_of, "similarity": sim}))
    return {"order": batch["order"], "rec": recs, "line": lines}


def run_near(ray, ds, step: NearDedup, eng: EngineConfig, n: int):
    p = step.p
    if n < 2:
        return ds, no_rejects(ray), 0
    bands, rows = (p.bands, p.rows) if p.bands else choose_bands(p.threshold, p.num_perm)
    # A reduce task holds one partition: enough partitions that it stays near
    # BAND_ROWS_PER_PARTITION band rows (32 bytes each) whatever the input size.
    partitions = max(shuffle_partitions(ray), -(-n * bands // BAND_ROWS_PER_PARTITION))
    sig = ds.map_batches(_signatures, fn_kwargs={"p": p, "bands": bands, "rows": rows},
                         batch_size=eng.batch_size, batch_format="numpy").materialize()
    a, b, jac = confirmed_pairs(sig, bands, p, partitions, max(SHUFFLE_INPUT_RECORDS, eng.batch_size))
    if not len(a):
        return ds, no_rejects(ray), 0
    plan = near_plan(sig, a, b, jac, p)
    describe = f"near duplicate (word {p.ngram}-gram Jaccard >= {p.threshold})"
    judged = ds.map_batches(_apply_plan, fn_kwargs={"plan": plan, "step": step.name,
                                                    "describe": describe, "policy": p.keep},
                            batch_size=eng.batch_size, batch_format="numpy").materialize()
    return kept_of(judged), rejects_of(judged, 0), 0
