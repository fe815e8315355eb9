"""Length-grouped batches come in random order: a short run trains on a fair sample."""

from __future__ import annotations

import torch
from transformers.trainer_pt_utils import LengthGroupedSampler

from sftflow.train.length_sampler import ShuffledLengthGroupedSampler


def _lengths():
    # 30% short records (the demo's replay answers), 70% long ones, shuffled
    g = torch.Generator().manual_seed(1)
    lengths = [int(x) for x in torch.randint(60, 120, (220,), generator=g)] + \
              [int(x) for x in torch.randint(200, 500, (515,), generator=g)]
    perm = torch.randperm(len(lengths), generator=g).tolist()
    return [lengths[i] for i in perm]


def _short_share_of_first(indices, lengths, n):
    return sum(lengths[i] < 150 for i in indices[:n]) / n


def test_a_run_shorter_than_an_epoch_sees_short_records_in_proportion():
    lengths, n = _lengths(), 120           # 30 batches of 4, as the demo trains
    torch.manual_seed(0)
    hf = list(LengthGroupedSampler(4, lengths=lengths))
    torch.manual_seed(0)
    ours = list(ShuffledLengthGroupedSampler(lengths, 4))
    assert sorted(ours) == list(range(len(lengths)))             # every record once
    assert _short_share_of_first(hf, lengths, n) < 0.05           # the bias this sampler removes
    assert 0.15 < _short_share_of_first(ours, lengths, n) < 0.45  # about the pool's 30%


def test_batches_stay_length_homogeneous_and_the_longest_comes_first():
    lengths = _lengths()
    torch.manual_seed(3)
    ours = list(ShuffledLengthGroupedSampler(lengths, 4))
    batches = [ours[i:i + 4] for i in range(0, len(ours), 4)]
    assert max(lengths[i] for i in batches[0]) == max(lengths)
    padded = sum(4 * max(lengths[i] for i in b) for b in batches)
    assert padded / sum(lengths) < 1.05                            # random batches pad ~30%
