"""Outputs written by the workers as shards, in the local order, and read back lazily.

A kept or rejected row carries its JSONL line and its ``order`` (``ray_io``). The rows are
grouped by shard - the input file and a block of ``2^SHARD_BITS`` of its records, so a
shard is bounded whatever the size of the input - and each group is written by the
worker that holds it, sorted by order, to a file whose name sorts as its place in the
local output: ``part-FFFFFFF-CCCCCCCC.jsonl`` (file, block), preceded for rejects by
``TTT``, the step (and for filters the pass) that rejected them, since a local rejects
file lists step by step. The shards read in name order are the local file, byte for
byte; ``join_shards`` makes that file by copying bytes (no record is decoded).

A write is atomic and a shard's name depends only on its rows, so a task Ray retries
writes the same file again; the driver takes the list of shards from the tasks that
finished, never from the folder.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_open
from ..io.redact import registered, scrub

SHARD_BITS = 16           # records of one input file per output shard: 65,536
FILE_BITS, LINE_BITS = 23, 40
TAG_SHIFT = FILE_BITS + LINE_BITS - SHARD_BITS


def shard_name(shard: int, tagged: bool) -> str:
    tag, rest = shard >> TAG_SHIFT, shard & ((1 << TAG_SHIFT) - 1)
    file_no, block = rest >> (LINE_BITS - SHARD_BITS), rest & ((1 << (LINE_BITS - SHARD_BITS)) - 1)
    return (f"part-{tag:03d}-" if tagged else "part-") + f"{file_no:07d}-{block:08d}.jsonl"


def _with_shard(batch: dict[str, np.ndarray], text: str, tag: str | None) -> dict[str, Any]:
    order = batch["order"].astype(np.int64)
    shard = order >> SHARD_BITS
    if tag is not None:
        shard = shard | (batch[tag].astype(np.int64) << TAG_SHIFT)
    return {"shard": shard, "order": order, "text": batch[text]}


def _write_group(batch: dict[str, np.ndarray], folder: str, tagged: bool) -> dict[str, Any]:
    idx = np.argsort(batch["order"], kind="stable")
    name = shard_name(int(batch["shard"][0]), tagged)
    clean = scrub if registered() else None
    with atomic_open(Path(folder) / name, "w") as f:
        for i in idx:
            line = str(batch["text"][i])
            f.write((clean(line) if clean else line) + "\n")
    return {"name": [name], "n": [len(idx)]}


def write_shards(ds, folder: Path, *, text: str, n_rows: int, tag: str | None = None) -> list[tuple[str, int]]:
    """Write the rows of ``ds`` (``order``, a ``text`` column holding the JSONL line, an
    optional ``tag`` column that sorts first) as shards in ``folder``; [(name, rows)] in order."""
    folder.mkdir(parents=True, exist_ok=True)
    if n_rows == 0:
        return []
    keyed = ds.map_batches(_with_shard, fn_kwargs={"text": text, "tag": tag}, batch_format="numpy")
    # About one shard per reduce task, so what a reducer holds stays near one shard.
    partitions = max(2, -(-n_rows // (1 << SHARD_BITS)))
    written = (keyed.groupby("shard", num_partitions=partitions)
               .map_groups(_write_group, fn_kwargs={"folder": str(folder), "tagged": tag is not None},
                           batch_format="numpy").take_all())
    return sorted((str(r["name"]), int(r["n"])) for r in written)


def join_shards(folder: Path, shards: list[tuple[str, int]], dest: Path) -> None:
    """The shards, in order, as one file (bytes copied), then the folder removed."""
    with atomic_open(dest, "wb", encoding=None) as out:
        for name, _ in shards:
            with open(folder / name, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 20)
    shutil.rmtree(folder)


class ShardedRecords:
    """The records of an output written as shards (or joined into one file), read on
    demand: ``len`` is known, iterating reads the files again each time. It stands where a
    local run returns a list, without holding the records."""

    def __init__(self, paths: list[Path], n: int, parse: Callable[[dict[str, Any]], Any]):
        self.paths, self.n, self.parse = paths, n, parse

    def __len__(self) -> int:
        return self.n

    def __bool__(self) -> bool:
        return self.n > 0

    def __iter__(self) -> Iterator[Any]:
        for p in self.paths:
            with open(p, encoding="utf-8") as f:
                for line in f:
                    yield self.parse(json.loads(line))

    def __getitem__(self, k: int) -> Any:
        # Sequential: for an occasional look at a record, not for random access in a loop.
        if isinstance(k, slice):
            return [self[i] for i in range(*k.indices(self.n))]
        if not -self.n <= k < self.n:
            raise IndexError(k)
        k %= self.n
        for i, x in enumerate(self):
            if i == k:
                return x
        raise IndexError(k)
