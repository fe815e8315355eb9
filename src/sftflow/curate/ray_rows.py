"""Rows of the curate stage on Ray: ``{order, rec, verdict, value}``, and back to Rejected.

``verdict`` is empty for a kept record and the reason for a rejected one; ``value`` is
the measured value as JSON text. Sorting rejects by ``order`` gives the local order.
"""

from __future__ import annotations

import json
from typing import Any

from ..engine.ray_io import encode_examples, gather_sorted
from ..io import Rejected
from ..schema import Example
from .steps import reject


def verdict_rows(batch, exs: list[Example], verdicts: list[str], values: list[Any]) -> dict[str, Any]:
    return {"order": batch["order"], "rec": encode_examples(exs), "verdict": verdicts,
            "value": [json.dumps(v, default=str) for v in values]}


def rejected_row(row: dict[str, Any], step: str) -> Rejected:
    return reject(Example.from_dict(json.loads(row["rec"])), step, row["verdict"], json.loads(row["value"]))


def rejects_of(ds, step: str) -> list[Rejected]:
    return [rejected_row(r, step) for r in gather_sorted(ds.filter(lambda r: r["verdict"] != ""))]


def kept_of(ds):
    return ds.filter(lambda r: r["verdict"] == "").select_columns(["order", "rec"])
