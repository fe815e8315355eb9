"""A model's view of a cut-off answer: how likely it is to end its turn where the answer ends.

A finished answer is followed by the chat template's end-of-turn token (``<|im_end|>``
for SmolLM2, ``<|eot_id|>`` for Llama 3, ``<end_of_turn>`` for Gemma); an answer cut in
mid-sentence is one the model would go on writing. So the step encodes each conversation
exactly as training and scoring do (``sftflow.chat.encode`` with ``train_on="last"``,
through ``sftflow.nll``'s encoder: the final assistant turn's supervised tokens end with
that token), runs the model over everything before the token, and reads

    P(end of turn) = softmax(logits at the last response position)[end-of-turn id]

A record is rejected when that probability is under ``min_prob`` (or only flagged, with
``drop: false``). It is the opt-in companion of the rule-based ``truncation`` step: it
needs a model forward per record, and it judges with one model's habits (a model that
never saw an answer format may doubt a complete one), so it is not in the default steps.

Records that cannot be judged are kept, with the reason in ``unjudged``: longer than
``max_length`` tokens, a conversation the template cannot encode, or a template whose
final turn does not end with a special token (nothing to read the probability of).

One model load per step; the records are sorted by length and run in right-padded
batches of ``batch_size`` under ``torch.inference_mode``, with the output projection
computed at the positions read only. A streaming curate run measures each record on
both of its passes; the step remembers what it measured on the first (a float and the
record's key), so the model runs once per record and both passes see the same number.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..schema import Example, content_id
from .config import EndOfTurnParams
from .steps import Decision, Filter


@dataclass
class EndOfTurn:
    """P(end of turn) after one conversation's final answer (``prob`` None when not judged)."""

    prob: float | None
    token: str | None = None       # the template's end-of-turn token, as text
    length: int = 0                # tokens of the rendered conversation
    unjudged: str | None = None    # why there is no probability


@dataclass
class _Row:
    """The tokens before the end-of-turn token and that token's id (``input_ids`` is the name
    ``nll._batches`` sorts and cuts by)."""

    input_ids: list[int]
    target: int


def special_ids(tokenizer) -> set[int]:
    """Ids of the tokenizer's special tokens: the only tokens taken for an end-of-turn marker."""
    ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    for k, tok in (getattr(tokenizer, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            ids.add(int(k))
    return ids


def end_of_turn_index(enc, tokenizer, specials: set[int]) -> int | None:
    """Position of the end-of-turn token of the final trained turn: its last supervised token
    that is not whitespace, when that token is a special token; None otherwise."""
    from ..nll import IGNORE_INDEX
    for k in range(len(enc.labels) - 1, 0, -1):
        if enc.labels[k] == IGNORE_INDEX:
            continue
        tok = enc.input_ids[k]
        if tok in specials:
            return k
        if tokenizer.decode([tok]).strip():
            return None
    return None


def _encode(item, tokenizer, max_length: int | None, template: str | None,
            specials: set[int]) -> tuple[EndOfTurn, _Row | None]:
    from ..chat.render import EncodeError
    from ..nll import LossOptions, _encode_one
    from ..schema import RecordError
    opts = LossOptions(train_on="last", max_length=max_length, template=template)
    try:
        rec, enc = _encode_one(item, tokenizer, opts)
    except (EncodeError, RecordError) as e:
        return EndOfTurn(None, unjudged=f"cannot encode: {e}"), None
    if enc is None:
        return EndOfTurn(None, length=rec.length, unjudged=f"{rec.flag}: {rec.detail}"), None
    k = end_of_turn_index(enc, tokenizer, specials)
    if k is None:
        last = next(t for t, lab in zip(reversed(enc.input_ids), reversed(enc.labels)) if lab != -100)
        return EndOfTurn(None, length=rec.length,
                         unjudged=f"the template ends the turn with {tokenizer.decode([last])!r}, not a special "
                                  "token"), None
    tok = enc.input_ids[k]
    return EndOfTurn(None, token=tokenizer.convert_ids_to_tokens(tok), length=rec.length), _Row(enc.input_ids[:k], tok)


def _keeps_logits(model) -> bool:
    """Whether the model's forward projects only chosen positions (``logits_to_keep``)."""
    try:
        return "logits_to_keep" in inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False


def _batch_probs(model, rows: list[_Row], pad_id: int, device, keep: bool) -> list[float]:
    """P(target | tokens) of each row: one right-padded forward pass."""
    import torch
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, :len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, :len(r.input_ids)] = 1
    last = torch.tensor([len(r.input_ids) - 1 for r in rows])
    targets = torch.tensor([r.target for r in rows])
    kw: dict[str, Any] = {"use_cache": False}
    if keep:
        # Positions kept for every row: the distinct last positions of the batch (at most
        # batch_size of them), so the vocabulary projection runs on those only.
        positions = torch.unique(last)
        kw["logits_to_keep"] = positions.to(device)
        col = torch.searchsorted(positions, last)
    else:
        col = last
    logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), **kw).logits
    picked = logits[torch.arange(len(rows), device=logits.device), col.to(logits.device)].float()
    logp = torch.log_softmax(picked, dim=-1)[torch.arange(len(rows), device=logits.device),
                                             targets.to(logits.device)]
    return logp.exp().double().tolist()


def end_of_turn_probs(model, tokenizer, examples: Iterable[Example | Sequence[dict[str, Any]] | dict], *,
                      max_length: int | None = 1024, batch_size: int = 8, precision: str = "fp32",
                      template: str | None = None) -> list[EndOfTurn]:
    """P(end-of-turn token | the conversation up to and including its final answer), per
    example in input order; records that cannot be judged get ``prob`` None and ``unjudged``."""
    import torch

    from ..nll import _batches, resolve_precision
    specials = special_ids(tokenizer)
    out: list[EndOfTurn] = []
    rows: list[tuple[int, _Row]] = []
    for i, item in enumerate(examples):
        res, row = _encode(item, tokenizer, max_length, template, specials)
        out.append(res)
        if row is not None:
            rows.append((i, row))
    if not rows:
        return out
    rows.sort(key=lambda t: len(t[1].input_ids), reverse=True)
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    keep = _keeps_logits(model)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16,
                              enabled=resolve_precision(precision, device) == "bf16")
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), autocast:
            for chunk in _batches(rows, batch_size):
                for (i, _), p in zip(chunk, _batch_probs(model, [r for _, r in chunk], pad_id, device, keep)):
                    out[i].prob = p if math.isfinite(p) else None
                    if out[i].prob is None:
                        out[i].unjudged = f"the probability is {p}"
    finally:
        model.train(was_training)
    return out


def record_key(ex: Example) -> tuple[str, str]:
    """What identifies a record across the passes of one run: its id and its content."""
    return ex.id, content_id(ex.messages, ex.tools)


def rounded(prob: float) -> float:
    """A probability to 4 significant digits (a cut answer's can be far below 0.0001)."""
    return float(f"{prob:.4g}")


class _Measured(dict):
    """The measurement written into metadata (``eot_prob`` to 4 digits), carrying the exact
    probability the decision compares."""

    prob: float | None = None


class EndOfTurnFilter(Filter):
    name = "end_of_turn"

    def __init__(self, params: EndOfTurnParams | None = None, *, model: str | None = None,
                 model_obj=None, tokenizer=None, device: str | None = None):
        self.p = params or EndOfTurnParams()
        self.model_name = self.p.model or model
        self._model = model_obj
        self._tok = tokenizer
        self._device = device
        self._seen: dict[tuple[str, str], _Measured] = {}

    @property
    def tokenizer(self):
        if self._tok is None:
            from ..models import load_tokenizer
            self._tok = load_tokenizer(self.model_name)
        return self._tok

    @property
    def model(self):
        if self._model is None:
            import torch

            from ..models import load_model
            device = self._device or ("cuda" if torch.cuda.is_available() else "cpu")
            self._model = load_model(self.model_name, device=device).eval()
        return self._model

    def measure_many(self, examples: list[Example]) -> list[dict[str, Any]]:
        keys = [record_key(ex) for ex in examples]
        # A record measured before (the first pass of a streaming run) is not run again;
        # the second pass asks for each record at most once, so its entry is let go.
        found = {j: self._seen.pop(k) for j, k in enumerate(keys) if k in self._seen}
        todo = [j for j in range(len(examples)) if j not in found]
        if todo:
            res = end_of_turn_probs(self.model, self.tokenizer, [examples[j] for j in todo],
                                    max_length=self.p.max_length, batch_size=self.p.batch_size,
                                    precision=self.p.precision)
            for j, r in zip(todo, res):
                m = _Measured(eot_prob=None if r.prob is None else rounded(r.prob))
                m.prob = r.prob
                if r.unjudged:
                    m["unjudged"] = r.unjudged
                elif not self.p.drop:
                    m["flagged"] = r.prob < self.p.min_prob
                found[j] = self._seen[keys[j]] = m
        return [found[j] for j in range(len(examples))]

    def measure(self, ex: Example) -> dict[str, Any]:
        return self.measure_many([ex])[0]

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        prob = getattr(m, "prob", m.get("eot_prob"))
        if prob is None or not self.p.drop or prob >= self.p.min_prob:
            return True
        return False, self.reason(prob), rounded(prob)

    def reason(self, prob: float) -> str:
        return f"ends where the model would go on: P(end of turn) {prob:.3g} < {self.p.min_prob:g}"
