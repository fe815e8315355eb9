"""How likely a model is to open its answer with an unwanted text: a lean that greedy answers hide.

A probe on generated answers counts what greedy decoding does, and greedy decoding follows
the majority of what a model was trained on: a model trained on 10% apologetic answers can
write no apology at all while the probability of one has grown tenfold. This scores, for each
prompt, P(the answer starts with one of the opening's texts) under the model: the prompt
rendered exactly as the generation backend renders it (chat template, generation prompt),
then each text's tokens as the model would write them first. The alternatives' probabilities
add up (the config refuses texts that start one another, whose probabilities would overlap).

Reported per side as the mean probability over prompts with a BCa bootstrap interval, and,
with a base, the paired difference (tuned - base) resampled over prompts.
"""

from __future__ import annotations

import math
from typing import Any

# The openings of the shipped apology/hedge probe (sftflow.probes), for ``eval.openings``.
APOLOGY_OPENING = {"name": "apology", "description": "P(the answer opens with an apology or hedge)",
                   "texts": ["I'm sorry", "I am sorry", "Sorry", "I apologize", "I apologise", "My apologies",
                             "Unfortunately", "I'm afraid"]}


def continuation_logprobs(lm, contexts: list[list[int]], continuations: list[list[int]], *, batch_size: int = 8
                          ) -> list[list[float]]:
    """log P(continuation | context) for each context (token ids) and each continuation.

    The prompts are most of the tokens, so each batch of contexts runs once (left-padded) and
    its key/value cache is reused for every continuation: only the continuations' own tokens
    run again, the same numbers as scoring every (context, continuation) in full.
    """
    import copy

    import torch

    from ..backends.greedy_decode import cache_kwarg, left_pad, returned_cache
    if any(not c for c in continuations):
        raise ValueError("an opening has no tokens")
    device = next(lm.parameters()).device
    kw = cache_kwarg(lm)
    out: list[list[float]] = [[0.0] * len(continuations) for _ in contexts]
    order = sorted(range(len(contexts)), key=lambda i: -len(contexts[i]))
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        ids, mask, positions = left_pad([contexts[i] for i in idx], 0, device)
        with torch.no_grad():
            pre = lm(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
        first = torch.log_softmax(pre.logits[:, -1, :].float(), dim=-1)     # predicts each text's first token
        cache, next_pos = returned_cache(pre), mask.sum(-1, keepdim=True)
        for j, cont in enumerate(continuations):
            lp = first[:, cont[0]].clone()
            if len(cont) > 1:
                k = len(cont) - 1
                rest = torch.tensor(cont[:-1], dtype=torch.long, device=device).expand(len(idx), k)
                with torch.no_grad():
                    o = lm(input_ids=rest, attention_mask=torch.cat([mask, mask.new_ones((len(idx), k))], dim=1),
                           position_ids=next_pos + torch.arange(k, device=device), use_cache=True,
                           **{kw: copy.deepcopy(cache)})
                targets = torch.tensor(cont[1:], dtype=torch.long, device=device).expand(len(idx), k)
                lp += torch.log_softmax(o.logits.float(), dim=-1).gather(-1, targets[..., None])[..., 0].sum(-1)
            for r, i in enumerate(idx):
                out[i][j] = float(lp[r])
    return out


def side_openings(specs, lm, tok, prompt_ids: list[list[int]], *, batch_size: int = 8) -> dict[str, list[float]]:
    """Per opening, P(the answer opens with it) for each prompt."""
    out = {}
    for spec in specs:
        conts = [tok(text, add_special_tokens=False)["input_ids"] for text in spec.texts]
        lps = continuation_logprobs(lm, prompt_ids, conts, batch_size=batch_size)
        out[spec.name] = [sum(math.exp(x) for x in row) for row in lps]
    return out


def opening_metrics(specs, sides: dict[str, dict], ids: list[str]) -> tuple[dict[str, Any], list[dict]]:
    """(metrics["openings"], one row per prompt) from each side's ``openings``; ``ids``: the prompts'."""
    from ..intervals import bootstrap_mean
    metrics, rows = {}, []
    for spec in specs:
        m: dict[str, Any] = {"description": spec.description, "texts": list(spec.texts)}
        for side, res in sides.items():
            p = res["openings"][spec.name]
            low, high = bootstrap_mean(p)
            m[side] = {"mean": sum(p) / len(p) if p else float("nan"), "low": low, "high": high, "n": len(p)}
        if "base" in sides:
            d = [t - b for b, t in zip(sides["base"]["openings"][spec.name], sides["tuned"]["openings"][spec.name])]
            low, high = bootstrap_mean(d)
            # the keys of every paired block that gates read (sftflow.evaluate.gates)
            m["paired"] = {"diff": sum(d) / len(d) if d else float("nan"), "diff_low": low, "diff_high": high,
                           "n": len(d)}
        metrics[spec.name] = m
    for i, ex_id in enumerate(ids):
        rows.append({"id": ex_id, **{f"{side}_{spec.name}": res["openings"][spec.name][i]
                                     for spec in specs for side, res in sides.items()}})
    return metrics, rows
