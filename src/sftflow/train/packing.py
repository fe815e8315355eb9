"""Packing: several examples per row, attention kept inside each example.

Best-fit decreasing puts examples (longest first) into the fullest row that still
has room, so rows of at most ``capacity`` tokens end up nearly full and padding
almost vanishes. Each packed example's ``position_ids`` restart at 0; with no 2D
attention mask, transformers reads those restarts and builds a block-diagonal causal
mask, so no token attends across an example boundary and per-example losses equal
the unpacked ones (tested). Rows are bounded on purpose: attention cost grows with
the square of the row length, which on a CPU outweighs what one huge row saves.
Short rows in a batch are padded with a block of their own (positions restarting at
0, labels -100), which keeps the mask block-diagonal.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import torch

from ..chat import IGNORE_INDEX


def best_fit_decreasing(lengths: list[int], capacity: int) -> list[list[int]]:
    """Bins of indices whose lengths sum to <= capacity; longest items placed first."""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    free: list[tuple[int, int]] = []        # sorted (remaining space, bin id)
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example {i} has {n} tokens > pack capacity {capacity}")
        k = bisect.bisect_left(free, (n, -1))
        if k < len(free):
            space, b = free.pop(k)
            bins[b].append(i)
            bisect.insort(free, (space - n, b))
        else:
            bins.append([i])
            bisect.insort(free, (capacity - n, len(bins) - 1))
    return bins


def pack_rows(rows: list[dict[str, list[int]]], capacity: int) -> list[dict[str, list[int]]]:
    """Concatenate encoded examples into packed rows with restarting position ids."""
    out = []
    for b in best_fit_decreasing([len(r["input_ids"]) for r in rows], capacity):
        ids, labels, pos, lens = [], [], [], []
        for i in sorted(b):
            r = rows[i]
            ids += r["input_ids"]
            lab = list(r["labels"])
            lab[0] = IGNORE_INDEX          # never predict an example from the previous one
            labels += lab
            pos += list(range(len(r["input_ids"])))
            lens.append(len(r["input_ids"]))
        out.append({"input_ids": ids, "labels": labels, "position_ids": pos, "seq_lens": lens})
    return out


@dataclass
class PackedCollator:
    pad_token_id: int

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        n = len(features)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((n, longest), dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            input_ids[i, :k] = torch.tensor(f["input_ids"])
            labels[i, :k] = torch.tensor(f["labels"])
            position_ids[i, :k] = torch.tensor(f["position_ids"])
            position_ids[i, k:] = torch.arange(longest - k)      # padding is a block of its own
        return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids}
