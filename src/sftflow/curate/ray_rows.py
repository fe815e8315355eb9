"""Rows of the curate stage on Ray: ``{order, rec, line}``.

``line`` is empty for a kept record and, for a rejected one, its line of the rejects file
as a local run writes it (``Rejected.to_dict`` of the record, the step, the reason and the
measured value), made by the worker that judged it: rejects never pass through the
driver. A step's rejects are ``{order, line, sub}``; ``sub`` orders the passes of one
step (a filter lists its own rejects before the group members they take along).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine.ray_io import encode, encode_examples
from ..schema import Example
from .steps import reject


def reject_line(ex: Example, step: str, reason: str, value: Any) -> str:
    return encode(reject(ex, step, reason, value).to_dict())


def verdict_rows(batch, exs: list[Example], lines: list[str]) -> dict[str, Any]:
    return {"order": batch["order"], "rec": encode_examples(exs), "line": lines}


def kept_of(ds):
    from ray.data.expressions import col
    return ds.filter(expr=col("line") == "").select_columns(["order", "rec"])


def _with_sub(batch, sub: int) -> dict[str, Any]:
    return {"order": batch["order"], "line": batch["line"], "sub": np.full(len(batch["order"]), sub, np.int64)}


def rejects_of(ds, sub: int = 0):
    from ray.data.expressions import col
    return (ds.filter(expr=col("line") != "").select_columns(["order", "line"])
            .map_batches(_with_sub, fn_kwargs={"sub": sub}, batch_format="numpy"))


def rows_dataset(ray, rows: list[dict[str, Any]], like: dict[str, Any]):
    """``rows`` as a dataset; an empty one keeps the columns of ``like``."""
    return ray.data.from_items(rows) if rows else ray.data.from_items([like]).filter(lambda r: False)


def no_rejects(ray):
    return rows_dataset(ray, [], {"order": 0, "line": "", "sub": 0})
