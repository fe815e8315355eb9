"""Records in and out of Ray Datasets, with the local reader's rules and errors.

A dataset row is ``{order, rec}``: ``rec`` is the record as the JSONL line a local run
writes for it (``json.dumps(ex.to_dict(), ensure_ascii=False)``: its metadata is
free-form, which an Arrow schema would have to guess per shard, and a kept record's
line is written as it is, with no second encoding); ``order`` is ``file_no << 40 | n``,
the position the local reader would have given it. Sorting on ``order`` restores the
local order, so outputs written from Ray are line for line the files a local run writes.

Inputs: files, folders of shards (``*.jsonl``/``*.parquet``; a ``datasets``
``save_to_disk`` folder stays one input) and globs. One read task per file runs the
local reader on it (``iter_examples``: the same format detection, checks and messages),
so a folder of N shards is read N ways in parallel. Unreadable records come back as
``Rejected`` entries from step ``read``, as locally. A user-supplied ``id`` is checked
across all files at once (``ray_ids``), as the local reader's one registry does.
"""

from __future__ import annotations

import glob
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from ..io import Rejected, iter_examples
from ..io.writers import _jsonable
from ..schema import Example
from .ray_ids import SeenIds, resolve_duplicate_ids

LINE_BITS = 40                      # lines per file below 2^40; files below 2^23
SHARD_SUFFIXES = (".jsonl", ".ndjson", ".parquet", ".json", ".csv")


def expand_inputs(inputs: Iterable[str | Path]) -> list[Path]:
    """Files in the order the local reader would read them: globs sorted, shard folders listed."""
    out: list[Path] = []
    for item in inputs:
        text = str(item)
        if any(c in text for c in "*?["):
            matches = sorted(glob.glob(text))
            if not matches:
                raise FileNotFoundError(f"{text}: no file matches")
            out.extend(Path(m) for m in matches)
            continue
        p = Path(text)
        is_datasets_folder = p.is_dir() and ((p / "dataset_info.json").exists() or (p / "state.json").exists())
        if p.is_dir() and not is_datasets_folder:
            shards = sorted(q for q in p.iterdir() if q.suffix.lower() in SHARD_SUFFIXES)
            if not shards:
                raise FileNotFoundError(f"{p}: a folder without .jsonl or .parquet shards")
            out.extend(shards)
        else:
            out.append(p)
    return out


def encode(d: dict[str, Any]) -> str:
    """A record's JSONL line, exactly as ``io.write_jsonl`` writes it."""
    return json.dumps(d, ensure_ascii=False, default=_jsonable)


def encode_examples(examples: list[Example]) -> list[str]:
    return [encode(ex.to_dict()) for ex in examples]


def examples_of(batch: dict[str, Any]) -> list[Example]:
    return [Example.from_dict(json.loads(t)) for t in batch["rec"]]


READ_BATCH = 4096          # rows a read task hands on at a time


def _read_one(batch: dict[str, Any], fmt: str) -> Iterator[dict[str, list]]:
    """Every record of one file (a batch holds one), as column batches; unreadable ones
    as rows with ``rej`` set.

    A generator of batches: a read task holds one batch of a file, not the whole file, and
    rows reach Arrow a batch at a time, not one by one. Ids are noted (``uid``, ``where``),
    not judged: whether one repeats is known only across all files."""
    cols = ("order", "rec", "rej", "uid", "where", "line", "own_source")
    for file_no, path in zip(batch["file_no"], batch["path"]):
        file_no, path = int(file_no), Path(str(path))
        rejected: list[Rejected] = []
        seen = SeenIds()
        out: dict[str, list] = {c: [] for c in cols}
        for n, ex in enumerate(iter_examples(path, fmt, skip_invalid=True, rejected=rejected, _ids=seen)):
            uid, where, line, own_source = seen.take()
            for c, v in zip(cols, ((file_no << LINE_BITS) | n, encode(ex.to_dict()), "", uid, where, line,
                                   own_source)):
                out[c].append(v)
            if len(out["order"]) >= READ_BATCH:
                yield out
                out = {c: [] for c in cols}
        # A reject's place: its own line, so read rejects keep the local reader's order too.
        for r in rejected:
            for c, v in zip(cols, ((file_no << LINE_BITS) | (r.line or 0), "", json.dumps(rejected_to_row(r)),
                                   "", "", 0, False)):
                out[c].append(v)
        if out["order"]:
            yield out


def rejected_to_row(r: Rejected) -> dict[str, Any]:
    return {"record": r.record, "step": r.step, "reason": r.reason, "value": r.value,
            "source": r.source, "line": r.line}


def row_to_rejected(d: dict[str, Any]) -> Rejected:
    return Rejected(record=d["record"], step=d["step"], reason=d["reason"], value=d.get("value"),
                    source=d.get("source"), line=d.get("line"))


def read_dataset(ray, inputs: Iterable[str | Path], fmt: str = "auto", *,
                 duplicate_ids: str = "error") -> tuple[Any, list[Rejected], list[Path]]:
    """(dataset of ``{order, rec}`` rows, read rejects in local order, the files read).

    The read rejects (unreadable lines, repeated ids) come to the driver: they are as many
    as the input's bad lines, and the local order puts them before every step's."""
    from ray.data.expressions import col
    files = expand_inputs(inputs)
    if len(files) >= 1 << (63 - LINE_BITS):
        raise ValueError(f"{len(files)} input files: merge shards below {1 << (63 - LINE_BITS)}")
    items = [{"file_no": i, "path": str(p)} for i, p in enumerate(files)]
    ds = ray.data.from_items(items, override_num_blocks=len(items))
    ds = ds.map_batches(_read_one, fn_kwargs={"fmt": fmt}, batch_size=1, batch_format="numpy").materialize()
    rej_rows = ds.filter(expr=col("rej") != "").select_columns(["order", "rej"]).take_all()
    rejected = [(int(r["order"]), row_to_rejected(json.loads(r["rej"]))) for r in rej_rows]
    records = ds.filter(expr=col("rej") == "").drop_columns(["rej"])
    records, id_rejects = resolve_duplicate_ids(ray, records, files, duplicate_ids)
    rejected = [r for _, r in sorted(rejected + id_rejects, key=lambda t: t[0])]
    return records.materialize(), rejected, files
