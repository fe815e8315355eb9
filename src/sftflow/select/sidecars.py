"""Embedding sidecars: the ``.npy`` beside a scored file, and the references into it.

A record's ``metadata["scores"]["embedding"]`` points at a row of a sidecar:
``{"file", "row", "model", "sidecar_sha", "row_sha"}``. The two hashes make a stale
sidecar an error instead of a wrong answer: ``sidecar_sha`` names the array the
reference was written with (another run writing the same file changes it), ``row_sha``
the record id and text the row was computed from (a record edited after scoring
changes it). A row index must be an integer inside the array: numpy would quietly
read ``-1`` as the last row.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..embed import example_text
from ..io.atomic import atomic_open
from ..schema import Example, RecordError


def scores_of(ex: Example) -> dict[str, Any]:
    return ex.metadata.setdefault("scores", {})


def embedding_text(ex: Example) -> str:
    """What is embedded: the conversation's text (role-prefixed turns)."""
    return example_text(ex, "conversation")


def row_sha(ex: Example) -> str:
    """What a sidecar row was computed from: the record's id and its embedded text."""
    return hashlib.sha256(f"{ex.id}\0{embedding_text(ex)}".encode("utf-8", "surrogatepass")).hexdigest()[:16]


def array_sha(emb: np.ndarray) -> str:
    """The content of a sidecar, as stored (float32): a reference names the array it points into."""
    return hashlib.sha256(np.ascontiguousarray(emb, dtype=np.float32).tobytes()).hexdigest()[:16]


def write_sidecar(examples: list[Example], emb: np.ndarray, sidecar: str | Path, model: str | None) -> None:
    """``emb`` (row r = examples[r]) to ``sidecar``, each record pointing at its row.

    A reference carries the sidecar's content hash and its row's record hash: a sidecar
    overwritten by another run, or a record edited after scoring, is caught on load
    instead of handing a record someone else's vector.
    """
    sidecar = Path(sidecar)
    sidecar.parent.mkdir(parents=True, exist_ok=True)
    emb = np.ascontiguousarray(emb, dtype=np.float32)
    with atomic_open(sidecar, "wb") as f:      # whole or not at all
        np.save(f, emb)
    digest = array_sha(emb)
    for r, ex in enumerate(examples):
        scores_of(ex)["embedding"] = {"file": sidecar.name, "row": r, "model": model,
                                      "sidecar_sha": digest, "row_sha": row_sha(ex)}


def attach_embeddings(examples: list[Example], emb: np.ndarray, *, sidecar: str | Path | None,
                      embedder: str | None, method: str) -> None:
    """Store each row in metadata["scores"]["embedding"]: a reference into ``sidecar`` or inline."""
    name = f"{method}:{embedder or 'default'}"
    if sidecar is not None:
        write_sidecar(examples, emb, sidecar, name)
    else:
        for r, ex in enumerate(examples):
            scores_of(ex)["embedding"] = {"vector": emb[r].tolist(), "model": name}


class StaleEmbeddings(RecordError):
    """A sidecar row that does not belong to the record pointing at it (or is not there)."""


def _sidecar(path: Path, arrays: dict[Path, tuple[np.ndarray, str]]) -> tuple[np.ndarray, str]:
    if path not in arrays:
        if not path.exists():
            raise StaleEmbeddings(f"embedding sidecar {path} is missing", field="metadata.scores.embedding")
        try:
            a = np.load(path)
        except (OSError, ValueError) as e:
            raise StaleEmbeddings(f"embedding sidecar {path} is unreadable ({e})",
                                  field="metadata.scores.embedding") from None
        if a.ndim != 2:
            raise StaleEmbeddings(f"embedding sidecar {path} holds a {a.ndim}-d array, not one row per record",
                                  field="metadata.scores.embedding")
        arrays[path] = (a, array_sha(a))
    return arrays[path]


def _sidecar_row(ex: Example, ref: dict, base_dir: Path, arrays: dict) -> np.ndarray:
    path = base_dir / str(ref.get("file"))
    a, digest = _sidecar(path, arrays)
    row = ref.get("row")
    if isinstance(row, bool) or not isinstance(row, int) or not 0 <= row < len(a):
        raise StaleEmbeddings(f"record {ex.id}: row {row!r} is not a row of {path} ({len(a)} rows)",
                              field="metadata.scores.embedding.row")
    if "sidecar_sha" not in ref:
        _notice_once(f"{path}: its references carry no hashes (written by an older sftflow), so a stale "
                     "sidecar cannot be detected; score again with --scores embedding to add them")
    elif ref["sidecar_sha"] != digest:
        raise StaleEmbeddings(f"record {ex.id}: {path} is not the sidecar it was scored with (its content "
                              "changed since: another run wrote it)", field="metadata.scores.embedding")
    elif ref.get("row_sha") != row_sha(ex):
        raise StaleEmbeddings(f"record {ex.id}: its text changed after its embedding was computed",
                              field="metadata.scores.embedding")
    return a[row]


_NOTICES: set[str] = set()


def _notice_once(message: str) -> None:
    if message not in _NOTICES:
        _NOTICES.add(message)
        print(f"warning: {message}", file=sys.stderr)


def load_embeddings(examples: list[Example], base_dir: str | Path,
                    recompute: Callable[[list[Example]], np.ndarray] | None = None) -> np.ndarray:
    """The embedding matrix for ``examples`` from their stored references (sidecar or inline).

    A reference that does not check out (missing or out-of-range row, a sidecar rewritten
    since, a record edited since) is an error naming the record; with ``recompute`` those
    rows are computed again instead, with a notice.
    """
    rows: list[np.ndarray | None] = []
    stale: list[int] = []
    arrays: dict[Path, tuple[np.ndarray, str]] = {}
    for i, ex in enumerate(examples):
        ref = ex.metadata.get("scores", {}).get("embedding")
        if ref is None:
            raise RecordError(f"record {ex.id} has no embedding; score it with --scores embedding",
                              field="metadata.scores.embedding")
        if "vector" in ref:
            rows.append(np.asarray(ref["vector"], dtype=np.float32))
            continue
        try:
            rows.append(_sidecar_row(ex, ref, Path(base_dir), arrays))
        except StaleEmbeddings as e:
            if recompute is None:
                raise StaleEmbeddings(f"{e.reason}; score the file again with --scores embedding",
                                      field=e.field) from None
            _notice_once(f"{e.reason}: computing its embedding again")
            rows.append(None)
            stale.append(i)
    if stale:
        fresh = recompute([examples[i] for i in stale])
        for j, i in enumerate(stale):
            rows[i] = fresh[j]
    return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)
