"""Append-only JSONL files that survive a kill mid-write: one row per line, torn tail repaired.

A process killed while appending leaves at most its last line cut short (no final
newline, or a final line that does not parse). Readers of these files (the training
log, dead letters) call ``repair_torn_tail`` first: the torn bytes are moved to
``<name>.torn`` (appended, so nothing is destroyed and a person can look), the file
is truncated back to its last complete line, and the caller reports what was cut.
A line that does not parse *before* the last one is not a torn write but a damaged
file: that is an error naming the file and line, never a silent skip.

Each append is one ``write`` of a whole line on a file opened in append mode,
flushed and fsynced, so rows already on disk are never touched again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .redact import registered, scrub


class AppendLogError(ValueError):
    """A complete line in the middle of an append-only file does not parse."""


@dataclass
class TornTail:
    path: Path
    offset: int            # where the torn bytes started (the file's new length)
    size: int              # how many bytes were cut off
    moved_to: Path

    def notice(self) -> str:
        return (f"{self.path}: the last line was cut short by an interrupted write ({self.size} bytes "
                f"at offset {self.offset}); moved to {self.moved_to.name} and the file repaired")


def _last_line_start(f, size: int) -> int:
    """Offset of the first byte after the last newline strictly before the file's end."""
    block = 1 << 16
    end = size - 1                      # ignore a final newline itself
    while end > 0:
        start = max(0, end - block)
        f.seek(start)
        chunk = f.read(end - start)
        i = chunk.rfind(b"\n")
        if i >= 0:
            return start + i + 1
        end = start
    return 0


def _parses(line: bytes) -> bool:
    try:
        json.loads(line)
    except (ValueError, UnicodeDecodeError):
        return False
    return True


def repair_torn_tail(path: str | Path) -> TornTail | None:
    """Cut an unfinished or unparsable last line off ``path``; None when the file is whole."""
    path = Path(path)
    if not path.exists():
        return None
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        if size == 0:
            return None
        start = _last_line_start(f, size)
        f.seek(start)
        last = f.read()
        if last.endswith(b"\n") and (not last.strip() or _parses(last)):
            return None
        moved = path.with_name(path.name + ".torn")
        with open(moved, "ab") as t:
            t.write(last if last.endswith(b"\n") else last + b"\n")
        f.truncate(start)
        f.flush()
        os.fsync(f.fileno())
    return TornTail(path=path, offset=start, size=len(last), moved_to=moved)


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """Every row of a repaired append-only file; a bad line is an error naming file and line."""
    return list(iter_log(path))


def iter_log(path: str | Path) -> Iterator[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        return
    with open(path, "rb") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except (ValueError, UnicodeDecodeError) as e:
                raise AppendLogError(f"{path}: line {n}: not a JSON row ({e}); the file is damaged "
                                     "(not a torn last line): fix or remove that line") from None


def append_row(path: str | Path, row: dict[str, Any], *, fsync: bool = True, default=str) -> None:
    """Append one row as one line in one write (the OS appends it whole or, on a kill, cut short)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(row, ensure_ascii=False, default=default)
    if registered():
        line = scrub(line)
    data = (line + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        while data:
            data = data[os.write(fd, data):]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
