"""Sampling whose random numbers belong to the request, not to its place in a batch.

``generate(do_sample=True)`` draws every row's token from torch's one global generator,
so what a request samples depends on which batch it landed in and on the rows beside
it. A run resumed after a kill asks only the requests the cache lacks: the batches
form differently, and the resumed run would write other answers than an uninterrupted
run of the same command. Here each request carries its own ``torch.Generator``, seeded
from the run's seed and the request's prompt tokens, and the token is drawn by the
exponential race (the Gumbel-max trick): with ``p`` the softmax of the temperature-
scaled, top-p-filtered logits and ``E_i ~ Exp(1)`` independent,
``argmax_i p_i / E_i`` is distributed exactly as ``p`` (P(i wins) = p_i / sum p = p_i).
So this is the same sampling distribution as ``do_sample``, run as greedy decoding over
``log p - log E``; only which random numbers are used changed.

The scores the warpers produce (before the noise) are kept per step, so per-token
log-probabilities are those of the sampling distribution, as with ``do_sample``.
"""

from __future__ import annotations

import hashlib

import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)


def request_seed(seed: int, prompt_ids: list[int]) -> int:
    """A 63-bit seed from the run's seed and the prompt: the same request always draws the same numbers."""
    h = hashlib.sha256(f"{seed}:".encode() + ",".join(map(str, prompt_ids)).encode()).digest()
    return int.from_bytes(h[:8], "big") & ((1 << 63) - 1)


class RowNoise(LogitsProcessor):
    """Adds ``-log E`` (E ~ Exp(1), one generator per row) to the warped scores; keeps the scores."""

    def __init__(self, seeds: list[int]):
        self.generators = [torch.Generator().manual_seed(s) for s in seeds]
        self.clean: list[torch.Tensor] = []        # per step: the scores before the noise

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self.clean.append(scores.detach().clone())
        vocab = scores.shape[-1]
        # Drawn on the CPU from each row's own generator, so the numbers do not depend on the device.
        noise = torch.stack([-torch.empty(vocab).exponential_(generator=g).log() for g in self.generators])
        return scores + noise.to(device=scores.device, dtype=scores.dtype)


def row_sampler(temperature: float, top_p: float, seeds: list[int]) -> tuple[LogitsProcessorList, RowNoise]:
    """Processors for ``generate(do_sample=False, logits_processor=...)``, and the noise step
    (whose ``clean`` scores give the sampling log-probabilities)."""
    noise = RowNoise(seeds)
    steps: list[LogitsProcessor] = [TemperatureLogitsWarper(temperature)]
    if top_p < 1.0:
        steps.append(TopPLogitsWarper(top_p))
    return LogitsProcessorList([*steps, noise]), noise
