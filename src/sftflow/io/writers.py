"""Writers: JSONL/Parquet outputs written atomically, and the rejects file."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

from .atomic import atomic_open, atomic_path
from .redact import registered, scrub
from ..schema import Example

if TYPE_CHECKING:
    from .readers import Rejected


def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return v


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write Examples, Rejected or plain dicts as JSONL; returns the count."""
    n = 0
    # atomic: a killed run never leaves a half-written output, a failed one no temporary
    with atomic_open(path, "w") as f:
        for r in rows:
            f.write(jsonl_line(r))
            n += 1
    return n


def jsonl_line(row: Any) -> str:
    """One Example, Rejected or dict as the JSONL line ``write_jsonl`` writes (newline included)."""
    d = row.to_dict() if hasattr(row, "to_dict") else row
    line = json.dumps(d, ensure_ascii=False, default=_jsonable)
    return (scrub(line) if registered() else line) + "\n"    # a credential a backend read is never written


def write_examples(path: str | Path, examples: Iterable[Example]) -> int:
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        examples = list(examples)
        # Plain {role, content} conversations stay a list-of-structs column; turns with tool
        # calls, reasoning or tool results (keys differing per turn) are stored as JSON
        # text, which Arrow cannot mangle into null-filled structs. Readers take both.
        plain = all(set(m) == {"role", "content"} for e in examples for m in e.messages)
        rows = [{"id": e.id, "messages": e.messages if plain else json.dumps(e.messages, ensure_ascii=False),
                 "metadata": json.dumps(e.metadata, default=_jsonable)} for e in examples]
        if any(e.tools for e in examples):
            for r, e in zip(rows, examples):
                r["tools"] = json.dumps(e.tools, ensure_ascii=False) if e.tools else None
        table = pa.Table.from_pylist(rows)
        with atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        return len(rows)
    return write_jsonl(path, examples)


def write_rejected(path: str | Path, rejected: Iterable[Rejected]) -> int:
    return write_jsonl(path, rejected)
