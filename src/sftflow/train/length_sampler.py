"""Length-grouped batches in random order, so a run shorter than an epoch trains on a fair sample.

transformers' ``LengthGroupedSampler`` cuts a random permutation into megabatches (up to
50 batches each), sorts each megabatch by length *descending* and emits its batches in that
order. Batches pad little, but a run that stops inside the first megabatch trains only on
its longest records. The demo stops after 30 batches of 4, inside a megabatch of 180: its
general replay answers are short (median 359 characters of JSON against 696 for the domain
conversations), so they sat at the end of the megabatch and were hardly trained on, and
the general response loss rose 5-8% where it should have held.

This sampler forms the same length-homogeneous batches and then shuffles their order
(the longest batch stays first, as transformers keeps it, so a run that runs out of memory
does so at once): any prefix of the batches is a random sample of batches.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler
from transformers.trainer_pt_utils import get_length_grouped_indices


class ShuffledLengthGroupedSampler(Sampler):
    def __init__(self, lengths: list[int], batch_size: int, generator: torch.Generator | None = None):
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.generator = generator

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        # The same global torch RNG transformers' sampler draws from (the trainer seeds it), so a
        # resumed run skips into the same order.
        order = get_length_grouped_indices(self.lengths, self.batch_size, generator=self.generator)
        b = self.batch_size
        batches = [order[i:i + b] for i in range(0, len(order), b)]
        # a short last batch stays last: the loader cuts the stream every batch_size indices
        tail = [batches.pop()] if len(batches) > 1 and len(batches[-1]) < b else []
        rest = batches[1:]
        perm = torch.randperm(len(rest), generator=self.generator).tolist()
        return iter([i for batch in [batches[0]] + [rest[k] for k in perm] + tail for i in batch])
