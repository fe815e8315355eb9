"""Batching: right padding whose labels come from the attention mask.

Padding positions get label -100 because the attention mask says they are padding,
not because their id equals the pad id: SmolLM2's pad token is its end-of-turn
token, and masking by id would stop the model from learning to stop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..chat import IGNORE_INDEX


@dataclass
class PadCollator:
    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            m = self.pad_to_multiple_of
            longest = (longest + m - 1) // m * m
        n = len(features)
        input_ids = torch.full((n, longest), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((n, longest), dtype=torch.long)
        labels = torch.full((n, longest), IGNORE_INDEX, dtype=torch.long)
        for i, f in enumerate(features):
            k = len(f["input_ids"])
            input_ids[i, :k] = torch.tensor(f["input_ids"])
            attention[i, :k] = torch.tensor(f.get("attention_mask") or [1] * k)
            labels[i, :k] = torch.tensor(f["labels"])
        labels = labels.masked_fill(attention == 0, IGNORE_INDEX)
        return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
