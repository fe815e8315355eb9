"""A local model through transformers: batched, left-padded, seeded generation.

Prompts are rendered with the model's own chat template and its generation prompt,
sorted by length and cut into batches, so each batch pads little; decoder-only
models need *left* padding so every row's next token sits at the same position.
A row's ``finish_reason`` is "stop" when the model emitted an end-of-turn/eos token
or one of the stop strings, "length" when it ran out of ``max_new_tokens``.
The backend keeps a running tokens-per-second figure in ``stats``. Sampling draws each
request's tokens from a generator of its own (``row_sampling``), so an answer does not
depend on the batch it was generated in: a run resumed after a kill writes what an
uninterrupted run writes.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from .base import Completion, GenParams
from .greedy_decode import greedy_generate, left_pad
from .greedy_decode import supported as greedy_supported


class TransformersBackend:
    name = "transformers"

    def __init__(self, model: str | None = None, *, batch_size: int = 8, device: str | None = None,
                 model_obj: Any = None, tokenizer: Any = None, dtype: Any = None):
        import torch
        from ..models import DEFAULT_MODEL, load_model, load_tokenizer
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.model = str(model or DEFAULT_MODEL)
        self.batch_size = batch_size
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = tokenizer if tokenizer is not None else load_tokenizer(model)
        self.lm = model_obj if model_obj is not None else load_model(model, dtype=dtype)
        self.lm.to(self.device)
        self.lm.eval()
        if self.tok.pad_token is None:
            self.tok.pad_token = self.tok.eos_token
        self.tok.padding_side = "left"
        self.stop_ids = self._stop_token_ids()
        self.cache_id = self._weights_cache_id(model) if model_obj is None else self.model
        self.stats = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}

    def _weights_cache_id(self, model: str | None) -> str:
        """``name@sha256-of-weights``, the identity the response cache keys answers on.

        A model retrained in place must not be answered from the cache of its old
        weights, so a weight file that cannot be read for the hash is an error, not a
        cache keyed on the name alone (which would serve stale answers without a word).
        The model has just loaded from those files, so this only happens when a file
        vanished or lost its permissions in between: the message says which one.
        """
        from ..config import ConfigError
        from ..models import weights_hash
        try:
            return f"{self.model}@{weights_hash(model)}"
        except OSError as e:
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            raise ConfigError(f"model {self.model}: cannot read its weights to hash them{where}: "
                              f"{e.strerror or e}. The response cache keys answers on the weights' hash, "
                              "so a model changed in place is never answered from old answers; make the "
                              "weight files readable") from None

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "batch_size": self.batch_size,
                "device": self.device}

    @property
    def tokens_per_second(self) -> float:
        s = self.stats["seconds"]
        return self.stats["completion_tokens"] / s if s > 0 else 0.0

    def _stop_token_ids(self) -> list[int]:
        """eos plus the template's end-of-turn tokens: either one ends the answer."""
        ids: set[int] = set()
        eos = self.tok.eos_token_id
        if eos is not None:
            ids.add(int(eos))
        gen_eos = getattr(getattr(self.lm, "generation_config", None), "eos_token_id", None)
        for e in (gen_eos if isinstance(gen_eos, list) else [gen_eos]):
            if e is not None:
                ids.add(int(e))
        vocab = self.tok.get_vocab()
        for t in ("<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"):
            if t in vocab:
                ids.add(int(vocab[t]))
        return sorted(ids)

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The token ids the model reads before its answer (its chat template, generation prompt on)."""
        if getattr(self.tok, "chat_template", None):
            ids = self.tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):   # BatchEncoding in newer versions
                ids = ids["input_ids"]
            return list(ids)
        # A base model without a template: plain text, one turn per paragraph.
        text = "\n\n".join(m["content"] for m in messages) + "\n\n"
        return self.tok(text, add_special_tokens=True)["input_ids"]

    def _finish(self, new_ids: list[int], params: GenParams) -> tuple[str, str, int]:
        """(text, finish_reason, n_tokens) for one row of generated ids."""
        n = len(new_ids)
        reason = "length"
        for j, t in enumerate(new_ids):
            if t in self.stop_ids:         # the end-of-turn token (pad == eos is common: same thing)
                new_ids, n, reason = new_ids[:j], j + 1, "stop"
                break
        text = self.tok.decode(new_ids, skip_special_tokens=True)
        cut = [text.index(s) for s in params.stop if s and s in text]
        if cut:
            text, reason = text[: min(cut)], "stop"
        if reason == "length" and len(new_ids) < params.max_new_tokens:
            reason = "stop"                 # ended early through a stop string on the token level
        return text, reason, n

    def generate(self, requests: list[list[dict[str, str]]], params: GenParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        import torch
        if not requests:
            return []
        encoded = [self.prompt_ids(m) for m in requests]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        out: list[Completion | None] = [None] * len(encoded)
        pad = self.tok.pad_token_id
        # Greedy answers without log-probabilities take the loop that drops finished rows.
        fast = params.temperature <= 0 and not params.logprobs and greedy_supported(self.lm)
        for start in range(0, len(order), self.batch_size):
            idx = order[start:start + self.batch_size]
            width = max(len(encoded[i]) for i in idx)
            gen_kwargs: dict[str, Any] = {
                "max_new_tokens": params.max_new_tokens, "pad_token_id": pad,
                "eos_token_id": self.stop_ids,
            }
            # Greedy decoding in both cases (clear the sampling defaults a model's generation_config
            # may carry); sampling adds per-request noise, so a request samples the same tokens
            # whichever batch it is in (a resumed run forms other batches): see row_sampling.
            gen_kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            noise = None
            if params.temperature > 0:
                from .row_sampling import request_seed, row_sampler
                procs, noise = row_sampler(params.temperature, params.top_p,
                                           [request_seed(params.seed, encoded[i]) for i in idx])
                gen_kwargs["logits_processor"] = procs
            if params.stop:
                gen_kwargs.update(stop_strings=list(params.stop), tokenizer=self.tok)
            if params.logprobs:
                gen_kwargs.update(output_scores=True, return_dict_in_generate=True)
            t0 = time.perf_counter()
            if fast:
                new_rows = greedy_generate(self.lm, [encoded[i] for i in idx], pad_id=pad, stop_ids=self.stop_ids,
                                           max_new_tokens=params.max_new_tokens, stop_texts=list(params.stop),
                                           decode=lambda ids: self.tok.decode(ids, skip_special_tokens=True))
            else:
                input_ids, attn, _ = left_pad([encoded[i] for i in idx], pad, self.device)
                with torch.no_grad():
                    res = self.lm.generate(input_ids=input_ids, attention_mask=attn, **gen_kwargs)
                seqs = res.sequences if params.logprobs else res
                new_rows = [seqs[r, width:].tolist() for r in range(len(idx))]
            trans = None
            if params.logprobs:
                # the sampling distribution's scores, not the noisy ones greedy decoding ranked
                steps = tuple(noise.clean) if noise is not None else res.scores
                trans = self.lm.compute_transition_scores(res.sequences, steps, normalize_logits=True).cpu()
            batch_tokens = 0
            done: list[tuple[int, Completion]] = []
            for r, i in enumerate(idx):
                text, reason, n = self._finish(new_rows[r], params)
                batch_tokens += n
                lp = [float(x) for x in trans[r, :n]] if trans is not None else None
                done.append((i, Completion(text=text, finish_reason=reason, completion_tokens=n,
                                           prompt_tokens=len(encoded[i]), logprobs=lp)))
            self.stats["seconds"] += time.perf_counter() - t0
            self.stats["completion_tokens"] += batch_tokens
            self.stats["prompt_tokens"] += sum(len(encoded[i]) for i in idx)
            self.stats["requests"] += len(idx)
            for i, c in done:
                out[i] = c
                if on_result:
                    on_result(i, c)
        return out  # type: ignore[return-value]
