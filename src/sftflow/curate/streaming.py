"""``curate`` on a stream: memory bounded by a batch and a few hundred bytes per record.

Holding every record as an Example costs about eight times the file (Python objects for
every message, string and measurement). A curation decision needs much less: the
filters judge one record at a time, and dedup needs a fingerprint per record. So:

1. pass 1 (``stream_scan``) reads the input in batches of ``BATCH`` records, runs the
   per-record filters and keeps compact columns (ids, groups, digests, band keys,
   lengths, scores);
2. the decisions (``stream_plan``) replay the steps over those columns, reading the
   input again only for the texts of near-duplicate candidates and of semantic dedup;
3. pass 2 (``stream_write``) reads the input once more and writes kept.jsonl and
   rejected.jsonl exactly as the one-shot run (``pipeline.curate_in_memory``) writes
   them: same records, measurements, reasons, order and counts.

Every output is written atomically and the part files of an interrupted run are
removed by the next, so a killed run leaves the old outputs or none, and a rerun
writes the same bytes. The input must not change between the passes (a count
mismatch is an error).
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from ..io import Rejected, load_examples, write_examples
from ..io.readers import iter_many
from ..schema import Example
from .config import CurateConfig
from .pipeline import CurateResult, finish_outputs, print_funnel_line, spill_large_raw
from .steps import Step
from .stream_plan import Plan, plan_steps
from .stream_scan import ScanState
from .stream_write import RejectParts, kept_stream

BATCH = 2048                           # records per batch: bounds the Examples alive at once
WHOLE_SET = ("leakage", "diversity")   # steps that need every record at once


def streamable(step_names: Iterable[str]) -> bool:
    return not set(step_names) & set(WHOLE_SET)


class _Count:
    """Stands in for the reader's rejects list on pass 1: counts, holds nothing."""

    def __init__(self):
        self.n = 0

    def append(self, _r: Rejected) -> None:
        self.n += 1


def batched(items: Iterator[Example], size: int) -> Iterator[list[Example]]:
    batch: list[Example] = []
    for x in items:
        batch.append(x)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def texts_at(read: Callable[[], Iterator[Example]], indices: np.ndarray, text: Callable[[Example], str]) -> list[str]:
    """``text(record)`` for the records at ``indices`` (sorted), read again from the input."""
    out: list[str] = []
    want = indices.tolist()
    if not want:
        return out
    for i, ex in enumerate(read()):
        if i == want[len(out)]:
            out.append(text(ex))
            if len(out) == len(want):
                break
    return out


def curate_streaming(inputs: list, out: Path, cfg: CurateConfig, steps: list[Step], *, fmt: str = "auto",
                     model: str | None = None, tokenizer=None, progress: bool = True,
                     collect: bool = True) -> CurateResult:
    """``curate`` in two passes over the input (see the module docstring)."""
    from rich.console import Console
    console = Console(stderr=True)
    paths = [Path(p) for p in inputs]

    def read(rejected: Any = None) -> Iterator[Example]:
        return iter_many(paths, fmt, skip_invalid=True, rejected=rejected, duplicate_ids=cfg.duplicate_ids)

    unreadable = _Count()
    state = ScanState(steps)
    with console.status("curate: reading and filtering") if progress else nullcontext():
        for batch in batched(read(unreadable), BATCH):
            state.scan(batch)
        state.finish()
        plan = plan_steps(state, steps, lambda idx, text: texts_at(read, idx, text))
    funnel = plan.funnel
    n_input = state.n + unreadable.n
    if unreadable.n:
        funnel.insert(0, {"step": "read", "in": n_input, "out": state.n, "rejected": unreadable.n,
                          "flagged": 0, "seconds": 0.0})
    if progress:
        for entry in funnel:
            print_funnel_line(console, entry)
    kept, n_kept, parts = _write(read, out, state, plan, steps, collect)
    rejected = parts.join(out / "rejected.jsonl")
    n_rejected = sum(n for _, n in parts.by_step.values())
    if n_kept + n_rejected != n_input:
        raise RuntimeError(f"curate lost records: {n_input} in, {n_kept} kept + {n_rejected} rejected")
    result = CurateResult(kept=kept, rejected=rejected, funnel=funnel, n_input=n_input,
                          n_kept=None if collect else n_kept, n_rejected=None if collect else n_rejected)
    finish_outputs(result, out, cfg, parts.rejected_by_step(),
                   lambda: kept if collect else load_examples(out / "kept.jsonl"),
                   inputs=list(inputs), model=model, tokenizer=tokenizer, progress=progress)
    return result


def _write(read, out: Path, state: ScanState, plan: Plan, steps: list[Step],
           collect: bool) -> tuple[list[Example], int, RejectParts]:
    """Pass 2: kept.jsonl written as the records pass; rejections into part files."""
    parts = RejectParts(out / ".curate-parts", collect)
    unreadable: list[Rejected] = []
    position = [0]   # of the next unreadable record in rejected.jsonl (they come first)

    def drain() -> None:
        for r in unreadable:
            spill_large_raw([r], out / "rejected_raw", start=position[0])
            parts.add((-1, 0), r)
            position[0] += 1
        unreadable.clear()

    kept: list[Example] = []
    stream = kept_stream(batched(read(unreadable), BATCH), state, plan, steps, parts, drain)
    n = write_examples(out / "kept.jsonl", _tee(stream, kept) if collect else stream)
    return kept, n, parts


def _tee(items: Iterator[Example], into: list[Example]) -> Iterator[Example]:
    for x in items:
        into.append(x)
        yield x
