"""A small quality (reward) classifier: q in [0, 1] from embeddings, trained on labelled records.

Labels come from a file (``{"id": ..., "label": ...}`` per line; 0/1, or a rating
binarised at ``positive_at``). The model is a logistic regression on the record
embeddings: it trains in a second on a few hundred labels, and its probabilities are
calibrated enough to threshold. It is saved as plain JSON (weights, intercept, the
embedder it expects, its held-out AUC), never as a pickle, so loading a model file can
never run code. A held-out split (stratified) gives the AUC and a calibration plot.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..schema import Example, RecordError
from .scorers import scores_of

MODEL_FILE = "quality.json"


@dataclass
class QualityModel:
    coef: np.ndarray
    intercept: float
    embedder: str | None = None
    method: str = "sbert"
    report: dict[str, Any] = field(default_factory=dict)

    def predict(self, emb: np.ndarray) -> np.ndarray:
        if emb.shape[1] != self.coef.shape[0]:
            raise ValueError(f"quality model expects {self.coef.shape[0]}-d embeddings "
                             f"({self.method}:{self.embedder or 'default'}), got {emb.shape[1]}-d")
        z = emb.astype(np.float64) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / MODEL_FILE
        path.write_text(json.dumps({"kind": "logistic_regression", "coef": self.coef.tolist(),
                                    "intercept": self.intercept, "embedder": self.embedder,
                                    "method": self.method, "report": self.report}, indent=1))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "QualityModel":
        path = Path(path)
        if path.is_dir():
            path = path / MODEL_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path}: no quality model here (train one with quality.labels)")
        d = json.loads(path.read_text())
        if d.get("kind") != "logistic_regression":
            raise ValueError(f"{path}: unknown quality model kind {d.get('kind')!r}")
        return cls(coef=np.asarray(d["coef"], dtype=np.float64), intercept=float(d["intercept"]),
                   embedder=d.get("embedder"), method=d.get("method", "sbert"), report=d.get("report", {}))


def read_labels(path: str | Path, label_field: str = "label") -> dict[str, float]:
    """id -> numeric label; bad lines raise naming file, line and field."""
    from ..io import iter_jsonl
    path = Path(path)
    out: dict[str, float] = {}
    for n, rec in iter_jsonl(path):
        if not isinstance(rec, dict) or "id" not in rec:
            raise RecordError("missing 'id'", path=str(path), line=n, field="id")
        v = rec.get(label_field)
        if isinstance(v, bool):
            v = float(v)
        if not isinstance(v, (int, float)) or not math.isfinite(v):
            raise RecordError(f"expected a number, got {v!r}", path=str(path), line=n, field=label_field)
        out[str(rec["id"])] = float(v)
    if not out:
        raise RecordError("no labels", path=str(path))
    return out


def train_quality(emb: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.25, c: float = 1.0,
                  seed: int = 0, embedder: str | None = None, method: str = "sbert") -> QualityModel:
    """Fit on a stratified train split, report held-out AUC and calibration, refit on all."""
    from sklearn.calibration import calibration_curve
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import train_test_split

    y = np.asarray(y, dtype=int)
    counts = np.bincount(y, minlength=2)
    n_test = math.ceil(len(y) * test_fraction)
    if counts.min() < 2 or n_test < 2:
        raise ValueError(f"quality labels need at least 2 good and 2 bad examples and a test split of 2+ "
                         f"(got {counts[1]} good, {counts[0]} bad)")
    tr, te = train_test_split(np.arange(len(y)), test_size=test_fraction, stratify=y, random_state=seed)
    clf = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(emb[tr], y[tr])
    p = clf.predict_proba(emb[te])[:, 1]
    bins = min(10, max(2, len(te) // 5))
    frac_pos, mean_pred = calibration_curve(y[te], p, n_bins=bins, strategy="quantile")
    report = {"heldout_auc": float(roc_auc_score(y[te], p)) if len(set(y[te])) == 2 else None,
              "brier": float(brier_score_loss(y[te], p)), "n_train": int(len(tr)), "n_test": int(len(te)),
              "positives": int(counts[1]), "negatives": int(counts[0]),
              "calibration": {"mean_predicted": mean_pred.tolist(), "fraction_positive": frac_pos.tolist()}}
    # The reported numbers are from the held-out split; the shipped model uses every label.
    full = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(emb, y)
    return QualityModel(coef=full.coef_[0].astype(np.float64), intercept=float(full.intercept_[0]),
                        embedder=embedder, method=method, report=report)


def calibration_plot(report: dict[str, Any], path: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cal = report["calibration"]
    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], marker="o", label="quality model")
    auc = report.get("heldout_auc")
    ax.set(xlabel="predicted q", ylabel="fraction labelled good", xlim=(0, 1), ylim=(0, 1),
           title=f"held-out calibration (n={report['n_test']}, AUC={auc:.3f})" if auc is not None
           else f"held-out calibration (n={report['n_test']})")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def labelled_matrix(examples: list[Example], emb: np.ndarray, labels: dict[str, float],
                    positive_at: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Rows of ``emb`` whose record has a label, binarised; and how many labels matched no record."""
    rows, ys = [], []
    for i, ex in enumerate(examples):
        if ex.id in labels:
            rows.append(i)
            ys.append(int(labels[ex.id] >= positive_at))
    return emb[rows], np.asarray(ys), len(set(labels) - {ex.id for ex in examples})


def attach_quality(examples: list[Example], q: np.ndarray) -> None:
    for ex, v in zip(examples, q):
        scores_of(ex)["quality"] = float(v)
