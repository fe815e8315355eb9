"""Data splits made before any stage touches the data: what chooses never sees what reports."""

from __future__ import annotations

import random


def split_heldout(examples, fraction: float, seed: int):
    """Seeded split; returns (train, heldout). At least one example on each side."""
    idx = list(range(len(examples)))
    random.Random(seed).shuffle(idx)
    n_eval = max(1, round(len(examples) * fraction))
    if n_eval >= len(examples):
        raise ValueError(f"cannot hold out {n_eval} of {len(examples)} examples")
    held = set(idx[:n_eval])
    return ([e for i, e in enumerate(examples) if i not in held],
            [e for i, e in enumerate(examples) if i in held])
