"""Per-request sampling: the same distribution as softmax sampling, and one answer per request
whatever batch it is generated in."""

from __future__ import annotations

import torch

from sftflow.backends import GenParams
from sftflow.backends.row_sampling import RowNoise, request_seed, row_sampler


def test_the_exponential_race_samples_the_softmax():
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0])
    n = 20000
    procs, _ = row_sampler(0.7, 1.0, [request_seed(0, [i]) for i in range(n)])
    picks = procs(torch.zeros((n, 1), dtype=torch.long), logits.repeat(n, 1)).argmax(-1)
    freq = torch.bincount(picks, minlength=4).float() / n
    want = torch.softmax(logits / 0.7, -1)
    assert torch.allclose(freq, want, atol=0.015), (freq, want)


def test_top_p_never_samples_outside_the_nucleus():
    logits = torch.tensor([3.0, 2.9, -5.0, -6.0])        # the first two hold > 0.99 of the mass
    procs, noise = row_sampler(1.0, 0.9, [request_seed(1, [i]) for i in range(2000)])
    picks = procs(torch.zeros((2000, 1), dtype=torch.long), logits.repeat(2000, 1)).argmax(-1)
    assert set(picks.tolist()) == {0, 1}
    assert torch.isinf(noise.clean[0][:, 2:]).all()       # the kept scores are the warped ones


def test_a_row_draws_the_same_numbers_alone_or_beside_others():
    a = RowNoise([5])(torch.zeros((1, 1), dtype=torch.long), torch.zeros((1, 8)))
    b = RowNoise([9, 5, 7])(torch.zeros((3, 1), dtype=torch.long), torch.zeros((3, 8)))
    assert torch.equal(a[0], b[1])


def test_sampled_answers_do_not_depend_on_the_batch(tiny_model_dir):
    from sftflow.backends.transformers_backend import TransformersBackend
    chats = [[{"role": "user", "content": f"Tell me about topic {i} " + "in detail " * i}] for i in range(5)]
    params = GenParams(max_new_tokens=10, temperature=1.0, seed=3)
    together = TransformersBackend(tiny_model_dir, batch_size=5).generate(chats, params)
    alone = TransformersBackend(tiny_model_dir, batch_size=1)
    for i in (0, 3):        # a resumed run asks for a few of them only, in other batches
        assert alone.generate([chats[i]], params)[0].text == together[i].text
    assert len({c.text for c in together}) > 1            # really sampled: the texts differ
