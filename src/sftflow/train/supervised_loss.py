"""Causal-LM loss computed only where it is needed.

With a 49K-token vocabulary the logits tensor (batch x length x vocab) is the largest
single cost of a training step, and most positions are masked prompt tokens. We ask
the model for logits only at the positions that predict a supervised token
(``logits_to_keep`` with an index tensor: the union over the batch's rows, exact for
packed single-row batches) and apply cross-entropy to the supervised rows only.
Going through the model's own ``forward`` keeps PEFT, DDP hooks and any head extras
(logit scaling, soft-capping) intact. The result equals the full-head loss (tested).
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F

from ..chat import IGNORE_INDEX


def _base(model):
    m = model
    while hasattr(m, "module") and isinstance(m.module, torch.nn.Module):
        m = m.module
    if hasattr(m, "get_base_model"):
        m = m.get_base_model()
    return m


def accepts_logits_to_keep(model) -> bool:
    try:
        return "logits_to_keep" in inspect.signature(_base(model).forward).parameters
    except (TypeError, ValueError):
        return False


def supervised_token_nll(model, batch: dict[str, torch.Tensor], *, fast_head: bool = True
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """(NLL of every supervised token, the batch row each one belongs to), in row-major order."""
    labels = batch["labels"]
    target = labels[:, 1:]
    mask = target != IGNORE_INDEX
    kwargs = {"input_ids": batch["input_ids"], "attention_mask": batch.get("attention_mask"),
              "use_cache": False}
    if batch.get("position_ids") is not None:
        kwargs["position_ids"] = batch["position_ids"]
    if fast_head and accepts_logits_to_keep(model):
        keep = mask.any(0).nonzero().squeeze(-1)          # positions t whose logits predict t+1
        logits = model(**kwargs, logits_to_keep=keep).logits   # [B, K, V]
        sel = mask[:, keep]
        logits, tgt = logits[sel].float(), target[:, keep][sel]
        rows = sel.nonzero()[:, 0]
    else:
        logits = model(**kwargs).logits[:, :-1][mask].float()
        tgt = target[mask]
        rows = mask.nonzero()[:, 0]
    return F.cross_entropy(logits, tgt, reduction="none"), rows


def supervised_loss_sum(model, batch: dict[str, torch.Tensor], *, fast_head: bool = True
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (sum of token NLL over supervised positions, number of those positions)."""
    nll, _ = supervised_token_nll(model, batch, fast_head=fast_head)
    return nll.sum(), torch.tensor(nll.numel(), device=nll.device)


def supervised_loss_per_row(model, batch: dict[str, torch.Tensor], *, fast_head: bool = True
                            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per batch row: (summed NLL over its supervised tokens, how many there are).

    Evaluation keeps rows apart so that, gathered across processes, the duplicates a
    distributed sampler pads the last batch with can be dropped before summing.
    """
    nll, rows = supervised_token_nll(model, batch, fast_head=fast_head)
    n = batch["labels"].shape[0]
    sums = torch.zeros(n, dtype=nll.dtype, device=nll.device).index_add_(0, rows, nll)
    return sums, torch.bincount(rows, minlength=n)
