"""Exact shingle sets as Python sets: the reference the vectorised Jaccard is tested against."""

from __future__ import annotations

import numpy as np


class ShingleSets:
    """Exact shingle sets as Python sets, for one-off lookups (reports, tests)."""

    def __init__(self, flat: np.ndarray, offsets: np.ndarray):
        self.flat, self.offsets = flat, offsets
        self._sets: dict[int, frozenset] = {}

    def __getitem__(self, i: int) -> frozenset:
        s = self._sets.get(i)
        if s is None:
            s = frozenset(self.flat[self.offsets[i]:self.offsets[i + 1]].tolist())
            self._sets[i] = s
        return s

    def jaccard(self, i: int, j: int) -> float:
        a, b = self[i], self[j]
        if not a or not b:
            return 0.0
        inter = len(a & b)
        return inter / (len(a) + len(b) - inter)
