"""Model signals for selection: response loss/perplexity, IFD, option probabilities, embeddings.

Every loss comes from ``sftflow.nll.example_losses`` (the training masks, the
model's chat template) through ``ScoreCache``; the model is loaded only when something
is not cached. Results land in ``metadata["scores"]`` under stable names:

===================== ==========================================================
``response_loss``     mean NLL (nats/token) of the final assistant turn, its
                      end-of-turn token included, given everything before it
``ppl``               ``exp(response_loss)``
``response_tokens``   supervised tokens behind ``response_loss``
``response_loss_alone`` the same response scored *alone* (see ``alone_messages``)
``ifd``               ``response_loss / response_loss_alone`` (Cherry-LLM IFD)
``option_probs``      P(option | prompt) per option, in the record's order
``option_prob_sum``   their sum (<= 1; low = the model is unsure of every option)
``answer_prob``       the probability of the labelled answer
``embedding``         ``{"file", "row", "model"}``: a row of a sidecar .npy
                      (or the vector itself with inline embeddings); vectors are
                      cached in ``sftflow.embed.EmbeddingCache``, shared with curation
``flags``             e.g. ``["too_long"]``, ``["ifd_above_1"]``
``model``             ``{name, weights_hash, template, max_length, precision}``
===================== ==========================================================

A value that could not be measured is ``null`` with a flag saying why; it is never
replaced by a default.
"""

from __future__ import annotations

import json
import math
from typing import Any, Callable, Sequence

import numpy as np

from ..embed import EmbeddingCache
from ..nll import ExampleLoss, LossOptions, example_losses, resolve_precision
from ..schema import Example, RecordError, content_id
from .cache import ModelIdentity, ScoreCache, template_id
from .sidecars import (  # noqa: F401 - re-exported
    attach_embeddings,
    embedding_text,
    load_embeddings,
    scores_of,
    write_sidecar,
)

MODEL_SCORES = ("ppl", "ifd", "option_probs")
SCORE_KINDS = MODEL_SCORES + ("embedding",)


def alone_messages(ex: Example) -> list[dict[str, str]]:
    """IFD's "response alone": the final response as the assistant turn after an *empty* user turn.

    No system message and no earlier turns: everything the record says before the
    response is what IFD asks about. The chat template still renders its own frame
    (SmolLM2 injects its default system prompt when none is given; that frame is then
    present on both sides of the ratio). An empty user turn rather than no user turn,
    because several templates (Gemma, Mistral) refuse a conversation that does not
    start with a user message.
    """
    return [{"role": "user", "content": ""}, {"role": "assistant", "content": ex.response}]


def option_spec(ex: Example) -> tuple[list[str], int | None] | None:
    """(options, answer index) for a multiple-choice record, None for other records.

    Options come from ``metadata["options"]`` (or ``"choices"``); the answer from
    ``metadata["answer"]`` (or ``"label"``): an index, a letter, or the option text.
    """
    meta = ex.metadata
    opts = meta.get("options", meta.get("choices"))
    if opts is None:
        return None
    if not isinstance(opts, list) or not opts or not all(isinstance(o, str) for o in opts):
        raise RecordError("must be a non-empty list of strings", field="metadata.options")
    ans = meta.get("answer", meta.get("label"))
    if ans is None:
        return opts, None
    if isinstance(ans, bool):
        raise RecordError("must be an index, a letter or one of the options", field="metadata.answer")
    if isinstance(ans, int):
        if not 0 <= ans < len(opts):
            raise RecordError(f"index {ans} out of range for {len(opts)} options", field="metadata.answer")
        return opts, ans
    if isinstance(ans, str):
        if ans in opts:
            return opts, opts.index(ans)
        if len(ans) == 1 and ans.isalpha() and 0 <= ord(ans.upper()) - ord("A") < len(opts):
            return opts, ord(ans.upper()) - ord("A")
    raise RecordError(f"{ans!r} is not an option, an index or a letter", field="metadata.answer")


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _add_flag(scores: dict[str, Any], flag: str) -> None:
    flags = scores.setdefault("flags", [])
    if flag not in flags:
        flags.append(flag)


class ModelScorer:
    """Loss-based scores with one model, cached and resumable.

    ``model`` is an alias, folder or hub id; pass ``model_obj``/``tokenizer`` to reuse
    objects already in memory (the name still identifies the weights in the cache).
    """

    def __init__(self, model: str | None = None, *, max_length: int | None = 2048, batch_size: int = 8,
                 precision: str = "auto", template: str | None = None,
                 cache: ScoreCache | None = None, chunk_size: int = 64, progress: bool = False,
                 device: str | None = None, model_obj=None, tokenizer=None):
        from ..models import DEFAULT_MODEL
        self.model_name = model or DEFAULT_MODEL
        self.max_length = max_length
        self.batch_size = batch_size
        self.template = template
        self.cache = cache
        self.chunk_size = chunk_size
        self.progress = progress
        self._model = model_obj
        self._tokenizer = tokenizer
        self._device = device
        self._precision = precision
        self._identity: ModelIdentity | None = None
        self.model_loads = 0
        self.computed = 0            # losses computed by the model (not from the cache)
        # Called after each chunk is cached; tests use it to simulate a kill mid-run.
        self.on_chunk: Callable[[int], None] | None = None

    # -- lazily loaded pieces ---------------------------------------------------------
    @property
    def device(self) -> str:
        if self._device is None:
            if self._model is not None:
                self._device = str(next(self._model.parameters()).device)
            else:
                import torch
                self._device = "cuda" if torch.cuda.is_available() else "cpu"
        return self._device

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            from ..models import load_tokenizer
            self._tokenizer = load_tokenizer(self.model_name)
        return self._tokenizer

    @property
    def model(self):
        if self._model is None:
            from ..models import load_model
            self._model = load_model(self.model_name, device=self.device).eval()
            self.model_loads += 1
        return self._model

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            from ..models import weights_hash
            self._identity = ModelIdentity(
                name=self.model_name, weights_hash=weights_hash(self.model_name),
                template=template_id(self.tokenizer, self.template), max_length=self.max_length,
                precision=resolve_precision(self._precision, self.device))
        return self._identity

    # -- the cached loss primitive ----------------------------------------------------
    def losses(self, conversations: Sequence[list[dict[str, str]]]) -> list[ExampleLoss]:
        """Response loss (train_on='last') of each conversation, cached by its content."""
        mkey = self.identity.key
        keys = [ScoreCache.make_key("loss_last", mkey, content_id(c)) for c in conversations]
        found = self.cache.get_many(keys) if self.cache is not None else {}
        todo = [i for i, k in enumerate(keys) if k not in found]
        # The same text twice in one run is scored once.
        uniq: dict[str, int] = {}
        for i in todo:
            uniq.setdefault(keys[i], i)
        pending = list(uniq.values())
        if not pending:
            return [ExampleLoss(id=content_id(c), **found[k]) for c, k in zip(conversations, keys)]
        bar = task = None
        if self.progress:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
            bar = Progress("[progress.description]{task.description}", BarColumn(), MofNCompleteColumn(),
                           TimeRemainingColumn(), transient=True)
            task = bar.add_task(f"scoring ({len(found)} cached)", total=len(pending))
            bar.start()
        try:
            self._compute(conversations, keys, pending, found,
                          (lambda k: bar.advance(task, k)) if bar is not None else None)
        finally:
            if bar is not None:
                bar.stop()
        return [ExampleLoss(id=content_id(c), **found[k]) for c, k in zip(conversations, keys)]

    def _compute(self, conversations, keys, pending, found, on_batch) -> None:
        for s in range(0, len(pending), self.chunk_size):
            part = pending[s:s + self.chunk_size]
            opts = LossOptions(train_on="last", max_length=self.max_length, batch_size=self.batch_size,
                               precision=self.identity.precision, template=self.template)
            res = example_losses(self.model, self.tokenizer, [conversations[i] for i in part], opts,
                                 on_batch=on_batch)
            self.computed += len(part)
            new = {keys[i]: {k: v for k, v in r.to_dict().items() if k != "id"} for i, r in zip(part, res)}
            found.update(new)
            if self.cache is not None:
                self.cache.put_many(new)
            if self.on_chunk is not None:
                self.on_chunk(s // self.chunk_size)

    # -- scores into metadata ---------------------------------------------------------
    def score(self, examples: list[Example], kinds: Sequence[str] = ("ppl", "ifd")) -> dict[str, int]:
        """Write the requested model scores into each example's metadata; returns counts."""
        unknown = [k for k in kinds if k not in MODEL_SCORES]
        if unknown:
            raise ValueError(f"unknown model score(s) {unknown}; expected {', '.join(MODEL_SCORES)}")
        counts = {"flagged": 0, "ifd_above_1": 0, "multiple_choice": 0}
        ident = self.identity.to_dict()
        if "ppl" in kinds or "ifd" in kinds:
            given = self.losses([ex.messages for ex in examples])
            alone = self.losses([alone_messages(ex) for ex in examples]) if "ifd" in kinds else None
            for j, ex in enumerate(examples):
                sc = scores_of(ex)
                sc["model"] = ident
                g = given[j]
                sc["response_loss"] = _finite(g.mean)
                sc["ppl"] = math.exp(g.mean) if g.flag is None else None
                sc["response_tokens"] = g.n_tokens
                if g.flag:
                    _add_flag(sc, g.flag)
                if alone is not None:
                    a = alone[j]
                    sc["response_loss_alone"] = _finite(a.mean)
                    if a.flag:
                        _add_flag(sc, f"alone_{a.flag}")
                    ok = g.flag is None and a.flag is None and a.mean > 0
                    sc["ifd"] = g.mean / a.mean if ok else None
                    if ok and sc["ifd"] > 1:
                        # The response is *easier* without its instruction: likely misaligned.
                        _add_flag(sc, "ifd_above_1")
                        counts["ifd_above_1"] += 1
                counts["flagged"] += bool(sc.get("flags"))
        if "option_probs" in kinds:
            counts["multiple_choice"] = self._option_probs(examples, ident)
        return counts

    def _option_probs(self, examples: list[Example], ident: dict[str, Any]) -> int:
        """P(option | prompt) = exp(-NLL of the option as the whole assistant turn).

        The end-of-turn token is part of each option's probability, so the options are
        disjoint events ("answers exactly this, then stops") and their sum is <= 1.
        """
        convs, owners = [], []
        specs = {}
        for j, ex in enumerate(examples):
            spec = option_spec(ex)
            if spec is None:
                continue
            specs[j] = spec
            prompt = ex.context
            for o in spec[0]:
                convs.append(prompt + [{"role": "assistant", "content": o}])
                owners.append(j)
        res = self.losses(convs)
        per: dict[int, list[ExampleLoss]] = {}
        for j, r in zip(owners, res):
            per.setdefault(j, []).append(r)
        for j, (opts, ans) in specs.items():
            sc = scores_of(examples[j])
            sc["model"] = ident
            probs = [math.exp(-r.loss_sum) if r.flag is None else None for r in per[j]]
            for r in per[j]:
                if r.flag:
                    _add_flag(sc, f"option_{r.flag}")
            sc["option_probs"] = probs
            sc["option_prob_sum"] = sum(probs) if all(p is not None for p in probs) else None
            sc["answer_prob"] = probs[ans] if ans is not None else None
        return len(specs)


# --------------------------------------------------------------------------- embeddings

def embed_examples(examples: list[Example], *, embedder: str | None = None, method: str = "sbert",
                   cache: EmbeddingCache | None = None, batch_size: int = 64,
                   progress: bool = False) -> np.ndarray:
    """Embeddings (rows L2-normalised). sbert rows come from the embedding cache curation
    uses too; tf-idf is fitted on the whole set, so it is recomputed (cheap) rather than
    stored for every set it is fitted on."""
    from ..embed import embed_texts
    texts = [embedding_text(ex) for ex in examples]
    if method != "sbert" or cache is None:
        return embed_texts(texts, embedder, batch_size=batch_size, method=method, progress=progress)
    return cache.embed(texts, method=method, model=embedder, batch_size=batch_size, progress=progress)


def describe(examples: list[Example]) -> str:
    """One-line summary of what is stored (for logs)."""
    names = sorted({k for ex in examples for k in ex.metadata.get("scores", {})} - {"model"})
    return json.dumps(names)
