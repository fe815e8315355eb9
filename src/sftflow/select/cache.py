"""A score cache keyed by exactly what determines the number.

A loss depends on the text scored, the model's weights, the chat template, the max
length, the precision and the mask; nothing else. The key is a hash of those, so a
rerun, a resume after a kill, or the same response met again in another file costs
nothing. Rows are committed after every chunk: a killed run loses at most one chunk.

SQLite (in the standard library) rather than a file per score: one file, atomic
commits, safe when two processes score at once. Embedding vectors are not kept here:
they live in ``sftflow.embed.EmbeddingCache`` (float32 rows, shared with curation).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable

from ..io.caches import remove_legacy_embeddings
from ..models import cache_dir


@dataclass(frozen=True)
class ModelIdentity:
    """What, besides the text, a model score depends on. Written to metadata["scores"]["model"]."""
    name: str
    weights_hash: str
    template: str
    max_length: int | None
    precision: str

    @property
    def key(self) -> str:
        raw = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(raw.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def template_id(tokenizer, template: str | None) -> str:
    """'chatml' / 'own:<sha12>': the name of a fallback, or a hash of the Jinja text used."""
    from ..chat import resolve_template
    text = resolve_template(tokenizer, template)
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    if template and "{" not in template:
        return f"{template}:{digest}"
    return f"{'custom' if template else 'own'}:{digest}"


def default_cache_path() -> Path:
    return cache_dir() / "scores.sqlite"


class ScoreCache:
    """kind + model key + content key -> JSON value (per-example losses)."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else default_cache_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        self._db.commit()
        dropped = remove_legacy_embeddings(self._db)
        if dropped:
            print(f"notice: {self.path}: removed {dropped} embedding rows an older sftflow stored as JSON "
                  "(embeddings now live in the embedding cache as float32 rows)", file=sys.stderr)
        self.hits = 0
        self.misses = 0

    @staticmethod
    def make_key(kind: str, model_key: str, content_key: str) -> str:
        return f"{kind}|{model_key}|{content_key}"

    def get_many(self, keys: Iterable[str]) -> dict[str, Any]:
        keys = list(dict.fromkeys(keys))
        found: dict[str, Any] = {}
        for s in range(0, len(keys), 500):      # SQLite caps the number of bound variables
            part = keys[s:s + 500]
            q = f"SELECT key, value FROM scores WHERE key IN ({','.join('?' * len(part))})"
            for k, v in self._db.execute(q, part):
                found[k] = json.loads(v)
        self.hits += len(found)
        self.misses += len(keys) - len(found)
        return found

    def put_many(self, items: dict[str, Any]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO scores (key, value) VALUES (?, ?)",
                             [(k, json.dumps(v)) for k, v in items.items()])
        self._db.commit()

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        self._db.close()
