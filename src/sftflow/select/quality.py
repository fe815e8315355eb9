"""A small quality (reward) classifier: q in [0, 1] from embeddings, trained on labelled records.

Labels come from a file (``{"id": ..., "label": ...}`` per line; 0/1, or a rating
binarised at ``positive_at``). The model is a logistic regression on the record
embeddings (balanced class weights, so a rare class still shapes the direction),
followed by a calibration map fitted on held-out folds (scikit-learn's
``CalibratedClassifierCV``): balanced weights make the raw scores a ranking whose
scale assumes a 50/50 label mix, not a probability, so reading ``quality > 0.7`` off them
would mean nothing. After calibration:

    q = the probability that the labeller (the label file or the judge) calls this
        record good, at the label mix of the labelled sample.

So ``quality > 0.7`` keeps records of which about 70% or more would be labelled good;
on the held-out split, the reliability curve (fraction labelled good against mean q per
bin) and the Brier score show how true that is. If the labelled sample was not drawn at
random from the pool, the probability is about that sample's mix, not the pool's.

Calibration is Platt's sigmoid (two parameters, stable on a few hundred labels) below
1,000 training labels and isotonic regression from there (it needs that many to beat
the sigmoid and not overfit, per scikit-learn's guidance). The model is saved as plain
JSON (weights, intercept, the calibration map, the embedder it expects, its held-out
report), never as a pickle, so loading a model file can never run code.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..io.atomic import atomic_write_text
from ..schema import Example, RecordError
from .scorers import scores_of

MODEL_FILE = "quality.json"
KIND = "calibrated_logistic_regression"
ISOTONIC_FROM = 1000          # training labels from which the calibration map is isotonic


@dataclass
class QualityModel:
    coef: np.ndarray
    intercept: float
    calibration: dict[str, Any]        # {"method": "sigmoid", "a", "b"} or {"method": "isotonic", "x", "y"}
    embedder: str | None = None
    method: str = "sbert"
    report: dict[str, Any] = field(default_factory=dict)

    def predict(self, emb: np.ndarray) -> np.ndarray:
        """Calibrated q; the same numbers as scikit-learn's ``predict_proba`` of the fitted model."""
        if emb.shape[1] != self.coef.shape[0]:
            raise ValueError(f"quality model expects {self.coef.shape[0]}-d embeddings "
                             f"({self.method}:{self.embedder or 'default'}), got {emb.shape[1]}-d")
        z = emb.astype(np.float64) @ self.coef + self.intercept          # the decision function
        cal = self.calibration
        if cal["method"] == "sigmoid":
            return 1.0 / (1.0 + np.exp(cal["a"] * z + cal["b"]))
        return np.interp(z, cal["x"], cal["y"])          # isotonic, clipped at both ends

    def save(self, out_dir: str | Path) -> Path:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path = out / MODEL_FILE
        atomic_write_text(path, json.dumps({"kind": KIND, "coef": self.coef.tolist(), "intercept": self.intercept,
                                            "calibration": self.calibration, "embedder": self.embedder,
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
        if d.get("kind") == "logistic_regression":
            raise ValueError(f"{path}: an uncalibrated quality model (its scores are not probabilities, "
                             "so a threshold on them means nothing); train it again from its labels")
        if d.get("kind") != KIND:
            raise ValueError(f"{path}: unknown quality model kind {d.get('kind')!r}")
        return cls(coef=np.asarray(d["coef"], dtype=np.float64), intercept=float(d["intercept"]),
                   calibration=d["calibration"], embedder=d.get("embedder"), method=d.get("method", "sbert"),
                   report=d.get("report", {}))


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


def _fit_calibrated(x: np.ndarray, y: np.ndarray, c: float, seed: int):
    """Balanced logistic regression + a calibration map fitted on out-of-fold predictions.

    ``ensemble=False``: the regression is refitted on all of ``x`` and the map is fitted on
    cross-validated decision values, so one (regression, map) pair describes the model and
    the map never saw the predictions of a model that was trained on the same record.
    """
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    folds = int(min(5, np.bincount(y, minlength=2).min()))
    if folds < 2:
        raise ValueError("quality labels: calibration needs at least 2 good and 2 bad labels in the "
                         "training split (got fewer); label more records")
    method = "isotonic" if len(y) >= ISOTONIC_FROM else "sigmoid"
    cal = CalibratedClassifierCV(LogisticRegression(C=c, max_iter=2000, class_weight="balanced"),
                                 method=method, cv=StratifiedKFold(folds, shuffle=True, random_state=seed),
                                 ensemble=False).fit(x, y)
    fitted = cal.calibrated_classifiers_[0]
    calibrator = fitted.calibrators[0]
    if method == "sigmoid":
        # q = 1 / (1 + exp(a z + b)) rises with the regression's score z only when a < 0. Platt's
        # fit gives a >= 0 when the out-of-fold scores rank bad records above good ones (too few
        # labels, or embeddings that do not see the difference): shipping that map would rank
        # every record backwards, so refuse.
        if calibrator.a_ >= 0:
            raise ValueError(f"quality labels: out-of-fold scores rank bad records above good ones (the "
                             f"calibration would reverse the model's ranking: Platt slope a={calibrator.a_:.3g} "
                             f">= 0, from {len(y)} labels); label more records or use other embeddings")
        cmap = {"method": "sigmoid", "a": float(calibrator.a_), "b": float(calibrator.b_)}
    else:
        cmap = {"method": "isotonic", "x": calibrator.X_thresholds_.tolist(),
                "y": calibrator.y_thresholds_.tolist()}
    cmap["folds"] = folds
    return fitted.estimator, cmap, cal


def _reliability(y: np.ndarray, p: np.ndarray, bins: int) -> dict[str, list[float]]:
    from sklearn.calibration import calibration_curve
    frac_pos, mean_pred = calibration_curve(y, p, n_bins=bins, strategy="quantile")
    return {"mean_predicted": mean_pred.tolist(), "fraction_positive": frac_pos.tolist()}


def train_quality(emb: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.25, c: float = 1.0,
                  seed: int = 0, embedder: str | None = None, method: str = "sbert") -> QualityModel:
    """Fit on a stratified train split, report held-out AUC, Brier score and reliability, refit on all."""
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
    _, cmap, cal = _fit_calibrated(emb[tr], y[tr], c, seed)
    p = cal.predict_proba(emb[te])[:, 1]
    # The balanced regression alone, for comparison: what thresholding raw scores would have meant.
    raw = LogisticRegression(C=c, max_iter=2000, class_weight="balanced").fit(emb[tr], y[tr])
    p_raw = raw.predict_proba(emb[te])[:, 1]
    bins = min(10, max(2, len(te) // 5))
    base_rate = float(y[tr].mean())
    report = {"heldout_auc": float(roc_auc_score(y[te], p)) if len(set(y[te])) == 2 else None,
              "brier": float(brier_score_loss(y[te], p)),
              "brier_uncalibrated": float(brier_score_loss(y[te], p_raw)),
              "brier_base_rate": float(brier_score_loss(y[te], np.full(len(te), base_rate))),
              "calibration_method": cmap["method"], "calibration_folds": cmap["folds"],
              "n_train": int(len(tr)), "n_test": int(len(te)),
              "positives": int(counts[1]), "negatives": int(counts[0]),
              "calibration": _reliability(y[te], p, bins),
              "calibration_uncalibrated": _reliability(y[te], p_raw, bins),
              "threshold_meaning": "quality is the calibrated probability that the labeller calls a record "
                                   "good, at the labelled sample's mix; quality > t keeps records of which "
                                   "about a share t or more would be labelled good"}
    # The reported numbers are from the held-out split; the shipped model uses every label.
    full, cmap, _ = _fit_calibrated(emb, y, c, seed)
    return QualityModel(coef=full.coef_[0].astype(np.float64), intercept=float(full.intercept_[0]),
                        calibration=cmap, embedder=embedder, method=method, report=report)


def calibration_plot(report: dict[str, Any], path: str | Path) -> Path:
    """Reliability diagram on the held-out split: calibrated q, and the raw balanced scores."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(4.4, 4.4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfectly calibrated")
    raw = report.get("calibration_uncalibrated")
    if raw:
        ax.plot(raw["mean_predicted"], raw["fraction_positive"], marker="x", c="tab:orange", alpha=0.7,
                label=f"balanced scores, uncalibrated (Brier {report['brier_uncalibrated']:.3f})")
    cal = report["calibration"]
    ax.plot(cal["mean_predicted"], cal["fraction_positive"], marker="o", c="tab:blue",
            label=f"quality q, {report.get('calibration_method', '')} (Brier {report['brier']:.3f})")
    auc = report.get("heldout_auc")
    ax.set(xlabel="mean predicted q (quantile bins)", ylabel="fraction labelled good", xlim=(0, 1), ylim=(0, 1),
           title=f"held-out reliability (n={report['n_test']}, AUC={auc:.3f})" if auc is not None
           else f"held-out reliability (n={report['n_test']})")
    ax.legend(loc="upper left", fontsize=7)
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
