"""Per-example response loss with the training masks: the one place sftflow computes it.

Scoring (perplexity, IFD, option probabilities) and held-out evaluation all reduce to
"sum of negative log-likelihood over the supervised tokens of one example". Doing it
here, once, means every number uses the same chat template and the same masks as
training (``sftflow.chat.encode``), and the same speed levers:

* **Length-sorted batches.** Examples are sorted by token count (longest first, so a
  memory problem shows up on the first batch, not after an hour), and a batch ends
  early where the next example is under 3/4 of its longest, so little compute goes
  to padding even in a small or mixed set. Padding is on the right and masked by the
  attention mask.
* **LM head only at scored positions.** For a 135M model with a 49k vocabulary the
  output projection (576 x 49,152) is ~21% of the forward FLOPs, yet only the
  response tokens are scored. We run the decoder, gather the hidden states that
  predict a supervised token, and project only those. Some families post-process
  logits (Gemma's soft-capping, Cohere's logit scale); rather than keep a list, the
  shortcut is checked once per model against the model's own forward on a short
  example, and a model that disagrees is scored with the full forward.
* **A shared prefix is computed once.** Examples often start with the same tokens
  (the template's default system prompt; for IFD's "response alone" everything up to
  the response). The keys/values of the start all examples of a call share are
  computed once and repeated for each batch (a batch that shares a longer start gets
  its own), and only the suffixes run through the model.
* **Optional bf16 autocast** where the hardware has native bf16 (AVX512-BF16/AMX
  Xeons, GPUs); log-softmax and the sums stay in fp32.

Nothing is ever replaced by a default: an example that does not fit ``max_length``,
whose loss is NaN/inf, or that has no supervised token gets a ``flag`` and ``mean`` NaN.
"""

from __future__ import annotations

import copy
import math
import weakref
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from .schema import Example, content_id

Flag = Literal["too_long", "nonfinite", "no_tokens"]
Precision = Literal["fp32", "bf16", "auto"]
IGNORE_INDEX = -100
_HEAD_ROWS = 1024          # scored positions projected at once (bounds the logits buffer)
_MIN_EXTRA_PREFIX = 16     # a batch recomputes its own prefix only when it is this much longer
_MIN_FILL = 0.75           # a row shorter than this share of its batch's longest starts a new batch


def _batches(encs, batch_size: int):
    """Consecutive runs of the length-sorted (longest first) list, at most ``batch_size``
    rows, cut early where the next row would be mostly padding: a few records of very
    different lengths would otherwise spend most of a batch's compute on pad tokens."""
    i = 0
    while i < len(encs):
        floor = _MIN_FILL * len(encs[i][1].input_ids)
        j = i + 1
        while j < len(encs) and j - i < batch_size and len(encs[j][1].input_ids) >= floor:
            j += 1
        yield encs[i:j]
        i = j


@dataclass
class ExampleLoss:
    id: str
    loss_sum: float          # summed NLL over supervised tokens (nats)
    n_tokens: int            # supervised tokens
    mean: float              # loss_sum / n_tokens; NaN when flagged
    flag: Flag | None = None
    length: int = 0          # total tokens of the rendered example
    detail: str = ""         # why it was flagged

    @property
    def ok(self) -> bool:
        return self.flag is None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "loss_sum": self.loss_sum, "n_tokens": self.n_tokens,
                "mean": self.mean, "flag": self.flag, "length": self.length, "detail": self.detail}


def _messages_and_id(item) -> tuple[list[dict[str, str]], str]:
    if isinstance(item, Example):
        return item.messages, item.id
    if isinstance(item, dict) and "messages" in item:        # Example.to_dict() rows
        return item["messages"], item.get("id") or content_id(item["messages"])
    return list(item), content_id(list(item))


def resolve_precision(precision: Precision, device) -> str:
    """'auto' -> bf16 on CUDA with bf16 or on a CPU with native bf16 matmuls, else fp32."""
    import torch
    if precision in ("fp32", "bf16"):
        return precision
    if precision != "auto":
        raise ValueError(f"precision must be 'fp32', 'bf16' or 'auto', not {precision!r}")
    dev = torch.device(device)
    if dev.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    if dev.type == "cpu":
        # Only native bf16 (AVX512-BF16 or AMX) is faster; oneDNN *emulates* bf16 on plain
        # AVX-512, which is ~3x slower than fp32 (measured on an Ice Lake Xeon).
        try:
            return "bf16" if (torch.cpu._is_avx512_bf16_supported()
                              or torch.cpu._is_amx_tile_supported()) else "fp32"
        except AttributeError:
            return "fp32"
    return "fp32"


def _unwrap(model):
    # PEFT wraps the causal LM; its base model keeps the injected adapter layers.
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def _split_model(model):
    """(decoder, head) when the model looks like decoder -> linear head; else None."""
    m = _unwrap(model)
    head = m.get_output_embeddings() if hasattr(m, "get_output_embeddings") else None
    decoder = getattr(m, "base_model", None)
    if head is None or decoder is None or decoder is m:
        return None
    return decoder, head


# model -> bool: does decoder + head reproduce the model's own logits?
_HEAD_OK: weakref.WeakKeyDictionary[Any, bool] = weakref.WeakKeyDictionary()


def _shared_prefix(encs, min_len: int = 4) -> int:
    """Tokens every row starts with, stopping before the first scored position of any row
    (the hidden state that predicts a scored token must come from the suffix pass)."""
    first = encs[0].input_ids
    n = min(len(e.input_ids) for e in encs)
    for e in encs[1:]:
        ids = e.input_ids
        k = 0
        while k < n and ids[k] == first[k]:
            k += 1
        n = k
    for e in encs:
        j = next(i for i, x in enumerate(e.labels) if x != IGNORE_INDEX and i > 0)
        n = min(n, j - 1)
    return n if n >= min_len and len(encs) > 1 else 0


def _batch_tensors(encs, pad_id: int, device, start: int = 0):
    """Right-padded ids / mask / labels of the rows from token ``start`` on."""
    import torch
    width = max(len(e.input_ids) for e in encs) - start
    ids = torch.full((len(encs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(encs), width), dtype=torch.long)
    labels = torch.full((len(encs), width), IGNORE_INDEX, dtype=torch.long)
    for r, e in enumerate(encs):
        n = len(e.input_ids) - start
        ids[r, :n] = torch.tensor(e.input_ids[start:])
        mask[r, :n] = 1
        labels[r, :n] = torch.tensor(e.labels[start:])
    return ids.to(device), mask.to(device), labels.to(device)


def _prefix_cache(model, prefix: list[int], device, *, fast: bool):
    """Keys/values of the token ids ``prefix``, computed once and copied for each batch."""
    import torch
    net = _split_model(model)[0] if fast else model
    return net(input_ids=torch.tensor([prefix], device=device), use_cache=True).cache


def _token_nll(model, ids, mask, labels, *, fast: bool, past=None):
    """NLL of every supervised target token: returns (row index, nll) tensors.

    ``past`` holds the keys/values of a start shared by every row and left out of
    ``ids`` (batch dimension 1): it is copied and repeated for the batch, never mutated.
    """
    import torch
    import torch.nn.functional as F
    # Token t is predicted by the hidden state at t-1.
    targets = labels[:, 1:]
    rows, cols = (targets != IGNORE_INDEX).nonzero(as_tuple=True)
    tgt = targets[rows, cols]
    net = _split_model(model)[0] if fast else model
    kw: dict[str, Any] = {"use_cache": False}
    if past is not None:
        past = copy.deepcopy(past)
        if ids.shape[0] > 1:
            past.batch_repeat_interleave(ids.shape[0])
        # ``cache`` is the keyword transformers 5 takes on every causal LM and decoder
        # (``past_key_values`` is deprecated there and warns on each call).
        kw = {"cache": past, "use_cache": True}
        mask = torch.cat([mask.new_ones((ids.shape[0], past.get_seq_length())), mask], dim=1)
    out = net(input_ids=ids, attention_mask=mask, **kw)
    if fast:
        head = _split_model(model)[1]
        picked = out.last_hidden_state[rows, cols]     # (n_scored, d): only these reach the head
        nll = torch.empty(len(tgt), dtype=torch.float32, device=ids.device)
        for s in range(0, len(tgt), _HEAD_ROWS):
            logits = head(picked[s:s + _HEAD_ROWS]).float()
            nll[s:s + _HEAD_ROWS] = F.cross_entropy(logits, tgt[s:s + _HEAD_ROWS], reduction="none")
        return rows, nll
    return rows, F.cross_entropy(out.logits[:, :-1][rows, cols].float(), tgt, reduction="none")


def _head_shortcut_ok(model, enc, pad_id, device) -> bool:
    """Check decoder+head against the model's own forward once, on a short example."""
    import torch
    if _split_model(model) is None:
        return False
    key = _unwrap(model)
    if key in _HEAD_OK:
        return _HEAD_OK[key]
    ids, mask, labels = _batch_tensors([enc], pad_id, device)
    _, a = _token_nll(model, ids, mask, labels, fast=True)
    _, b = _token_nll(model, ids, mask, labels, fast=False)
    ok = bool(torch.allclose(a, b, rtol=1e-3, atol=1e-3))
    _HEAD_OK[key] = ok
    return ok


@dataclass(frozen=True)
class LossOptions:
    """How examples are scored: which tokens, how long, how many at once, in what precision.

    ``train_on`` picks the supervised tokens exactly as training does ("last": the final
    assistant turn and its end-of-turn token). With ``truncate=False`` (default) an
    example longer than ``max_length`` is flagged ``too_long`` rather than scored on a
    shortened context; ``truncate=True`` drops the oldest turns first as training does.
    """

    train_on: str = "last"
    max_length: int | None = None
    batch_size: int = 8
    precision: Precision = "fp32"
    template: str | None = None
    truncate: bool = False
    share_prefix: bool = True


def _flagged(ex_id: str, flag: Flag, detail: str, *, n_tokens: int = 0, length: int = 0) -> ExampleLoss:
    return ExampleLoss(ex_id, math.nan, n_tokens, math.nan, flag, length=length, detail=detail)


def _encode_one(item, tokenizer, opts: LossOptions) -> tuple[ExampleLoss, Any]:
    """(record, encoding) of one example; the encoding is None when the record is flagged."""
    from .chat import ExampleTooLong, NoSupervisedTokens, encode

    msgs, ex_id = _messages_and_id(item)
    tools = item.tools if isinstance(item, Example) else item.get("tools") if isinstance(item, dict) else None
    try:
        enc = encode(msgs, tokenizer, tools=tools, train_on=opts.train_on, template=opts.template,
                     max_length=opts.max_length if opts.truncate else None)
    except ExampleTooLong as e:
        return _flagged(ex_id, "too_long", str(e)), None
    except NoSupervisedTokens as e:
        return _flagged(ex_id, "no_tokens", str(e)), None
    n_sup = sum(1 for x in enc.labels[1:] if x != IGNORE_INDEX)
    length = len(enc.input_ids)
    if opts.max_length is not None and length > opts.max_length:
        return _flagged(ex_id, "too_long", f"{length} tokens > max_length {opts.max_length}",
                        n_tokens=n_sup, length=length), None
    if n_sup == 0:      # only the first token supervised: nothing predicts it
        return _flagged(ex_id, "no_tokens", "no supervised token after the first position", length=length), None
    return ExampleLoss(ex_id, math.nan, n_sup, math.nan, None, length=length), enc


def _encode_all(items: list, tokenizer, opts: LossOptions) -> tuple[list[ExampleLoss], list[tuple[int, Any]]]:
    """Records in input order, and the (index, encoding) pairs to score sorted longest first."""
    out: list[ExampleLoss] = []
    encs: list[tuple[int, Any]] = []
    for i, item in enumerate(items):
        rec, enc = _encode_one(item, tokenizer, opts)
        out.append(rec)
        if enc is not None:
            encs.append((i, enc))
    encs.sort(key=lambda t: len(t[1].input_ids), reverse=True)
    return out, encs


@dataclass
class _Scoring:
    """What every batch of one call shares: where to run, how, and the common start."""

    model: Any
    device: Any
    pad_id: int
    fast: bool                 # decoder + head at scored positions only
    share_prefix: bool
    start: int = 0             # tokens every example shares ...
    past: Any = None           # ... and their keys/values, computed once

    def batch_prefix(self, batch) -> tuple[int, Any]:
        """The start this batch skips: the call's, or its own when it shares much more."""
        b_start = _shared_prefix(batch) if self.share_prefix else 0
        if b_start >= self.start + _MIN_EXTRA_PREFIX:
            return b_start, _prefix_cache(self.model, batch[0].input_ids[:b_start], self.device, fast=self.fast)
        return self.start, self.past


def _prepare(model, tokenizer, encs, opts: LossOptions) -> _Scoring:
    """Check the head shortcut once, then compute the keys/values of the start all examples
    share (typically the template's system prompt). Runs inside inference mode."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    fast = _head_shortcut_ok(model, encs[-1][1], pad_id, device)
    run = _Scoring(model, device, pad_id, fast, opts.share_prefix)
    if opts.share_prefix:
        run.start = _shared_prefix([e for _, e in encs])
    if run.start:
        run.past = _prefix_cache(model, encs[0][1].input_ids[:run.start], device, fast=fast)
    return run


def _batch_sums(run: _Scoring, batch) -> list[float]:
    """Summed NLL over each row's supervised tokens (float64 accumulation)."""
    import torch

    start, past = run.batch_prefix(batch)
    ids, mask, labels = _batch_tensors(batch, run.pad_id, run.device, start)
    rows, nll = _token_nll(run.model, ids, mask, labels, fast=run.fast, past=past)
    sums = torch.zeros(len(batch), dtype=torch.float64, device=nll.device)
    sums.index_add_(0, rows, nll.double())
    return sums.tolist()


def _record_sum(rec: ExampleLoss, total: float) -> None:
    rec.loss_sum = total
    if math.isfinite(total):
        rec.mean = total / rec.n_tokens
    else:
        rec.flag, rec.detail = "nonfinite", f"loss sum is {total}"


def _score_batches(run: _Scoring, encs, out: list[ExampleLoss], batch_size: int, advance) -> None:
    for chunk in _batches(encs, batch_size):
        for (i, _), total in zip(chunk, _batch_sums(run, [e for _, e in chunk])):
            _record_sum(out[i], total)
        advance(len(chunk))


@contextmanager
def _progress(enabled: bool, total: int, on_batch: Callable[[int], None] | None):
    """A callable advancing a transient bar (when asked) and the caller's own display."""
    bar = task = None
    if enabled:
        from rich.progress import Progress
        bar = Progress(transient=True)
        task = bar.add_task("scoring", total=total)
        bar.start()

    def advance(n: int) -> None:
        if bar is not None:
            bar.advance(task, n)
        if on_batch is not None:
            on_batch(n)
    try:
        yield advance
    finally:
        if bar is not None:
            bar.stop()


def example_losses(model, tokenizer, examples: Iterable[Example | Sequence[dict[str, str]] | dict],
                   options: LossOptions | None = None, *, progress: bool = False,
                   on_batch: Callable[[int], None] | None = None) -> list[ExampleLoss]:
    """Summed and mean response NLL per example, in input order (see ``LossOptions``).

    ``on_batch(n)`` is called after each batch with its number of examples, for a
    caller's own progress display.
    """
    import torch

    opts = options or LossOptions()
    out, encs = _encode_all(list(examples), tokenizer, opts)
    if not encs:
        return out
    device = next(model.parameters()).device
    prec = resolve_precision(opts.precision, device)
    was_training = model.training
    model.eval()
    # One autocast region for the whole run: autocast caches the bf16 copies of the
    # weights inside it, so they are cast once, not once per batch.
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=prec == "bf16")
    try:
        with torch.inference_mode(), autocast, _progress(progress, len(encs), on_batch) as advance:
            _score_batches(_prepare(model, tokenizer, encs, opts), encs, out, opts.batch_size, advance)
    finally:
        model.train(was_training)
    return out
