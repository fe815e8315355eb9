"""Readers: every container (JSONL, JSON, Parquet, CSV, ``datasets`` folders) to Examples.

A bad record stops the read with an error naming the file, the line (or row) and the
field. With ``skip_invalid=True`` it is kept aside as ``Rejected`` with its reason and
its whole raw record instead, so the caller can write it to a rejects file and replay it
once fixed: nothing is dropped silently, and no bad record ends a read with a traceback.

Where a record is counted: JSONL and CSV by physical line (a CSV row that spans lines
is named by its first line; the header is line 1), JSON lists, Parquet and datasets
folders by row, counting from 1. JSONL and Parquet are read in batches, so memory is
bounded by the batch, not the file (``iter_examples`` is a generator).

Checks on every record, whatever the container: strings must be valid Unicode (a lone
surrogate escape such as ``"\\ud800"`` is rejected, naming the field: it cannot be
written back as UTF-8), nesting deeper than ``MAX_DEPTH`` is rejected, and a
user-supplied ``id`` that repeats within one read is an error naming both places
(``duplicate_ids="reid"`` gives the later one a new id and a note instead).
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from ..schema import Example, RecordError, content_id
from .formats import FORMATS, detect_format, record_to_example
from .writers import _jsonable

MAX_DEPTH = 64            # containers inside containers; real records stay under ~10
CSV_MAX_CELL = 64 << 20   # the csv module's default (128 KiB) is below real documents
PARQUET_BATCH = 1024
CSV_JSON_COLUMNS = ("messages", "conversations", "metadata", "tools")
_SURROGATE = re.compile("[\ud800-\udfff]")
DuplicateIds = Literal["error", "reid"]


@dataclass
class Rejected:
    """A record that did not make it, with the step that stopped it and why."""
    record: dict[str, Any]
    step: str
    reason: str
    value: Any = None
    source: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.record)
        d.update({"step": self.step, "reason": self.reason, "value": _jsonable(self.value)})
        if self.source is not None:
            d["source_file"] = self.source
        if self.line is not None:
            d["source_line"] = self.line
        return d


@dataclass
class ReadResult:
    examples: list[Example] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    format: str = "auto"


@dataclass
class RawRecord:
    n: int                      # line (JSONL, CSV) or row (others), from 1
    rec: Any
    error: RecordError | None = None
    raw: Any = None             # what a reject keeps: the line's text, the row's cells, ...


def check_tree(value: Any, max_depth: int = MAX_DEPTH) -> RecordError | None:
    """The first lone surrogate or too-deep nesting in a parsed record, naming the field."""
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        v, path, depth = stack.pop()
        if isinstance(v, str):
            m = _SURROGATE.search(v)
            if m:
                return RecordError(f"lone surrogate U+{ord(m.group()):04X} at character {m.start()} "
                                   "(not valid Unicode; fix the escape or the encoding)", field=path or None)
            continue
        if isinstance(v, (dict, list)):
            if depth >= max_depth:
                return RecordError(f"nested deeper than {max_depth} levels", field=path or None)
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, child in items:
                if isinstance(k, str) and _SURROGATE.search(k):
                    return RecordError("lone surrogate in a key", field=path or None)
                if isinstance(v, dict):
                    sub = f"{path}.{k}" if path else str(k)
                else:
                    sub = f"{path}[{k}]"
                stack.append((child, sub, depth + 1))
    return None


def reject_raw(rec: Any) -> Any:
    """``rec`` as it can be written to a rejects file: itself when it is valid Unicode,
    else its ASCII-escaped JSON text (lossless, and replayable after the fix)."""
    try:
        json.dumps(rec, ensure_ascii=False, default=_jsonable).encode("utf-8")
        return rec
    except (UnicodeEncodeError, ValueError, TypeError, RecursionError):
        try:
            return {"raw_json": json.dumps(rec, ensure_ascii=True, default=str)}
        except (ValueError, RecursionError):
            return {"raw_repr": repr(rec)[:100000]}


def _jsonl(path: Path) -> Iterator[RawRecord]:
    with open(path, "rb") as f:
        for n, line in enumerate(f, start=1):
            if n == 1 and line.startswith(b"\xef\xbb\xbf"):
                line = line[3:]  # UTF-8 byte-order mark, as Windows editors write it
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as e:
                yield RawRecord(n, None, RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})"),
                                {"raw_base64": base64.b64encode(line).decode("ascii")})
                continue
            if not text.strip():
                continue
            try:
                yield RawRecord(n, json.loads(text), None, text.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                yield RawRecord(n, None, RecordError(f"invalid JSON: {e.msg} (column {e.colno})"),
                                text.rstrip("\r\n"))
            except RecursionError:
                yield RawRecord(n, None, RecordError(f"nested deeper than {MAX_DEPTH} levels"),
                                text.rstrip("\r\n"))


def _json(path: Path) -> Iterator[RawRecord]:
    try:
        data = json.loads(path.read_text("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=str(path)) from None
    except json.JSONDecodeError as e:
        raise RecordError(f"invalid JSON: {e.msg}", path=str(path), line=e.lineno) from None
    except RecursionError:
        raise RecordError(f"nested deeper than {MAX_DEPTH} levels", path=str(path)) from None
    if isinstance(data, dict):
        # {"data": [...]} style wrappers are common; accept exactly one list value.
        lists = [v for v in data.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise RecordError("expected a JSON list of records", path=str(path))
        data = lists[0]
    if not isinstance(data, list):
        raise RecordError(f"expected a JSON list of records, got {type(data).__name__}", path=str(path))
    for i, rec in enumerate(data, start=1):
        yield RawRecord(i, rec, None, reject_raw(rec))


def json_safe(v: Any) -> Any:
    """Arrow values that JSON cannot hold, as JSON values: timestamps and dates as ISO 8601
    text, durations as seconds, decimals as exact text, bytes as text when they are UTF-8
    (else ``{"base64": ...}``)."""
    if isinstance(v, dict):
        return {k: json_safe(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [json_safe(x) for x in v]
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta):
        return v.total_seconds()
    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            return {"base64": base64.b64encode(b).decode("ascii")}
    return v


def _parquet(path: Path) -> Iterator[RawRecord]:
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - any Arrow failure: re-raised with the path
        raise RecordError(f"not a readable Parquet file: {e}", path=str(path)) from None
    n = 0
    for batch in pf.iter_batches(batch_size=PARQUET_BATCH):
        for rec in batch.to_pylist():
            n += 1
            rec = json_safe(rec)
            yield RawRecord(n, rec, None, reject_raw(rec))


def _csv_lines(f, counter: list[int], consumed: list[str]) -> Iterator[str]:
    """Physical lines of a binary file as text. Bytes that are not UTF-8 are carried as
    surrogate escapes, so the row that holds them (and only that row) is rejected."""
    for line in f:
        counter[0] += 1
        if counter[0] == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        text = line.decode("utf-8", "surrogateescape")
        consumed.append(text)
        yield text


def _csv(path: Path) -> Iterator[RawRecord]:
    old_limit = csv.field_size_limit()
    csv.field_size_limit(CSV_MAX_CELL)
    try:
        with open(path, "rb") as f:
            counter, consumed = [0], []
            reader = csv.reader(_csv_lines(f, counter, consumed))
            header: list[str] | None = None
            while True:
                consumed.clear()
                start = counter[0] + 1
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error as e:
                    yield RawRecord(start, None, RecordError(f"unreadable CSV row: {e}"), "".join(consumed))
                    continue
                raw_text = "".join(consumed)
                if not row:
                    continue  # a blank line between rows
                bad = _SURROGATE.search(raw_text)
                if bad:
                    err = RecordError(f"not valid UTF-8 (byte 0x{ord(bad.group()) - 0xDC00:02x})")
                    yield RawRecord(start, None, err, {"raw_base64": base64.b64encode(
                        raw_text.encode("utf-8", "surrogateescape")).decode("ascii")})
                    continue
                if header is None:
                    header = row
                    continue
                yield _csv_record(start, header, row, raw_text)
    finally:
        csv.field_size_limit(old_limit)


def _csv_record(n: int, header: list[str], row: list[str], raw_text: str) -> RawRecord:
    rec: dict[str, Any] = dict(zip(header, row))
    if len(row) > len(header):
        extra = row[len(header):]
        shown = ", ".join(repr(c[:40]) for c in extra[:5])
        return RawRecord(n, None, RecordError(f"{len(row)} cells but the header names {len(header)}: "
                                              f"extra cells {shown}"), {"raw_line": raw_text, "cells": row})
    for col in CSV_JSON_COLUMNS:
        v = rec.get(col)
        if isinstance(v, str) and v.strip()[:1] in ("[", "{"):
            try:
                rec[col] = json.loads(v)
            except json.JSONDecodeError as e:
                return RawRecord(n, None, RecordError(f"not valid JSON: {e.msg} (column {e.colno})", field=col),
                                 {"raw_line": raw_text})
            except RecursionError:
                return RawRecord(n, None, RecordError(f"nested deeper than {MAX_DEPTH} levels", field=col),
                                 {"raw_line": raw_text})
        elif col in rec and not (v or "").strip():
            rec[col] = None   # an empty structural cell means "none", not an empty string
    return RawRecord(n, rec, None, {"raw_line": raw_text})


def _datasets_folder(path: Path) -> Iterator[RawRecord]:
    try:
        import datasets
        ds = datasets.load_from_disk(str(path))
    except Exception as e:  # noqa: BLE001 - re-raised with the path
        raise RecordError(f"not a readable datasets folder: {e}", path=str(path)) from None
    if isinstance(ds, datasets.DatasetDict):
        if "train" not in ds:
            raise RecordError(f"DatasetDict has splits {list(ds)}, no 'train'", path=str(path))
        ds = ds["train"]
    for i, rec in enumerate(ds, start=1):
        rec = json_safe(rec)
        yield RawRecord(i, rec, None, reject_raw(rec))


def _iter_raw(path: Path) -> Iterator[RawRecord]:
    if path.is_dir():
        return _datasets_folder(path)
    suffix = path.suffix.lower()
    readers = {".jsonl": _jsonl, ".ndjson": _jsonl, ".json": _json, ".parquet": _parquet, ".csv": _csv}
    if suffix not in readers:
        raise RecordError(f"unsupported file type {suffix or '(none)'}; expected .jsonl, .json, "
                          ".parquet, .csv or a datasets folder", path=str(path))
    return readers[suffix](path)


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL side file (seeds,
    labels, answers); a missing file or a bad line raises naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file", path=str(path))
    for r in _jsonl(path):
        err = r.error or check_tree(r.rec)
        if err is not None:
            raise RecordError(err.reason, path=str(path), line=r.n, field=err.field) from None
        yield r.n, r.rec


def _where(path: Path) -> str:
    return "line" if path.suffix.lower() in (".jsonl", ".ndjson", ".csv") else "row"


class _IdRegistry:
    """User-supplied ids seen in one read, and where; an id equal to the record's content
    hash is sftflow's own (a repeat is an exact duplicate, dedup's business)."""

    def __init__(self, policy: DuplicateIds = "error"):
        self.policy = policy
        self.first: dict[str, str] = {}
        self.count: dict[str, int] = {}

    def check(self, ex: Example, rec: dict[str, Any], where: str) -> None:
        user_id = rec.get("id")
        if user_id is None or user_id == "" or str(user_id) == content_id(ex.messages, ex.tools):
            return
        key = str(user_id)
        if key not in self.first:
            self.first[key] = where
            return
        if self.policy == "error":
            raise RecordError(f"duplicate id {key!r}: also at {self.first[key]}", field="id")
        self.count[key] = self.count.get(key, 1) + 1
        new = f"{key}.{self.count[key]}"
        if ex.id == key:
            ex.id = new
        if ex.metadata.get("id") == user_id:
            ex.metadata["id"] = new
        ex.metadata["_reid"] = {"original_id": key, "first_seen": self.first[key], "note":
                                "id repeated within the input; renamed"}


def _to_example(raw: RawRecord, chosen: str | None, ids: _IdRegistry, where: str) -> tuple[Example, str]:
    if raw.error is not None:
        raise raw.error
    if not isinstance(raw.rec, dict):
        raise RecordError(f"expected a JSON object, got {type(raw.rec).__name__}")
    bad = check_tree(raw.rec)
    if bad is not None:
        raise bad
    chosen = chosen or detect_format(raw.rec)
    try:
        ex = record_to_example(raw.rec, chosen)
    except RecordError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, IndexError) as e:
        # A record shape no branch foresaw is still that record's error, not a crash.
        raise RecordError(f"unreadable {chosen} record ({type(e).__name__}: {e})") from None
    ids.check(ex, raw.rec, where)
    return ex, chosen


def iter_examples(path: str | Path, fmt: str = "auto", *, skip_invalid: bool = False,
                  rejected: list[Rejected] | None = None, duplicate_ids: DuplicateIds = "error",
                  _ids: _IdRegistry | None = None) -> Iterator[Example]:
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file or folder", path=str(path))
    if fmt not in FORMATS:
        raise RecordError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    kind = _where(path)
    ids = _ids or _IdRegistry(duplicate_ids)
    chosen = None if fmt == "auto" else fmt
    seen_any = False
    for raw in _iter_raw(path):
        seen_any = True
        try:
            ex, chosen = _to_example(raw, chosen, ids, f"{path}: {kind} {raw.n}")
        except RecordError as e:
            loc = f"{path}: {kind} {raw.n}" + (f": field '{e.field}'" if e.field else "")
            msg = f"{loc}: {e.reason}"
            if not skip_invalid:
                err = RecordError(e.reason, path=str(path), line=raw.n, field=e.field)
                err.args = (msg,)
                raise err from None
            if rejected is not None:
                rejected.append(Rejected(record={"raw": raw.raw if raw.raw is not None else reject_raw(raw.rec)},
                                         step="read", reason=msg, source=str(path), line=raw.n))
            continue
        ex.metadata.setdefault("_source", path.stem)
        yield ex
    if not seen_any:
        raise RecordError("file is empty (no records)", path=str(path))


def iter_many(paths: Iterable[str | Path], fmt: str = "auto", *, skip_invalid: bool = False,
              rejected: list[Rejected] | None = None,
              duplicate_ids: DuplicateIds = "error") -> Iterator[Example]:
    """Examples of several files in order, one id registry across them (one run)."""
    ids = _IdRegistry(duplicate_ids)
    for p in paths:
        yield from iter_examples(p, fmt, skip_invalid=skip_invalid, rejected=rejected, _ids=ids)


def read_examples(paths: str | Path | Iterable[str | Path], fmt: str = "auto", *,
                  skip_invalid: bool = False, duplicate_ids: DuplicateIds = "error") -> ReadResult:
    """Read one or more files into Examples. Rejected records are returned, not lost."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = ReadResult(format=fmt)
    result.examples.extend(iter_many(paths, fmt, skip_invalid=skip_invalid, rejected=result.rejected,
                                     duplicate_ids=duplicate_ids))
    return result


def load_examples(paths, fmt: str = "auto") -> list[Example]:
    """Strict read: the first bad record raises."""
    return read_examples(paths, fmt).examples
