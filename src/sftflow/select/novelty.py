"""Novelty against a curated set: which pool records look unlike what we already have?

Curated set C is labelled 1, pool P labelled 0, and a classifier on embeddings learns
to tell them apart with stratified K-fold cross-validation over C and P together. Each
pool record is predicted exactly once per repetition, by the model of the one fold
that did not train on it (its *out-of-fold* probability), so no record is judged by a
classifier that has seen it. A pool record whose out-of-fold probability of "curated"
stays near 0 in every repetition is novel: a candidate to add. Each fold's AUC says
whether C and P are separable at all (AUC ~0.5: the pool already looks like C).

Class weights are balanced because C is usually much smaller than P; otherwise the
classifier would learn "always pool" and every probability would be near 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..schema import Example
from .scorers import scores_of


@dataclass
class NoveltyResult:
    probs: np.ndarray                  # (n_pool, repeats): out-of-fold P(curated)
    folds: np.ndarray                  # (n_pool, repeats): the fold that held each record out
    fold_auc: list[list[float]] = field(default_factory=list)   # per repeat, per fold

    @property
    def mean_auc(self) -> float:
        return float(np.mean([a for rep in self.fold_auc for a in rep]))

    def novel(self, below: float) -> np.ndarray:
        return (self.probs < below).all(axis=1)

    def report(self, below: float) -> dict[str, Any]:
        return {"fold_auc": self.fold_auc, "mean_auc": self.mean_auc,
                "novel": int(self.novel(below).sum()), "novel_below": below,
                "pool": int(self.probs.shape[0])}


def novelty_kfold(curated_emb: np.ndarray, pool_emb: np.ndarray, *, folds: int = 5, repeats: int = 1,
                  c: float = 1.0, seed: int = 0) -> NoveltyResult:
    """Out-of-fold P(curated) for every pool row, once per repetition of K folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    nc, npool = len(curated_emb), len(pool_emb)
    if nc < folds or npool < folds:
        raise ValueError(f"{folds}-fold novelty needs at least {folds} curated and {folds} pool records "
                         f"(got {nc} curated, {npool} pool)")
    x = np.vstack([curated_emb, pool_emb]).astype(np.float32)
    y = np.concatenate([np.ones(nc, dtype=int), np.zeros(npool, dtype=int)])
    probs = np.full((npool, repeats), np.nan)
    fold_of = np.full((npool, repeats), -1, dtype=int)
    seen = np.zeros((npool, repeats), dtype=int)
    aucs: list[list[float]] = []
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        rep_auc = []
        for k, (tr, te) in enumerate(skf.split(x, y)):
            clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced")
            clf.fit(x[tr], y[tr])
            p = clf.predict_proba(x[te])[:, 1]
            rep_auc.append(float(roc_auc_score(y[te], p)))
            in_pool = te >= nc
            rows = te[in_pool] - nc
            probs[rows, r] = p[in_pool]
            fold_of[rows, r] = k
            seen[rows, r] += 1
        aucs.append(rep_auc)
    # The invariant the whole method rests on; cheap to check, fatal to get wrong.
    assert (seen == 1).all(), "every pool record must be out-of-fold exactly once per repetition"
    return NoveltyResult(probs=probs, folds=fold_of, fold_auc=aucs)


def attach_novelty(pool: list[Example], res: NoveltyResult, below: float) -> None:
    """curated_prob (mean over repeats), curated_probs, curated_fold, novel -> metadata["scores"]."""
    novel = res.novel(below)
    for i, ex in enumerate(pool):
        sc = scores_of(ex)
        sc["curated_prob"] = float(res.probs[i].mean())
        sc["curated_probs"] = [float(p) for p in res.probs[i]]
        sc["curated_fold"] = [int(f) for f in res.folds[i]]
        sc["novel"] = bool(novel[i])
