"""``sftflow curate --engine ray``: the same steps as locally, run as Ray Data stages.

The step objects are the ones ``build_steps`` makes for a local run; only the way they
meet the records changes, and every result is the local one (``ray_steps``):

- a per-record ``Filter`` runs in ``map_batches`` tasks; one that loads a model (the
  length filter's tokenizer) in actors, one load per actor. A group with a rejected member
  is rejected whole, naming its first rejected member in input order, exactly as
  ``Filter.run`` does: (group, reason) of the failed groups come to the driver and go
  back to the workers.
- exact dedup is a groupby on a 128-bit digest of the normalised text; the first record
  of a group in input order is kept.
- near dedup (``ray_near_dedup``): signatures per batch with the local hashing, a shuffle
  by band key, exact-Jaccard confirmation, representatives by the local keep policy.
- semantic dedup: sentence embeddings computed by actors (one embedder load each) through
  the run's embedding cache; the neighbour search and clustering of the local step on
  the driver.
- any other step that needs the whole set (diversity, leakage) runs on the driver over
  the records that reached it, unchanged.

The outputs are written by the workers (``engine.ray_shards``): the kept records and every
step's rejects as shards, in the local order, then joined by a byte copy into the local
``kept.jsonl`` / ``rejected.jsonl`` (``engine.shards: true`` leaves the folders ``kept/``
and ``rejected/`` instead). The driver holds the read rejects, the per-step counts and
the names of the shards - not the records - and writes the local ``manifest.json``.
With ``stats: true`` the stats of the kept set are computed on the driver, as locally,
which does load the kept records there.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import EngineConfig, ray_session
from ..engine.ray_io import encode, read_dataset
from ..engine.ray_shards import ShardedRecords, join_shards, write_shards
from ..io import Rejected, read_examples, write_manifest
from ..schema import Example
from .config import CurateConfig
from .dedup import ExactDedup, NearDedup, SemanticDedup
from .ray_near_dedup import run_near
from .ray_rows import rows_dataset
from .ray_steps import run_exact, run_filter, run_on_driver, run_semantic
from .steps import Filter, Step


def run_step(ray, ds, step: Step, eng: EngineConfig, n: int, *, cache: str, notes: dict[str, Any]):
    if isinstance(step, Filter):
        return run_filter(ray, ds, step, eng, n)
    if isinstance(step, ExactDedup):
        return run_exact(ray, ds, step, eng, n)
    if isinstance(step, NearDedup):
        return run_near(ray, ds, step, eng, n)
    if isinstance(step, SemanticDedup):
        return run_semantic(ray, ds, step, eng, n, cache=cache, notes=notes)
    return run_on_driver(ray, ds, step, eng, n)


def parse_rejected(d: dict[str, Any]) -> Rejected:
    """A line of a rejects file back to ``Rejected`` (the inverse of ``Rejected.to_dict``)."""
    step, reason, value = d.pop("step"), d.pop("reason"), d.pop("value", None)
    source, line = d.pop("source_file", None), d.pop("source_line", None)
    return Rejected(record=d, step=step, reason=reason, value=value, source=source, line=line)


def _tagged(batch, tag: int) -> dict[str, Any]:
    # A step's rejects sort after the earlier steps', and a filter's two passes in turn.
    return {"order": batch["order"], "line": batch["line"], "tag": tag + batch["sub"].astype(np.int64)}


def _clear(out: Path) -> None:
    """An earlier run's outputs, in either form, so none is mistaken for this run's."""
    for name in ("kept", "rejected"):
        shutil.rmtree(out / name, ignore_errors=True)
        (out / f"{name}.jsonl").unlink(missing_ok=True)


def write_on_workers(ray, out: Path, kept, n_kept: int, read_rejects: list[Rejected],
                     step_rejects: list[tuple[Any, int]], shards: bool) -> tuple[list[Path], list[Path]]:
    """Kept and rejected shards written by the workers; joined into the two local files
    unless ``shards``. Returns the files that hold each, in order."""
    _clear(out)
    kept_parts = write_shards(kept, out / "kept", text="rec", n_rows=n_kept)
    read_rows = [{"order": k, "line": encode(r.to_dict()), "tag": 0} for k, r in enumerate(read_rejects)]
    rejected = rows_dataset(ray, read_rows, {"order": 0, "line": "", "tag": 0})
    for k, (rej, _) in enumerate(step_rejects, start=1):
        rejected = rejected.union(rej.map_batches(_tagged, fn_kwargs={"tag": 2 * k}, batch_format="numpy"))
    n_rej = len(read_rejects) + sum(n for _, n in step_rejects)
    rej_parts = write_shards(rejected, out / "rejected", text="line", tag="tag", n_rows=n_rej)
    if shards:
        return [out / "kept" / n for n, _ in kept_parts], [out / "rejected" / n for n, _ in rej_parts]
    join_shards(out / "kept", kept_parts, out / "kept.jsonl")
    join_shards(out / "rejected", rej_parts, out / "rejected.jsonl")
    return [out / "kept.jsonl"], [out / "rejected.jsonl"]


def _run_steps(ray, ds, n_read: int, steps: list[Step], eng: EngineConfig, out: Path, progress: bool):
    funnel, step_rejects, notes = [], [], {}
    current, n_current = ds, n_read
    for step in steps:
        t0 = time.perf_counter()
        kept, rej, flagged = run_step(ray, current, step, eng, n_current, cache=str(out / "cache"), notes=notes)
        rej = rej.materialize()
        n_kept, n_rej = kept.count(), rej.count()
        if n_kept + n_rej != n_current:
            raise RuntimeError(f"step {step.name} lost records: {n_current} in, {n_kept} kept + {n_rej} rejected")
        funnel.append({"step": step.name, "in": n_current, "out": n_kept, "rejected": n_rej,
                       "flagged": flagged, "seconds": round(time.perf_counter() - t0, 3)})
        if progress:
            print(f"  {step.name:<15} {n_current:>8} -> {n_kept:>8}  ({n_rej} rejected)", flush=True)
        step_rejects.append((rej, n_rej))
        current, n_current = kept, n_kept
    return current, n_current, funnel, step_rejects, notes


def curate_on_ray(inputs: list[str | Path], out: Path, cfg: CurateConfig, *, fmt: str = "auto",
                  model: str | None = None, tokenizer=None, progress: bool = True, collect: bool = True):
    """``curate()`` on Ray: reads shards in parallel, runs the steps, the workers write the outputs.

    The records are never collected here, whatever ``collect`` says: the result's ``kept``
    and ``rejected`` read the written files on demand."""
    from ..embed import EmbeddingCache
    from .pipeline import CurateResult, build_steps, spill_large_raw
    eng = cfg.engine
    with ray_session(eng) as ray:
        ds, read_rejects, files = read_dataset(ray, inputs, fmt, duplicate_ids=cfg.duplicate_ids)
        evals = read_examples(cfg.leakage.eval).examples if "leakage" in cfg.steps and cfg.leakage.eval else None
        steps = build_steps(cfg, model=model, tokenizer=tokenizer, evals=evals,
                            embeddings=EmbeddingCache(out / "cache"))
        n_read = ds.count()
        kept, n_kept, funnel, step_rejects, notes = _run_steps(ray, ds, n_read, steps, eng, out, progress)
        spill_large_raw(read_rejects, out / "rejected_raw")
        kept_files, rej_files = write_on_workers(ray, out, kept, n_kept, read_rejects, step_rejects, eng.shards)
    n_input = n_read + len(read_rejects)
    n_rejected = len(read_rejects) + sum(n for _, n in step_rejects)
    result = CurateResult(kept=ShardedRecords(kept_files, n_kept, Example.from_dict),
                          rejected=ShardedRecords(rej_files, n_rejected, parse_rejected),
                          funnel=funnel, n_input=n_input)
    by_step = {"read": len(read_rejects)} if read_rejects else {}
    by_step.update({f["step"]: f["rejected"] for f in funnel if f["rejected"]})
    if read_rejects:
        funnel.insert(0, {"step": "read", "in": n_input, "out": n_read, "rejected": len(read_rejects),
                          "flagged": 0, "seconds": 0.0})
    counts = {"input": n_input, "kept": n_kept, "rejected": n_rejected, "rejected_by_step": by_step,
              "steps": funnel}
    if cfg.stats:
        from .describe import compute_stats, print_summary, write_stats
        result.stats = compute_stats(list(result.kept), tokenizer=tokenizer, model=cfg.model or model,
                                     funnel=funnel, embed_method=cfg.stats_embed, task_method=cfg.stats_tasks)
        write_stats(result.stats, out, plots=cfg.plots)
        if progress:
            print_summary(result.stats)
    engine = {"kind": "ray", "files_read": len(files), **notes}
    if eng.shards:
        engine["shards"] = {"kept": [p.name for p in kept_files], "rejected": [p.name for p in rej_files]}
    write_manifest(out, stage="curate", inputs=list(inputs) + list(cfg.leakage.eval if evals else []),
                   config=cfg, counts=counts, extra={"engine": engine})
    return result
