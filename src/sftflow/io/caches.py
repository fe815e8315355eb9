"""What sftflow's SQLite caches hold, and pruning them to a size or an age.

The caches (responses per run folder, scores and embeddings in the user cache
``~/.cache/sftflow`` or ``$SFTFLOW_CACHE``) only ever grow; ``sftflow cache info``
shows their size and rows, ``sftflow cache prune`` shrinks them. Pruning is safe at
any time: every cache is a pure function of its key, so a row removed is only a row
computed again when next needed.

Rows an older sftflow left behind go first, whatever the limit: embedding vectors
stored as JSON text in the score cache (``scores`` rows keyed ``embedding|...``). The
embedding cache now keeps float32 rows keyed by the full text hash, so those rows are
never read again and cannot be migrated (their key holds only 16 hex of the hash); the
score cache drops them when it opens, and ``cache info`` counts them.

Which rows go: the oldest first. Tables with a ``created`` column (responses) are
ordered by it; the others by SQLite's ``rowid``, which grows with each insert, so it
is insertion order without a timestamp column (scores, embeddings).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path

SIDE_FILES = ("-wal", "-shm", "-journal")


@dataclass
class CacheInfo:
    path: Path
    bytes: int
    rows: dict[str, int] = field(default_factory=dict)


def file_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, *(path.with_name(path.name + s) for s in SIDE_FILES)]
               if p.exists())


def find_caches(paths: list[Path]) -> list[Path]:
    """SQLite files among ``paths`` (files, or folders searched one level deep and in ``cache/``)."""
    found: list[Path] = []
    for p in paths:
        if p.is_file():
            found.append(p)
        elif p.is_dir():
            found += sorted(q for q in p.glob("*.sqlite") if q.is_file())
    return found


def _tables(db: sqlite3.Connection) -> list[str]:
    return [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                     "AND name NOT LIKE 'sqlite_%' ORDER BY name")]


def _order(db: sqlite3.Connection, table: str) -> str:
    cols = {r[1] for r in db.execute(f'PRAGMA table_info("{table}")')}
    return "created" if "created" in cols else "rowid"


LEGACY_EMBEDDINGS = "key LIKE 'embedding|%'"


def legacy_embedding_rows(db: sqlite3.Connection) -> int:
    """JSON embedding rows an older sftflow wrote into the score cache (dead weight)."""
    if "scores" not in _tables(db):
        return 0
    return db.execute(f"SELECT COUNT(*) FROM scores WHERE {LEGACY_EMBEDDINGS}").fetchone()[0]


def remove_legacy_embeddings(db: sqlite3.Connection) -> int:
    if not legacy_embedding_rows(db):
        return 0
    n = db.execute(f"DELETE FROM scores WHERE {LEGACY_EMBEDDINGS}").rowcount
    db.commit()
    return n


def cache_info(path: Path) -> CacheInfo:
    with sqlite3.connect(str(path), timeout=60) as db:
        rows = {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in _tables(db)}
        legacy = legacy_embedding_rows(db)
    if legacy:
        rows["of scores: old JSON embeddings, removed by prune"] = legacy
    return CacheInfo(path=path, bytes=file_bytes(path), rows=rows)


def prune_legacy(path: Path) -> int:
    """Remove the rows an older sftflow left (see the module notes); returns the count."""
    with sqlite3.connect(str(path), timeout=60) as db:
        removed = remove_legacy_embeddings(db)
        if removed:
            _vacuum(db)
    return removed


def _vacuum(db: sqlite3.Connection) -> None:
    db.commit()
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.execute("VACUUM")


def prune_older_than(path: Path, days: float) -> int:
    """Remove rows created more than ``days`` ago (tables with a ``created`` column); returns the count."""
    cutoff = time.time() - days * 86400
    removed = 0
    with sqlite3.connect(str(path), timeout=60) as db:
        for t in _tables(db):
            if _order(db, t) == "created":
                removed += db.execute(f'DELETE FROM "{t}" WHERE created < ?', (cutoff,)).rowcount
        _vacuum(db)
    return removed


def prune_to_size(path: Path, max_bytes: int) -> int:
    """Remove the oldest rows until the file (with its side files) is at most ``max_bytes``.

    Rows differ in size, so the share to keep is estimated from the bytes per row and
    corrected by measuring again after each VACUUM: a few rounds at most.
    """
    removed = 0
    with sqlite3.connect(str(path), timeout=60) as db:
        _vacuum(db)
        for _ in range(8):
            size = file_bytes(path)
            counts = {t: db.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in _tables(db)}
            total = sum(counts.values())
            if size <= max_bytes or total == 0:
                break
            keep_share = max(0.0, min(0.95, 0.9 * max_bytes / size))
            for t, n in counts.items():
                drop = n - int(n * keep_share)
                if drop > 0:
                    order = _order(db, t)
                    removed += db.execute(f'DELETE FROM "{t}" WHERE rowid IN (SELECT rowid FROM "{t}" '
                                          f"ORDER BY {order} LIMIT ?)", (drop,)).rowcount
            _vacuum(db)
    return removed
