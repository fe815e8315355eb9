"""Readers: every container (JSONL, JSON, Parquet, CSV, ``datasets`` folders) to Examples.

A bad record stops the read with an error naming the file, the line (or row) and the
field. With ``skip_invalid=True`` it is kept aside as ``Rejected`` with its reason
instead, so the caller can write it to a rejects file: nothing is dropped silently.
"""

from __future__ import annotations

import json
import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..schema import Example, RecordError
from .formats import FORMATS, detect_format, record_to_example
from .writers import _jsonable


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


def _iter_raw(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line_or_row, record, parse_error) from any supported container."""
    if path.is_dir():
        try:
            import datasets
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001 - re-raised with the path
            raise RecordError(f"not a readable datasets folder: {e}", path=str(path)) from None
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise RecordError(f"DatasetDict has splits {list(ds)}, no 'train'", path=str(path))
            ds = ds["train"]
        for i, rec in enumerate(ds):
            yield i, rec, None
        return
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield n, {"raw_bytes": raw[:200].hex()}, f"not valid UTF-8 ({e.reason} at byte {e.start})"
                    continue
                if not text.strip():
                    continue
                try:
                    yield n, json.loads(text), None
                except json.JSONDecodeError as e:
                    yield n, {"raw": text[:2000]}, f"invalid JSON: {e.msg} (column {e.colno})"
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text("utf-8"))
        except UnicodeDecodeError as e:
            raise RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=str(path)) from None
        except json.JSONDecodeError as e:
            raise RecordError(f"invalid JSON: {e.msg}", path=str(path), line=e.lineno) from None
        if isinstance(data, dict):
            # {"data": [...]} style wrappers are common; accept exactly one list value.
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise RecordError("expected a JSON list of records", path=str(path))
            data = lists[0]
        if not isinstance(data, list):
            raise RecordError(f"expected a JSON list of records, got {type(data).__name__}", path=str(path))
        for i, rec in enumerate(data):
            yield i, rec, None
    elif suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001
            raise RecordError(f"not a readable Parquet file: {e}", path=str(path)) from None
        for i, rec in enumerate(table.to_pylist()):
            yield i, rec, None
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            # Row numbers count the header as row 1, as a spreadsheet shows them.
            for i, rec in enumerate(reader, start=2):
                yield i, {k: v for k, v in rec.items() if k is not None}, None
    else:
        raise RecordError(f"unsupported file type {suffix or '(none)'}; expected .jsonl, .json, "
                          ".parquet, .csv or a datasets folder", path=str(path))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL side file (seeds,
    labels, answers); a missing file or a bad line raises naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file", path=str(path))
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=str(path),
                                  line=n) from None
            if not text.strip():
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                raise RecordError(f"invalid JSON: {e.msg} (column {e.colno})", path=str(path), line=n) from None


def _where(path: Path) -> str:
    s = path.suffix.lower()
    return "line" if s in (".jsonl", ".ndjson") or s == ".csv" else "row"


def iter_examples(path: str | Path, fmt: str = "auto", *, skip_invalid: bool = False,
                  rejected: list[Rejected] | None = None) -> Iterator[Example]:
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file or folder", path=str(path))
    if fmt not in FORMATS:
        raise RecordError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    kind = _where(path)
    chosen = None if fmt == "auto" else fmt
    seen_any = False
    for n, rec, parse_error in _iter_raw(path):
        seen_any = True
        try:
            if parse_error:
                raise RecordError(parse_error)
            if not isinstance(rec, dict):
                raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
            if chosen is None:
                chosen = detect_format(rec)
            ex = record_to_example(rec, chosen)
        except RecordError as e:
            err = RecordError(e.reason, path=str(path), field=e.field)
            loc = f"{path}: {kind} {n}" + (f": field '{e.field}'" if e.field else "")
            msg = f"{loc}: {e.reason}"
            if not skip_invalid:
                err.line = n
                err.args = (msg,)
                raise err from None
            if rejected is not None:
                rejected.append(Rejected(record={"raw": rec}, step="read", reason=msg,
                                         source=str(path), line=n))
            continue
        ex.metadata.setdefault("_source", path.stem)
        yield ex
    if not seen_any:
        raise RecordError("file is empty (no records)", path=str(path))


def read_examples(paths: str | Path | Iterable[str | Path], fmt: str = "auto", *,
                  skip_invalid: bool = False) -> ReadResult:
    """Read one or more files into Examples. Rejected records are returned, not lost."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = ReadResult(format=fmt)
    for p in paths:
        result.examples.extend(iter_examples(p, fmt, skip_invalid=skip_invalid,
                                             rejected=result.rejected))
    return result


def load_examples(paths, fmt: str = "auto") -> list[Example]:
    """Strict read: the first bad record raises."""
    return read_examples(paths, fmt).examples
