"""Multiple-choice tasks scored by log-likelihood, to catch forgetting.

Each choice is scored as the sum of the log-probabilities of its tokens given the
question (with ``num_fewshot`` solved examples in front). Three accuracies, named as
lm-evaluation-harness names them:

- ``acc``: the choice with the highest total log-likelihood;
- ``acc_norm``: highest log-likelihood divided by the choice's length in *characters*
  (lm-evaluation-harness divides by ``len(choice)``, the string without the leading
  space; it is a length normalisation, not a per-token one);
- ``acc_bytes``: divided by the UTF-8 byte length instead (equal to ``acc_norm`` for
  ASCII text, different for accented or non-Latin choices).

Prompt format (lm-evaluation-harness's default for MMLU-style tasks):
``Question: {question}\\nAnswer:`` and the continuation `` {choice}``; few-shot
examples are separated by a blank line. Tokenisation follows the harness too: the
continuation's tokens are those of ``context + continuation`` after the context's
tokens, so a merge across the boundary is scored the way the model sees it.

Why not just call lm-evaluation-harness: it is an optional heavy dependency, and
its tasks download data; local JSONL tasks must work offline. When the harness is
installed and its data is cached, ``lm_eval:<task>`` reuses its task definitions.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from ..schema import RecordError

SHIPPED = {"general_knowledge": "general_knowledge.jsonl"}


@dataclass
class ChoiceItem:
    question: str
    choices: list[str]
    answer: int
    context: str | None = None   # a ready-made prompt (lm_eval tasks); None = build from question

    def prompt(self) -> str:
        return self.context if self.context is not None else f"Question: {self.question}\nAnswer:"

    def solved(self) -> str:
        return f"{self.prompt()} {self.choices[self.answer]}"


def _parse_answer(ans: Any, choices: list[str]) -> int:
    if isinstance(ans, bool):
        raise RecordError("answer must be an index, a letter or one of the choices", field="answer")
    if isinstance(ans, int):
        if not 0 <= ans < len(choices):
            raise RecordError(f"answer index {ans} out of range for {len(choices)} choices", field="answer")
        return ans
    if isinstance(ans, str):
        if ans in choices:
            return choices.index(ans)
        if len(ans) == 1 and ans.isalpha() and ans.upper() < chr(ord("A") + len(choices)):
            return ord(ans.upper()) - ord("A")
        raise RecordError(f"answer {ans!r} is not a choice, an index or a letter", field="answer")
    raise RecordError(f"answer must be an index, a letter or a choice, got {type(ans).__name__}",
                      field="answer")


def shipped_task_path(name: str) -> Path:
    return Path(str(resources.files("sftflow.evaluate") / "data" / SHIPPED[name]))


def load_task(spec: str, lm_eval_include: list[str] | None = None) -> tuple[str, list[ChoiceItem]]:
    """A task by name: a shipped one, a JSONL path, or ``lm_eval:<task>``. Returns (name, items)."""
    if spec in SHIPPED:
        return spec, read_jsonl_task(shipped_task_path(spec))
    if spec.startswith("lm_eval:"):
        return spec, load_lm_eval_task(spec.split(":", 1)[1], include=lm_eval_include)
    path = Path(spec)
    if not path.exists():
        raise RecordError(f"no such task file (and not a shipped task: {', '.join(SHIPPED)})",
                          path=spec)
    return path.stem, read_jsonl_task(path)


def read_jsonl_task(path: str | Path) -> list[ChoiceItem]:
    path = Path(path)
    items = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError as e:
                    raise RecordError(f"invalid JSON: {e.msg}") from None
                if not isinstance(rec, dict):
                    raise RecordError("expected a JSON object")
                q, ch = rec.get("question"), rec.get("choices")
                if not isinstance(q, str) or not q.strip():
                    raise RecordError("missing or empty 'question'", field="question")
                if (not isinstance(ch, list) or len(ch) < 2
                        or not all(isinstance(c, str) and c.strip() for c in ch)):
                    raise RecordError("'choices' must be a list of 2 or more non-empty strings",
                                      field="choices")
                if len(set(ch)) != len(ch):
                    raise RecordError("'choices' has duplicates", field="choices")
                if "answer" not in rec:
                    raise RecordError("missing 'answer'", field="answer")
                items.append(ChoiceItem(q, list(ch), _parse_answer(rec["answer"], ch)))
            except RecordError as e:
                raise RecordError(e.reason, path=str(path), line=n, field=e.field) from None
    if not items:
        raise RecordError("task file has no questions", path=str(path))
    return items


def load_lm_eval_task(name: str, include: list[str] | None = None) -> list[ChoiceItem]:
    """Reuse an lm-evaluation-harness multiple-choice task whose data is already local.

    ``include``: folders of extra task YAMLs (the harness's ``include_path``), e.g. a
    task over a local JSON file. Harness tasks that download their data work only when
    the Hugging Face cache already holds it (sftflow runs offline).
    """
    try:
        from lm_eval.tasks import TaskManager
    except ImportError:
        raise RecordError(f"task 'lm_eval:{name}' needs lm-evaluation-harness (pip install lm-eval) "
                          "with the task's data in the local Hugging Face cache") from None
    try:
        manager = TaskManager(include_path=list(include) if include else None)
        task = manager.load_task_or_group([name])[name]
    except Exception as e:  # noqa: BLE001 - the harness raises many kinds; say which task
        raise RecordError(f"lm-evaluation-harness could not load task {name!r} offline: {e}") from None
    if getattr(task, "OUTPUT_TYPE", None) != "multiple_choice":
        raise RecordError(f"lm_eval task {name!r} is not multiple-choice")
    docs = task.test_docs() if task.has_test_docs() else task.validation_docs()
    items = []
    for doc in docs:
        choices = list(task.doc_to_choice(doc))
        target = task.doc_to_target(doc)
        ans = target if isinstance(target, int) else choices.index(target)
        items.append(ChoiceItem(question="", choices=choices, answer=ans,
                                context=task.doc_to_text(doc)))
    return items


def build_context(items: list[ChoiceItem], i: int, k: int, seed: int) -> str:
    """Few-shot context for item i: k other solved items (seeded per item), then the question."""
    shots: list[str] = []
    if k:
        pool = [j for j in range(len(items)) if j != i]
        rng = random.Random(seed * 1_000_003 + i)
        shots = [items[j].solved() for j in rng.sample(pool, min(k, len(pool)))]
    return "\n\n".join(shots + [items[i].prompt()])


def split_tokens(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-evaluation-harness splits them."""
    # Trailing spaces of the context belong to the continuation (harness rule), so
    # "Answer: " + "Paris" is scored like "Answer:" + " Paris".
    n_spaces = len(context) - len(context.rstrip(" "))
    if n_spaces:
        continuation = context[-n_spaces:] + continuation
        context = context[:-n_spaces]
    whole = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    ctx = tokenizer(context, add_special_tokens=False)["input_ids"]
    return whole[: len(ctx)], whole[len(ctx):]


def loglikelihoods(model, tokenizer, pairs: list[tuple[str, str]], *, batch_size: int = 8,
                   progress=None) -> list[float]:
    """Sum of log p(continuation | context) for each (context, continuation)."""
    import torch

    encoded = [split_tokens(tokenizer, c, x) for c, x in pairs]
    for (ctx, cont), (c, x) in zip(encoded, pairs):
        if not cont:
            raise ValueError(f"continuation {x!r} has no tokens after context {c[-40:]!r}")
        if not ctx:
            raise ValueError("empty context")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    out = [0.0] * len(pairs)
    # Longest first keeps padding small within a batch.
    order = sorted(range(len(pairs)), key=lambda i: -(len(encoded[i][0]) + len(encoded[i][1])))
    model.eval()
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        seqs = [encoded[i][0] + encoded[i][1] for i in idx]
        width = max(len(s) for s in seqs)
        tail = max(len(encoded[i][1]) for i in idx)
        # Left padding puts every continuation at the end, so only the last tail+1
        # positions need logits (the output layer is a large part of a small model's
        # cost); position ids follow the mask so padding does not shift positions.
        ids = torch.tensor([[pad] * (width - len(s)) + s for s in seqs], device=device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in seqs], device=device)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos,
                           logits_to_keep=tail + 1).logits.float()
        logp = torch.log_softmax(logits, dim=-1)   # [B, tail+1, V]; position t predicts t+1
        for row, i in enumerate(idx):
            cont = encoded[i][1]
            m = len(cont)
            # logits at kept positions -m-1 .. -2 predict the continuation tokens
            preds = logp[row, -m - 1:-1, :]
            target = torch.tensor(cont, device=device)
            out[i] = float(preds.gather(-1, target[:, None]).sum())
        if progress is not None:
            progress(len(idx))
    return out


def grouped_loglikelihoods(model, tokenizer, groups: list[tuple[str, list[str]]], *, batch_size: int = 8,
                           progress=None) -> list[list[float]]:
    """Log-likelihoods of several continuations of one shared context, per group.

    The choices of a question share its context, and the context is most of the
    tokens (all of them but a word or two at zero-shot, far more with few-shot
    examples). So the contexts of a batch of questions run once, their key/value
    cache is copied to one row per choice, and only the choices' own tokens run
    again: the same numbers as scoring every (context, choice) sequence in full, for
    about 1/n_choices of the compute. A question whose choices tokenize the context
    differently (a merge across the boundary) is scored the plain way.
    """
    import torch

    splits = [[split_tokens(tokenizer, ctx, c) for c in conts] for ctx, conts in groups]
    out: list[list[float] | None] = [None] * len(groups)
    shared, plain = [], []
    for g, sp in enumerate(splits):
        ok = sp and sp[0][0] and all(s[0] == sp[0][0] and s[1] for s in sp)
        (shared if ok else plain).append(g)
    if plain:
        pairs = [(groups[g][0], c) for g in plain for c in groups[g][1]]
        flat = loglikelihoods(model, tokenizer, pairs, batch_size=batch_size, progress=progress)
        pos = 0
        for g in plain:
            out[g] = flat[pos:pos + len(groups[g][1])]
            pos += len(groups[g][1])
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    device = next(model.parameters()).device
    model.eval()
    order = sorted(shared, key=lambda g: -len(splits[g][0][0]))
    for b in range(0, len(order), batch_size):
        idx = order[b:b + batch_size]
        ctxs = [splits[g][0][0] for g in idx]
        width = max(len(c) for c in ctxs)
        ids = torch.tensor([[pad] * (width - len(c)) + c for c in ctxs], device=device)
        mask = torch.tensor([[0] * (width - len(c)) + [1] * len(c) for c in ctxs], device=device)
        pos_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.no_grad():
            o = model(input_ids=ids, attention_mask=mask, position_ids=pos_ids, use_cache=True,
                      logits_to_keep=1)
        first = torch.log_softmax(o.logits[:, -1].float(), dim=-1)       # predicts each choice's 1st token
        rows = [(k, s[1]) for k, g in enumerate(idx) for s in splits[g]]
        lls = [float(first[k, cont[0]]) for k, cont in rows]
        tail = max(len(cont) for _, cont in rows) - 1
        if tail > 0:
            cache = o.cache                      # transformers 5 name (past_key_values warns)
            keep = torch.tensor([k for k, _ in rows], device=device)
            cache.batch_select_indices(keep)                              # one cache row per choice
            feed = torch.tensor([cont[:-1] + [pad] * (tail - len(cont) + 1) for _, cont in rows], device=device)
            fmask = torch.tensor([[1] * (len(cont) - 1) + [0] * (tail - len(cont) + 1) for _, cont in rows],
                                 device=device)
            full_mask = torch.cat([mask[keep], fmask], dim=1)
            pos2 = mask.sum(-1)[keep][:, None] + torch.arange(tail, device=device)[None, :]
            with torch.no_grad():
                o2 = model(input_ids=feed, attention_mask=full_mask, position_ids=pos2, cache=cache)
            logp = torch.log_softmax(o2.logits.float(), dim=-1)
            for r, (_, cont) in enumerate(rows):
                if len(cont) > 1:
                    tgt = torch.tensor(cont[1:], device=device)
                    lls[r] += float(logp[r, : len(cont) - 1].gather(-1, tgt[:, None]).sum())
        pos = 0
        for g in idx:
            n = len(splits[g])
            out[g] = lls[pos:pos + n]
            pos += n
        if progress is not None:
            progress(len(rows))
    return out  # type: ignore[return-value]


def score_items(model, tokenizer, items: list[ChoiceItem], *, num_fewshot: int = 0, seed: int = 0,
                batch_size: int = 8, progress=None, share_context: bool = True) -> dict[str, Any]:
    """acc / acc_norm / acc_bytes over items, plus per-item predictions."""
    import numpy as np

    groups = [(build_context(items, i, num_fewshot, seed), [" " + c for c in it.choices])
              for i, it in enumerate(items)]
    if share_context:
        lls = grouped_loglikelihoods(model, tokenizer, groups, batch_size=batch_size, progress=progress)
    else:
        flat = loglikelihoods(model, tokenizer, [(c, x) for c, xs in groups for x in xs],
                              batch_size=batch_size, progress=progress)
        lls, pos = [], 0
        for _, xs in groups:
            lls.append(flat[pos:pos + len(xs)])
            pos += len(xs)
    per_item = []
    hits = {"acc": 0, "acc_norm": 0, "acc_bytes": 0}
    for it, item_ll in zip(items, lls):
        ll = np.array(item_ll)
        chars = np.array([float(len(c)) for c in it.choices])
        nbytes = np.array([float(len(c.encode("utf-8"))) for c in it.choices])
        pred = {"acc": int(np.argmax(ll)), "acc_norm": int(np.argmax(ll / chars)),
                "acc_bytes": int(np.argmax(ll / nbytes))}
        for k, p in pred.items():
            hits[k] += int(p == it.answer)
        per_item.append({"answer": it.answer, "pred": pred["acc"], "pred_norm": pred["acc_norm"],
                         "loglik": [round(float(x), 4) for x in ll]})
    n = len(items)
    return {**{k: v / n for k, v in hits.items()}, "n": n, "items": per_item}


def forgetting(base: dict[str, dict], tuned: dict[str, dict], *, metric: str = "acc",
               warn_drop: float = 2.0, fail_drop: float = 5.0) -> dict[str, Any]:
    """Per task: the change in accuracy points (tuned - base) and pass / warn / fail."""
    tasks, worst = {}, "pass"
    rank = {"pass": 0, "warn": 1, "fail": 2}
    for name in tuned:
        if name not in base:
            continue
        delta = 100.0 * (tuned[name][metric] - base[name][metric])
        status = "fail" if -delta > fail_drop else "warn" if -delta > warn_drop else "pass"
        tasks[name] = {"metric": metric, "base": base[name][metric], "tuned": tuned[name][metric],
                       "delta_points": round(delta, 4), "status": status}
        worst = max(worst, status, key=rank.get)
    return {"status": worst, "warn_drop": warn_drop, "fail_drop": fail_drop, "tasks": tasks}
