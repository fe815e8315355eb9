"""User-supplied ids checked across every input file on Ray, as the local reader checks them.

Locally one id registry sees the files in order: the first record with an id owns it, a
later one is a read reject naming both places (``duplicate_ids: error``) or is renamed
``ID.k`` for its k-th occurrence with a note (``reid``). On Ray each file is read by its
own task, so a read task only notes each record's user id (``SeenIds``), and then:

1. the records with a user id are grouped by it (a shuffle of small rows: order, id,
   place); a group of one is the common case and gives nothing;
2. a bigger group, sorted by input order, gives a decision for every member but the
   first: the reject's text or the new id. Decisions are as many as the repeats, so they
   come to the driver and go back to the workers with the records;
3. a rejected record's raw line is read again from its file (one task per file that has
   any), since the reject keeps the line as it was, like the local one.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from ..io import Rejected
from ..io.containers import iter_raw, reject_raw
from ..io.writers import _jsonable
from ..schema import content_id


class SeenIds:
    """Stands in for the reader's id registry inside one read task: decides nothing, notes
    the user id of the record just read (the registry's own test of what counts as one)."""

    NONE = ("", "", 0, False)

    def __init__(self):
        self._last: tuple[str, str, int, bool] = self.NONE

    def check(self, ex, rec: dict[str, Any], where: str) -> None:
        user_id = rec.get("id")
        if user_id is None or user_id == "" or str(user_id) == content_id(ex.messages, ex.tools):
            self._last = self.NONE
            return
        # Whether the record brought its own _source: the reader adds one after this check,
        # so a renamed record's note goes before the reader's _source, not after.
        self._last = (json.dumps(user_id, default=_jsonable), where, int(where.rsplit(" ", 1)[1]),
                      "_source" in ex.metadata)

    def take(self) -> tuple[str, str, int, bool]:
        out, self._last = self._last, self.NONE
        return out


def _decide(batch: dict[str, np.ndarray], policy: str) -> dict[str, Any]:
    """One id's records (a groupby group): a decision for each after the first in input order."""
    idx = np.argsort(batch["order"], kind="stable")
    first = str(batch["where"][idx[0]])
    key = str(json.loads(batch["uid"][idx[0]]))
    out: dict[str, list] = {"order": [], "decision": []}
    for k, i in enumerate(idx[1:], start=2):
        if policy == "error":
            d = {"reject": f"{batch['where'][i]}: field 'id': duplicate id {key!r}: also at {first}",
                 "line": int(batch["line"][i])}
        else:
            d = {"new": f"{key}.{k}", "uid": str(batch["uid"][i]), "first": first,
                 "own_source": bool(batch["own_source"][i])}
        out["order"].append(int(batch["order"][i]))
        out["decision"].append(json.dumps(d))
    return {"order": np.array(out["order"], dtype=np.int64), "decision": np.array(out["decision"], dtype=object)}


def _apply(batch: dict[str, np.ndarray], decisions: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Drop the rejected repeats, rename the re-ided ones (the registry's ``reid`` rule)."""
    orders, recs = [], []
    for o, rec in zip(batch["order"], batch["rec"]):
        d = decisions.get(int(o))
        if d is not None and "reject" in d:
            continue
        if d is not None:
            r = json.loads(rec)
            user_id, key = json.loads(d["uid"]), str(json.loads(d["uid"]))
            if r["id"] == key:
                r["id"] = d["new"]
            if r["metadata"].get("id") == user_id:
                r["metadata"]["id"] = d["new"]
            meta = r["metadata"]
            source = None if d["own_source"] else meta.pop("_source", None)
            meta["_reid"] = {"original_id": key, "first_seen": d["first"],
                             "note": "id repeated within the input; renamed"}
            if source is not None:
                meta["_source"] = source
            rec = json.dumps(r, ensure_ascii=False, default=_jsonable)
        orders.append(o)
        recs.append(rec)
    return {"order": np.array(orders, dtype=np.int64), "rec": np.array(recs, dtype=object)}


def _raw_lines(row: dict[str, Any]) -> dict[str, Any]:
    """The raw text a read reject keeps, for the wanted lines of one file."""
    wanted = set(json.loads(row["lines"]))
    raws = {}
    for raw in iter_raw(Path(row["path"])):
        if raw.n in wanted:
            raws[raw.n] = raw.raw if raw.raw is not None else reject_raw(raw.rec)
    return {"file_no": row["file_no"], "raws": json.dumps(raws)}


def resolve_duplicate_ids(ray, records, files: list[Path], policy: str):
    """(records with the repeats dropped or renamed, [(sort key, read reject)])."""
    from ray.data.expressions import col

    from .ray_io import LINE_BITS
    with_ids = records.filter(expr=col("uid") != "").select_columns(["order", "uid", "where", "line",
                                                                             "own_source"])
    plain = records.select_columns(["order", "rec"])
    if with_ids.count() < 2:
        return plain, []
    found = (with_ids.groupby("uid").map_groups(_decide, fn_kwargs={"policy": policy}, batch_format="numpy")
             .take_all())
    if not found:
        return plain, []
    decisions = {int(r["order"]): json.loads(r["decision"]) for r in found}
    kept = plain.map_batches(_apply, fn_kwargs={"decisions": decisions}, batch_format="numpy")
    rejects = {o: d for o, d in decisions.items() if "reject" in d}
    if not rejects:
        return kept, []
    lines: dict[int, list[int]] = defaultdict(list)
    for o, d in rejects.items():
        lines[o >> LINE_BITS].append(d["line"])
    items = [{"file_no": f, "path": str(files[f]), "lines": json.dumps(ls)} for f, ls in lines.items()]
    raws = {int(r["file_no"]): {int(k): v for k, v in json.loads(r["raws"]).items()}
            for r in ray.data.from_items(items, override_num_blocks=len(items)).map(_raw_lines).take_all()}
    out = []
    for o, d in rejects.items():
        f, line = o >> LINE_BITS, d["line"]
        out.append(((f << LINE_BITS) | line,
                    Rejected(record={"raw": raws[f][line]}, step="read", reason=d["reject"],
                             source=str(files[f]), line=line)))
    return kept, out
