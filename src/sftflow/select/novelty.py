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


def logreg_fold(x: np.ndarray, c: float = 1.0):
    """fit_predict(train_idx, test_idx, y) for a logistic regression on embedding rows ``x``."""
    from sklearn.linear_model import LogisticRegression

    def fit_predict(tr, te, y):
        clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(x[tr], y[tr])
        return clf.predict_proba(x[te])[:, 1]
    return fit_predict


def transformer_fold(texts: list[str], model: str | None = None, *, epochs: int = 2, batch_size: int = 16,
                     lr: float = 5e-5, max_length: int = 256, device: str | None = None, seed: int = 0):
    """fit_predict that fine-tunes a sequence classifier per fold (the default embedder's
    encoder with a fresh 2-way head; any local folder or hub id works). Worth it on a GPU."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from ..models import embedder_path
    path = embedder_path(model)
    dev = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok = AutoTokenizer.from_pretrained(path)

    def batches(idx):
        for s in range(0, len(idx), batch_size):
            part = idx[s:s + batch_size]
            enc = tok([texts[i] for i in part], truncation=True, max_length=max_length, padding=True,
                      return_tensors="pt")
            yield part, {k: v.to(dev) for k, v in enc.items()}

    def fit_predict(tr, te, y):
        torch.manual_seed(seed)
        net = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2).to(dev)
        # Balanced class weights, as for the logistic regression: C is usually the minority.
        counts = np.bincount(y[tr], minlength=2).astype(np.float32)
        weight = torch.tensor(counts.sum() / (2 * np.maximum(counts, 1)), device=dev)
        opt = torch.optim.AdamW(net.parameters(), lr=lr)
        rng = np.random.default_rng(seed)
        net.train()
        for _ in range(epochs):
            for part, enc in batches(rng.permutation(tr)):
                logits = net(**enc).logits
                loss = torch.nn.functional.cross_entropy(logits, torch.tensor(y[part], device=dev), weight=weight)
                opt.zero_grad()
                loss.backward()
                opt.step()
        net.eval()
        out = np.empty(len(te))
        with torch.inference_mode():
            for s, (part, enc) in zip(range(0, len(te), batch_size), batches(np.asarray(te))):
                out[s:s + len(part)] = torch.softmax(net(**enc).logits.float(), -1)[:, 1].cpu().numpy()
        return out
    return fit_predict


def novelty_kfold(curated_emb: np.ndarray | None, pool_emb: np.ndarray | None, *, folds: int = 5,
                  repeats: int = 1, c: float = 1.0, seed: int = 0, fit_predict=None,
                  sizes: tuple[int, int] | None = None) -> NoveltyResult:
    """Out-of-fold P(curated) for every pool row, once per repetition of K folds.

    Rows are C first, then P. The classifier is a logistic regression on the embeddings
    unless ``fit_predict(train_idx, test_idx, y) -> probabilities`` is given (then
    ``sizes=(n_curated, n_pool)`` replaces the embeddings).
    """
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    if fit_predict is None:
        nc, npool = len(curated_emb), len(pool_emb)
        fit_predict = logreg_fold(np.vstack([curated_emb, pool_emb]).astype(np.float32), c)
    else:
        nc, npool = sizes
    if nc < folds or npool < folds:
        raise ValueError(f"{folds}-fold novelty needs at least {folds} curated and {folds} pool records "
                         f"(got {nc} curated, {npool} pool)")
    y = np.concatenate([np.ones(nc, dtype=int), np.zeros(npool, dtype=int)])
    probs = np.full((npool, repeats), np.nan)
    fold_of = np.full((npool, repeats), -1, dtype=int)
    seen = np.zeros((npool, repeats), dtype=int)
    aucs: list[list[float]] = []
    for r in range(repeats):
        skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed + r)
        rep_auc = []
        for k, (tr, te) in enumerate(skf.split(np.zeros((len(y), 1)), y)):
            p = np.asarray(fit_predict(tr, te, y), dtype=float)
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
