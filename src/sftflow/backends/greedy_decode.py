"""Greedy decoding that lets a finished row go: the evaluation's generation path on CPU.

``model.generate`` keeps every row of a batch in the forward pass until the longest row
ends, and on this kind of machine its per-step overhead is large: SmolLM2-135M on 2 CPU
cores took 219 ms a step for 16 rows through ``generate`` against 137 ms for the same
forward calls made directly. A decode step on a small model costs mostly a fixed read of
the weights (66 ms for 1 row, 115-195 ms for 16-32), so what pays is many rows per step
and no step spent on a row that has ended. This loop does both: the prompts are prefilled a
few rows at a time (each chunk padded only to its own longest prompt) and joined into one
batch, each step runs the rows still going, and a row that emits a stop token (or completes
a stop string) leaves the batch and its cache rows with it.

It is written by hand because neither ``generate`` nor transformers' continuous batching
(``generate_batch``: 67 tok/s here, no faster than ``generate``) drops rows on CPU. Tokens
are the ones ``generate`` picks: the same left padding, positions counted from the first
real token, the argmax of the same logits (``tests/unit/test_greedy_decode.py`` compares
them on a tiny model). Sampling and log-probabilities still go through ``generate``.
"""

from __future__ import annotations

import inspect
from typing import Any


def cache_kwarg(lm) -> str:
    """The forward argument that takes the KV cache (``cache`` in newer transformers)."""
    base = lm.get_base_model() if hasattr(lm, "get_base_model") else lm
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def returned_cache(out):
    cache = getattr(out, "cache", None)
    return cache if cache is not None else out.past_key_values


def greedy_generate(lm, rows: list[list[int]], *, pad_id: int, stop_ids: list[int], max_new_tokens: int,
                    stop_texts: list[str] | None = None, decode=None, prefill_rows: int = 8) -> list[list[int]]:
    """The new token ids of each row (ending with its stop token when it emitted one).

    ``stop_texts`` with ``decode`` (ids -> text): a row also ends once its generated text
    contains one of them, as ``generate(stop_strings=...)`` does; the caller cuts the text.
    Rows are prefilled ``prefill_rows`` at a time (see ``_prefill``): pass them sorted by length.
    """
    import torch
    if not rows or max_new_tokens < 1:
        return [[] for _ in rows]
    device = next(lm.parameters()).device
    n = len(rows)
    width = max(len(r) for r in rows)
    attn = torch.zeros((n, width), dtype=torch.long, device=device)
    for i, ids in enumerate(rows):
        attn[i, width - len(ids):] = 1
    stops = torch.tensor(sorted(set(stop_ids)), dtype=torch.long, device=device)
    kw = cache_kwarg(lm)
    longest_stop = max((len(s) for s in stop_texts or [] if s), default=0)
    out_ids: list[list[int]] = [[] for _ in rows]
    alive = list(range(n))                       # request index of each batch row
    with torch.no_grad():
        cache, logits = _prefill(lm, rows, pad_id, device, prefill_rows)
        # generate's positions: counted from each row's first real token
        next_pos = attn.sum(-1, keepdim=True)
        for step in range(max_new_tokens):
            nxt = logits.argmax(-1)
            keep = []
            for r, i in enumerate(alive):
                tok = int(nxt[r])
                out_ids[i].append(tok)
                ended = bool((stops == tok).any()) or step + 1 == max_new_tokens
                if not ended and longest_stop:
                    # the last few tokens hold any stop string that has just been completed
                    tail = decode(out_ids[i][-(longest_stop + 2):])
                    ended = any(s and s in tail for s in stop_texts)
                if not ended:
                    keep.append(r)
            if not keep:
                break
            if len(keep) < len(alive):
                sel = torch.tensor(keep, dtype=torch.long, device=device)
                cache.batch_select_indices(sel)
                attn, next_pos, nxt = attn[sel], next_pos[sel], nxt[sel]
                alive = [alive[r] for r in keep]
            attn = torch.cat([attn, attn.new_ones((len(alive), 1))], dim=1)
            out = lm(input_ids=nxt[:, None], attention_mask=attn, position_ids=next_pos, use_cache=True,
                     **{kw: cache})
            cache, next_pos = returned_cache(out), next_pos + 1
            logits = out.logits[:, -1, :]
    return out_ids


def left_pad(rows: list[list[int]], pad_id: int, device=None):
    """(input ids, attention mask, positions) of token rows as one left-padded batch.

    Positions count from each row's first real token, as ``generate`` counts them, so a padded
    row computes what it computes alone.
    """
    import torch
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        attn[i, width - len(r):] = 1
    positions = (attn.cumsum(-1) - 1).masked_fill(attn == 0, 1)
    if device is not None:
        ids, attn, positions = ids.to(device), attn.to(device), positions.to(device)
    return ids, attn, positions


def _prefill(lm, rows, pad_id: int, device, chunk: int):
    """(cache, last logits) of all rows, as one left-padded batch.

    The prompt pass costs every position of the padded batch, so one batch of prompts
    from 60 to 370 tokens spends most of it on padding. Rows are run ``chunk`` at a time
    (each chunk padded to its own longest row) and each layer's keys and values are then
    left-padded with zeros to the longest prompt and joined: the padded positions are masked,
    and each row's positions count from its own first token, so the joined cache is the one
    a single padded pass builds. Caches other than plain per-layer key/value tensors (sliding
    windows) take the single pass.
    """
    import torch
    import torch.nn.functional as F
    width = max(len(r) for r in rows)
    parts = []
    for s in range(0, len(rows), max(1, chunk)):
        ids, attn, positions = left_pad(rows[s:s + chunk], pad_id, device)
        out = lm(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1)
        parts.append((returned_cache(out), out.logits[:, -1, :], ids.shape[1]))
    if len(parts) == 1:
        return parts[0][0], parts[0][1]
    layers = [getattr(c, "layers", None) for c, _, _ in parts]
    plain = all(ls is not None and all(type(x).__name__ == "DynamicLayer" for x in ls) for ls in layers)
    if not plain:
        ids, attn, positions = left_pad(rows, pad_id, device)
        out = lm(input_ids=ids, attention_mask=attn, position_ids=positions, use_cache=True, logits_to_keep=1)
        return returned_cache(out), out.logits[:, -1, :]
    cache = parts[0][0]
    for li, layer in enumerate(cache.layers):
        pad = lambda t, w: F.pad(t, (0, 0, width - w, 0))  # noqa: E731  [B, H, T, D]: zeros before T
        layer.keys = torch.cat([pad(c.layers[li].keys, w) for c, _, w in parts], dim=0)
        layer.values = torch.cat([pad(c.layers[li].values, w) for c, _, w in parts], dim=0)
    return cache, torch.cat([lg for _, lg, _ in parts], dim=0)


def supported(lm: Any) -> bool:
    """Models whose cache can drop rows (every transformers ``DynamicCache``)."""
    try:
        from transformers import DynamicCache
    except ImportError:
        return False
    return hasattr(DynamicCache, "batch_select_indices") and not getattr(lm.config, "is_encoder_decoder", False)
