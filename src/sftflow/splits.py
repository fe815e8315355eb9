"""Data splits made before any stage touches the data: what chooses never sees what reports.

Three sets, by group. Records derived from one source (paraphrases sharing a response,
instances of one Self-Instruct task, upsampled copies, the turns of one expanded
conversation) carry the same ``metadata["group"]``; a record without one is its own
group (its content id). Whole groups are shuffled with the seed and dealt into
test, then validation, then train, so no group ever sits in two sets: a paraphrase
of a test prompt cannot be trained on, and a copy made by upsampling cannot score
itself on validation.

- **train**: what the model learns from (and what curation and selection see);
- **validation**: what chooses (the best checkpoint, early stopping, probes that pick);
- **test**: what reports; read once, at the end.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


def group_of(example) -> str:
    """The split unit of a record: ``metadata["group"]`` when set, else its own id."""
    g = (example.metadata or {}).get("group")
    return str(g) if g not in (None, "") else f"id:{example.id}"


@dataclass
class Splits:
    train: list
    validation: list
    test: list

    def summary(self) -> dict[str, Any]:
        return {name: {"records": len(rows), "groups": len({group_of(e) for e in rows})}
                for name, rows in (("train", self.train), ("validation", self.validation),
                                   ("test", self.test))}


def _n_groups(fraction: float, n: int) -> int:
    if fraction <= 0:
        return 0
    return max(1, round(n * fraction))


def split_by_group(examples: Sequence, *, validation: float, test: float, seed: int) -> Splits:
    """Seeded three-way split by group. A fraction is a share of the *groups* (0 = none).

    Raises when the fractions leave no training group, so a tiny file fails loudly
    instead of training on nothing.
    """
    for name, f in (("validation", validation), ("test", test)):
        if not 0 <= f < 1:
            raise ValueError(f"{name} fraction must be in [0, 1), got {f}")
    groups: dict[str, list[int]] = {}
    for i, e in enumerate(examples):
        groups.setdefault(group_of(e), []).append(i)
    keys = sorted(groups)                 # sorted first: the result never depends on file order
    random.Random(seed).shuffle(keys)
    n_test, n_val = _n_groups(test, len(keys)), _n_groups(validation, len(keys))
    if n_test + n_val >= len(keys):
        raise ValueError(f"cannot hold out {n_test} test and {n_val} validation groups of {len(keys)}: "
                         "no group would be left to train on")
    test_keys, val_keys = set(keys[:n_test]), set(keys[n_test:n_test + n_val])
    where = {}
    for k, idx in groups.items():
        side = "test" if k in test_keys else "validation" if k in val_keys else "train"
        for i in idx:
            where[i] = side
    out = Splits([], [], [])
    for i, e in enumerate(examples):
        getattr(out, where[i]).append(e)
    return out


def split_heldout(examples, fraction: float, seed: int):
    """Two-way seeded split by group; returns (train, heldout). At least one group held out."""
    s = split_by_group(examples, validation=0.0, test=fraction, seed=seed)
    return s.train, s.test


def shared_groups(a: Iterable, b: Iterable) -> set[str]:
    """Groups present in both collections (empty when the sets are properly separated)."""
    return {group_of(e) for e in a} & {group_of(e) for e in b}


class LeakedTestSet(ValueError):
    """The test set shares records with what trained or chose the model."""


def check_test_unseen(test: Sequence, seen: dict[str, Iterable]) -> None:
    """Refuse to report on a test set that overlaps data that trained or chose the model.

    ``seen`` maps a role ("train", "validation", "select pool", ...) to its records.
    Overlap is by id (same content) or by group (derived from one source).
    """
    test_ids = {e.id for e in test}
    test_groups = {group_of(e) for e in test}
    problems = []
    for role, rows in seen.items():
        rows = list(rows)
        ids = sorted(test_ids & {e.id for e in rows})
        groups = sorted((test_groups & {group_of(e) for e in rows}) - {f"id:{i}" for i in ids})
        if ids:
            problems.append(f"{len(ids)} test record(s) are also in {role} (ids {', '.join(ids[:5])})")
        if groups:
            problems.append(f"{len(groups)} test group(s) also occur in {role} ({', '.join(groups[:5])})")
    if problems:
        raise LeakedTestSet("refusing to evaluate on data the run trained or selected on: " + "; ".join(problems))
