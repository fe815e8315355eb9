"""Containers to raw records: JSONL and CSV by physical line, JSON, Parquet and datasets
folders by row (from 1). Each raw record carries its error (if the container could not
give a value) and what a reject keeps of it (the line's text, the row's cells, the exact
bytes when they are not UTF-8). JSONL and Parquet are read in batches: a generator
holds one line or one Parquet batch, not the file.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..schema import RecordError
from .writers import _jsonable

MAX_DEPTH = 64            # containers inside containers; real records stay under ~10
CSV_MAX_CELL = 64 << 20   # the csv module's default (128 KiB) is below real documents
PARQUET_BATCH = 1024
CSV_JSON_COLUMNS = ("messages", "conversations", "metadata", "tools")
_SURROGATE = re.compile("[\ud800-\udfff]")


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


def iter_raw(path: Path) -> Iterator[RawRecord]:
    if path.is_dir():
        return _datasets_folder(path)
    suffix = path.suffix.lower()
    readers = {".jsonl": _jsonl, ".ndjson": _jsonl, ".json": _json, ".parquet": _parquet, ".csv": _csv}
    if suffix not in readers:
        raise RecordError(f"unsupported file type {suffix or '(none)'}; expected .jsonl, .json, "
                          ".parquet, .csv or a datasets folder", path=str(path))
    return readers[suffix](path)
