"""An append-only SQLite cache of LLM responses, so a killed run loses nothing.

The key is a sha256 over (backend, model, generation parameters, messages): the same
request to the same model with the same sampling settings is answered once. Rows are
only ever inserted (``INSERT OR IGNORE``), each in its own committed transaction, and
the database runs in WAL mode, so a process killed at any instant leaves either the
whole row or none of it: a restarted run regenerates nothing it already has and
duplicates nothing. Failed requests are never cached; a rerun retries them.

``CachedBackend`` wraps any backend with such a cache and counts hits and misses.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .base import Completion, GenParams

SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    backend TEXT NOT NULL,
    model TEXT NOT NULL,
    params TEXT NOT NULL,
    messages TEXT NOT NULL,
    completion TEXT NOT NULL,
    created REAL NOT NULL
)
"""


def _canon(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def cache_key(backend: str, model: str, params: GenParams | dict[str, Any],
              messages: list[dict[str, str]]) -> str:
    p = params.to_dict() if isinstance(params, GenParams) else dict(params)
    msgs = [[m["role"], m["content"]] for m in messages]
    blob = _canon({"backend": backend, "model": model, "params": p, "messages": msgs})
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared across threads, guarded by a lock: the async HTTP
        # backend reports results from its event-loop thread.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(SCHEMA)

    def get(self, key: str) -> Completion | None:
        with self._lock:
            row = self._db.execute("SELECT completion FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        d = json.loads(row[0])
        d["cached"] = True
        return Completion(**d)

    def put(self, key: str, backend: str, model: str, params: GenParams,
            messages: list[dict[str, str]], completion: Completion) -> bool:
        """Insert once; returns False when the key was already there (nothing changes)."""
        if completion.finish_reason == "error":
            return False
        d = completion.to_dict()
        d["cached"] = False
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?)",
                (key, backend, model, _canon(params.to_dict()), _canon(messages), _canon(d), time.time()))
        return cur.rowcount == 1

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _accepts_on_result(backend) -> bool:
    try:
        return "on_result" in inspect.signature(backend.generate).parameters
    except (TypeError, ValueError):
        return False


class CachedBackend:
    """Answer from the cache where possible; store each new answer the moment it arrives."""

    def __init__(self, backend, cache: ResponseCache):
        self.backend = backend
        self.cache = cache
        self.name = backend.name
        self.model = backend.model
        self.hits = 0
        self.misses = 0

    def generate(self, requests: list[list[dict[str, str]]], params: GenParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        model_id = getattr(self.backend, "cache_id", None) or self.model
        keys = [cache_key(self.name, model_id, params, r) for r in requests]
        out: list[Completion | None] = [None] * len(requests)
        todo: list[int] = []
        first_of: dict[str, int] = {}
        for i, k in enumerate(keys):
            hit = self.cache.get(k)
            if hit is not None:
                out[i] = hit
                self.hits += 1
                if on_result:
                    on_result(i, hit)
            elif k in first_of:           # identical request twice in one call: ask once
                continue
            else:
                first_of[k] = i
                todo.append(i)
        self.misses += len(todo)

        def store(j: int, c: Completion) -> None:
            i = todo[j]
            self.cache.put(keys[i], self.name, self.model, params, requests[i], c)
            out[i] = c
            if on_result:
                on_result(i, c)

        if todo:
            sub = [requests[i] for i in todo]
            if _accepts_on_result(self.backend):
                res = self.backend.generate(sub, params, on_result=store)
                for j, c in enumerate(res):
                    if out[todo[j]] is None:
                        store(j, c)
            else:
                for j, c in enumerate(self.backend.generate(sub, params)):
                    store(j, c)
        for i, k in enumerate(keys):      # fill in the duplicates
            if out[i] is None:
                out[i] = out[first_of[k]]
        return out  # type: ignore[return-value]

    def __getattr__(self, item):          # stats, tokens_per_second, ... of the wrapped backend
        return getattr(self.backend, item)
