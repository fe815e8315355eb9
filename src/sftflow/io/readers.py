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

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Literal

from ..schema import Example, RecordError, content_id
from .containers import (MAX_DEPTH, PARQUET_BATCH, RawRecord, _jsonl, check_tree, iter_raw, json_safe,
                         reject_raw)
from .formats import FORMATS, detect_format, record_to_example
from .writers import _jsonable

__all__ = ["MAX_DEPTH", "PARQUET_BATCH", "DuplicateIds", "ReadResult", "Rejected", "check_tree", "iter_examples",
           "iter_jsonl", "iter_many", "json_safe", "load_examples", "read_examples", "reject_raw"]

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
    for raw in iter_raw(path):
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
