"""Pass 2 of a streaming curate run: read the input again and send every record where the
plan says, with the same measurements, reasons and order as the one-shot run.

Each record is measured again by the filters it reaches (they are deterministic, and
measuring again is cheaper than keeping every measurement of pass 1), gets the cluster
ids its dedup steps gave it, and leaves as kept or as a rejection of the step that
removed it. The one-shot run lists rejections by step (a filter's own rejections, then
the group members it took with them), so each (step, part) is written to its own part
file as the records pass and the parts are joined in that order at the end.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import IO, Callable, Iterator

from ..io import Rejected
from ..io.atomic import atomic_open
from ..io.writers import jsonl_line
from ..schema import Example
from .dedup import ExactDedup, duplicate_reason
from .steps import Filter, Step, measurements, reject
from .stream_plan import Plan
from .stream_scan import ScanState

PartKey = tuple[int, int]   # (step position, 0 = own rejections / 1 = group members); (-1, 0) = read


class RejectParts:
    """Rejection lines held in part files until they can be joined in the one-shot order."""

    def __init__(self, folder: Path, collect: bool = False):
        shutil.rmtree(folder, ignore_errors=True)   # a killed run's parts are stale
        folder.mkdir(parents=True)
        self.folder = folder
        self.files: dict[PartKey, IO[str]] = {}
        self.collected: dict[PartKey, list[Rejected]] | None = {} if collect else None
        self.by_step: dict[PartKey, tuple[str, int]] = {}

    def add(self, key: PartKey, r: Rejected) -> None:
        f = self.files.get(key)
        if f is None:
            f = self.files[key] = open(self.folder / f"{key[0] + 1:04d}-{key[1]}.jsonl", "w", encoding="utf-8")
        f.write(jsonl_line(r))
        step, count = self.by_step.get(key, (r.step, 0))
        self.by_step[key] = (step, count + 1)
        if self.collected is not None:
            self.collected.setdefault(key, []).append(r)

    def order(self) -> list[PartKey]:
        return sorted(self.files)

    def join(self, path: Path) -> list[Rejected]:
        """Write ``path`` from the parts in order; the collected rejections in that order."""
        for f in self.files.values():
            f.close()
        with atomic_open(path, "w") as out:
            for key in self.order():
                with open(self.folder / f"{key[0] + 1:04d}-{key[1]}.jsonl", encoding="utf-8") as part:
                    shutil.copyfileobj(part, out, 1 << 20)
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.collected is None:
            return []
        return [r for key in self.order() for r in self.collected.get(key, [])]

    def rejected_by_step(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for key in self.order():
            step, count = self.by_step[key]
            out[step] = out.get(step, 0) + count
        return out


def kept_stream(batches: Iterator[list[Example]], state: ScanState, plan: Plan, steps: list[Step],
                parts: RejectParts, after_batch: Callable[[], None]) -> Iterator[Example]:
    """The kept records in input order; rejections go to ``parts`` on the way."""
    base = 0
    for batch in batches:
        after_batch()
        yield from _batch(batch, base, state, plan, steps, parts)
        base += len(batch)
    after_batch()
    if base != state.n:
        raise RuntimeError(f"curate: the input changed while it was read ({state.n} records on the first "
                           f"pass, {base} on the second)")


def _batch(batch: list[Example], base: int, state: ScanState, plan: Plan, steps: list[Step],
           parts: RejectParts) -> Iterator[Example]:
    removed = plan.removed[base:base + len(batch)]
    reach = list(range(len(batch)))
    for k, step in enumerate(steps):
        if not reach:
            break
        if isinstance(step, Filter):
            reach = _filter(k, step, batch, reach, base, removed, state, plan, parts)
        else:
            reach = _dedup(k, step, batch, reach, base, removed, state, plan, parts)
    for j in reach:
        yield batch[j]


def _filter(k: int, step: Filter, batch: list[Example], reach: list[int], base: int, removed,
            state: ScanState, plan: Plan, parts: RejectParts) -> list[int]:
    exs = [batch[j] for j in reach]
    still = []
    for j, ex, m in zip(reach, exs, step.measure_many(exs)):
        measurements(ex, step.name).update(m)
        if removed[j] != k:
            still.append(j)
            continue
        i = base + j
        if plan.by_group[i]:
            code = int(state.cols["group"][i])
            group = state.group_keys[code]
            parts.add((k, 1), reject(ex, step.name, f"group {group!r}: {plan.group_reason[(k, code)]}",
                                     {"group": group}))
            continue
        decision = step.decide(ex, m)
        if decision is True:
            raise RuntimeError(f"curate: step {step.name} rejected record {ex.id} on the first pass and "
                               "kept it on the second (a filter must judge a record the same way twice)")
        parts.add((k, 0), reject(ex, step.name, decision[1], decision[2] if len(decision) > 2 else m))
    return still


def _dedup(k: int, step: Step, batch: list[Example], reach: list[int], base: int, removed,
           state: ScanState, plan: Plan, parts: RejectParts) -> list[int]:
    clusters = plan.clusters.get(k, {})
    still = []
    for j in reach:
        i, ex = base + j, batch[j]
        if i in clusters:
            rep, size = clusters[i]
            m = measurements(ex, step.name)
            m["cluster"] = state.ids[rep]
            m["cluster_size"] = size
        if removed[j] != k:
            still.append(j)
            continue
        orig = state.ids[plan.dup[i]]
        if isinstance(step, ExactDedup):
            parts.add((k, 0), reject(ex, step.name, step.describe(orig), {"duplicate_of": orig}))
            continue
        sim = plan.similarity[i]
        parts.add((k, 0), reject(ex, step.name, duplicate_reason(step.describe(), orig, sim, step.p.keep),
                                 {"duplicate_of": orig, "similarity": sim}))
    return still

