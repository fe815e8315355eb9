"""Leakage between training and evaluation data.

Two independent signals, both on normalised words (case and punctuation folded):

- **n-gram overlap** (GPT-3's contamination rule): a training record that shares any
  word 13-gram with an evaluation record. An evaluation text shorter than 13 words (but
  of at least ``short_min_words``) is looked for whole inside every training text, so a
  short evaluation prompt pasted into a longer training prompt is caught; shorter ones
  ("Hello there") only match a training text that is exactly them.
- **near duplicates**: MinHash LSH on word 5-grams between the two sets, every
  candidate confirmed with the exact Jaccard (the same engine as near_dedup).

Evaluation data is set aside *before* curation (recipes do it by default); this check
proves it stayed aside and removes the training records that did not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..embed import example_text
from ..io import read_examples
from ..schema import Example
from .config import LeakageParams
from .minhash import choose_bands, jaccard_many, minhash_candidates, shingle_hashes
from .steps import Step, StepResult, measurements, reject


@dataclass
class Leak:
    train_index: int
    train_id: str
    eval_id: str
    kind: str          # "ngram" or "near_duplicate"
    value: float | str  # the shared n-gram's position or the Jaccard

    def to_dict(self) -> dict[str, Any]:
        return {"train_index": self.train_index, "train_id": self.train_id, "eval_id": self.eval_id,
                "kind": self.kind, "value": self.value}


@dataclass
class LeakReport:
    n_train: int
    n_eval: int
    leaks: list[Leak] = field(default_factory=list)

    @property
    def leaked_train(self) -> list[int]:
        return sorted({lk.train_index for lk in self.leaks})

    def summary(self) -> dict[str, Any]:
        by_kind: dict[str, int] = {}
        for lk in self.leaks:
            by_kind[lk.kind] = by_kind.get(lk.kind, 0) + 1
        return {"train": self.n_train, "eval": self.n_eval, "leaked_train_records": len(self.leaked_train),
                "matches_by_kind": by_kind}


def find_leaks(train: list[Example], evals: list[Example], params: LeakageParams | None = None) -> LeakReport:
    p = params or LeakageParams()
    rep = LeakReport(len(train), len(evals))
    if not train or not evals:
        return rep
    t_texts = [example_text(ex, p.field) for ex in train]
    e_texts = [example_text(ex, p.field) for ex in evals]
    found: dict[int, Leak] = {}

    # n-gram overlap: vectorised membership of every training n-gram in the eval set.
    t_flat, t_off = shingle_hashes(t_texts, p.ngram)
    e_flat, e_off = shingle_hashes(e_texts, p.ngram)
    if len(t_flat) and len(e_flat):
        hit = np.isin(t_flat, e_flat)
        if hit.any():
            owner = np.repeat(np.arange(len(train)), np.diff(t_off))
            eval_owner = np.repeat(np.arange(len(evals)), np.diff(e_off))
            first_eval = dict(zip(e_flat[::-1].tolist(), eval_owner[::-1].tolist()))
            for pos in np.flatnonzero(hit):
                i = int(owner[pos])
                if i in found:
                    continue
                j = first_eval[int(t_flat[pos])]
                found[i] = Leak(i, train[i].id, evals[j].id, "ngram", f"shared word {p.ngram}-gram")

    # MinHash near duplicates across the two sets.
    if p.minhash_threshold < 1.0:
        texts = t_texts + e_texts
        flat, off = shingle_hashes(texts, p.minhash_ngram)
        bands, rows = choose_bands(p.minhash_threshold, p.num_perm)
        cand = minhash_candidates(flat, off, num_perm=p.num_perm, bands=bands, rows=rows, seed=p.seed)
        n = len(train)
        cross = cand[(cand[:, 0] < n) & (cand[:, 1] >= n)] if len(cand) else cand
        jacs = jaccard_many(flat, off, cross)
        for (i, j), jac in zip(cross.tolist(), jacs.tolist()):
            if jac >= p.minhash_threshold and (i not in found or found[i].kind != "ngram"):
                prev = found.get(i)
                if prev is None or (isinstance(prev.value, float) and jac > prev.value):
                    found[i] = Leak(i, train[i].id, evals[j - n].id, "near_duplicate", round(jac, 4))
    _short_eval_inside(t_texts, e_texts, train, evals, p, found)
    rep.leaks = [found[i] for i in sorted(found)]
    return rep


def _short_eval_inside(t_texts: list[str], e_texts: list[str], train: list[Example], evals: list[Example],
                       p: LeakageParams, found: dict[int, Leak]) -> None:
    """Eval texts of k < ngram words: their one k-gram against every training k-gram.
    One pass over the training set per distinct short length (at most ngram - 1)."""
    _, e_off = shingle_hashes(e_texts, 1)
    lens = np.diff(e_off)   # words per eval text
    for k in sorted({int(n) for n in lens if p.short_min_words <= n < p.ngram}):
        which = [j for j in range(len(evals)) if lens[j] == k]
        e_flat, _ = shingle_hashes([e_texts[j] for j in which], k)
        t_flat, t_off = shingle_hashes(t_texts, k)
        hit = np.isin(t_flat, e_flat)
        if not hit.any():
            continue
        owner = np.repeat(np.arange(len(train)), np.diff(t_off))
        eval_of = dict(zip(e_flat.tolist(), which))
        for pos in np.flatnonzero(hit):
            i = int(owner[pos])
            if i not in found or found[i].kind != "ngram":
                j = eval_of[int(t_flat[pos])]
                found[i] = Leak(i, train[i].id, evals[j].id, "ngram", f"contains the whole {k}-word eval text")


class LeakageStep(Step):
    """Remove training records that overlap the evaluation files."""

    name = "leakage"

    def __init__(self, params: LeakageParams, evals: list[Example] | None = None):
        self.p = params
        self._evals = evals

    def evals(self) -> list[Example]:
        if self._evals is None:
            if not self.p.eval:
                raise ValueError("step 'leakage' needs evaluation files: set leakage.eval "
                                 "(or pass --eval)")
            self._evals = read_examples(self.p.eval).examples
        return self._evals

    def run(self, examples: list[Example]) -> StepResult:
        report = find_leaks(examples, self.evals(), self.p)
        leaked = {lk.train_index: lk for lk in report.leaks}
        out = StepResult(kept=[])
        for i, ex in enumerate(examples):
            lk = leaked.get(i)
            if lk is None:
                out.kept.append(ex)
                continue
            measurements(ex, self.name).update({"eval_id": lk.eval_id, "kind": lk.kind})
            what = (f"shares a word {self.p.ngram}-gram with" if lk.kind == "ngram"
                    else f"near duplicate (Jaccard {lk.value}) of")
            out.rejected.append(reject(ex, self.name, f"evaluation leak: {what} eval record {lk.eval_id}",
                                       lk.to_dict()))
        return out
