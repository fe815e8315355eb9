"""Novelty K-fold and the quality classifier on synthetic embeddings with a known answer."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn.model_selection import StratifiedKFold

from sftflow import Example
from sftflow.schema import RecordError
from sftflow.select.novelty import attach_novelty, novelty_kfold
from sftflow.select.quality import (QualityModel, calibration_plot, labelled_matrix, read_labels,
                                    train_quality)


def blob(rng, centre, n, dim=8, spread=0.15):
    x = np.asarray(centre, dtype=np.float32) + spread * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_every_pool_record_is_out_of_fold_exactly_once_per_fold_split():
    rng = np.random.default_rng(0)
    a, b = np.eye(8)[0], np.eye(8)[1]
    curated = blob(rng, a, 20)
    pool = np.vstack([blob(rng, a, 20), blob(rng, b, 10)])      # the last 10 are new territory
    res = novelty_kfold(curated, pool, folds=5, repeats=2, seed=3)
    assert res.probs.shape == (30, 2) and np.isfinite(res.probs).all()
    y = np.r_[np.ones(20), np.zeros(30)]
    for r in range(2):
        splits = StratifiedKFold(5, shuffle=True, random_state=3 + r).split(np.zeros((50, 1)), y)
        for k, (_, te) in enumerate(splits):
            held = sorted(te[te >= 20] - 20)
            assert sorted(np.flatnonzero(res.folds[:, r] == k)) == held   # held out in fold k, only there
    assert len(res.fold_auc) == 2 and all(len(f) == 5 for f in res.fold_auc)
    assert res.probs[20:].max() < res.probs[:20].min()           # new territory ranks lowest
    novel = res.novel(0.3)
    assert novel[20:].all() and not novel[:20].any()
    pool_ex = [Example.single(f"q{i}", f"a{i}") for i in range(30)]
    attach_novelty(pool_ex, res, 0.3)
    sc = pool_ex[25].metadata["scores"]
    assert sc["novel"] is True and len(sc["curated_probs"]) == 2
    assert sc["curated_prob"] == pytest.approx(float(np.mean(sc["curated_probs"])))


def test_novelty_needs_enough_records():
    with pytest.raises(ValueError, match="at least 5"):
        novelty_kfold(np.ones((3, 4)), np.ones((10, 4)), folds=5)


def test_quality_model_trains_saves_reloads_and_reports(tmp_path):
    rng = np.random.default_rng(1)
    emb = rng.standard_normal((120, 6)).astype(np.float32)
    y = (emb[:, 0] + 0.3 * rng.standard_normal(120) > 0).astype(int)
    model = train_quality(emb, y, test_fraction=0.25, seed=0)
    assert model.report["n_test"] == 30 and model.report["n_train"] == 90
    assert model.report["heldout_auc"] > 0.9
    q = model.predict(emb)
    assert ((q >= 0) & (q <= 1)).all()
    assert q[y == 1].mean() > q[y == 0].mean()
    model.save(tmp_path / "qm")
    again = QualityModel.load(tmp_path / "qm")
    assert np.allclose(again.predict(emb), q)
    png = calibration_plot(model.report, tmp_path / "calibration.png")
    assert png.stat().st_size > 1000
    with pytest.raises(ValueError, match="expects 6-d"):
        again.predict(np.ones((2, 3)))


def test_quality_needs_both_classes():
    with pytest.raises(ValueError, match="at least 2 good and 2 bad"):
        train_quality(np.ones((10, 2)), np.r_[np.ones(9), 0])


def test_labels_file_errors_name_line_and_field(tmp_path):
    p = tmp_path / "labels.jsonl"
    p.write_text(json.dumps({"id": "a", "label": 1}) + "\n" + json.dumps({"id": "b", "label": "good"}) + "\n")
    with pytest.raises(RecordError, match=r"labels.jsonl: line 2: field 'label'"):
        read_labels(p)
    p.write_text(json.dumps({"id": "a", "rating": 4}) + "\n" + json.dumps({"id": "b", "rating": 2}) + "\n")
    labels = read_labels(p, "rating")
    exs = [Example(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": "y"}], id=i)
           for i in ("a", "b", "c")]
    x, y, unmatched = labelled_matrix(exs, np.eye(3), labels | {"zz": 5.0}, positive_at=3)
    assert y.tolist() == [1, 0] and x.shape == (2, 3) and unmatched == 1


def test_quality_labels_from_an_llm_judge(tmp_path, monkeypatch):
    import sftflow.backends as backends
    from sftflow.backends import FakeBackend
    from sftflow.select.config import QualityConfig, ScoreConfig
    from sftflow.select.pipeline import apply_quality

    def grade(msgs):
        text = msgs[-1]["content"]
        if "unparseable" in text:
            return "no idea"
        return "Rating: [[9]]" if "thorough" in text else "Rating: [[2]]"

    fake = FakeBackend(grade)
    monkeypatch.setattr(backends, "get_backend", lambda kind, model=None, **o: fake)
    exs = []
    for i in range(24):
        good = i % 2 == 0
        ans = (f"A thorough explanation of topic {i} with careful steps and examples" if good
               else f"dunno {i}")
        exs.append(Example.single(f"Explain topic {i}.", ans + (" unparseable" if i == 23 else "")))
    q = QualityConfig(judge={"backend": "fake", "limit": 24, "positive_at": 7}, test_fraction=0.25)
    report = apply_quality(exs, q, ScoreConfig(embedding_method="tfidf"), None, tmp_path)
    assert report["judge"] == {"asked": 24, "graded": 23, "unparsed": 1, "backend": "fake", "model": None,
                               "labels_file": str(tmp_path / "quality_labels.jsonl")}
    assert len(fake.calls) == 24
    labels = [json.loads(l) for l in (tmp_path / "quality_labels.jsonl").read_text().splitlines()]
    assert sum(1 for r in labels if r["label"] is None) == 1
    q_good = [e.metadata["scores"]["quality"] for e in exs[:22:2]]
    q_bad = [e.metadata["scores"]["quality"] for e in exs[1:22:2]]
    assert min(q_good) > max(q_bad)
    assert report["heldout_auc"] == 1.0
    assert (tmp_path / "quality_model" / "quality.json").exists()
    assert (tmp_path / "quality_model" / "calibration.png").exists()


def test_transformer_novelty_classifier_runs_per_fold(tmp_path):
    """The fine-tuned classifier option (a tiny random BERT here): out-of-fold exactly once per fold."""
    from sftflow.select.novelty import transformer_fold
    curated = [f"How do I compute compound interest on {i} dollars?" for i in range(6)]
    pool = [f"How do I compute simple interest on {i} euros?" for i in range(6)] + \
           [f"Write a poem about the {w} sea." for w in ["red", "blue", "green", "grey", "calm", "wild"]]
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification
    from sftflow.models import embedder_path
    tok = AutoTokenizer.from_pretrained(embedder_path())      # the real MiniLM tokenizer
    __import__("torch").manual_seed(0)
    tiny = BertForSequenceClassification(BertConfig(vocab_size=tok.vocab_size, hidden_size=32,
                                                    num_hidden_layers=1, num_attention_heads=2,
                                                    intermediate_size=64, num_labels=2))
    tiny.save_pretrained(tmp_path / "tiny-bert")
    tok.save_pretrained(tmp_path / "tiny-bert")
    fp = transformer_fold(curated + pool, str(tmp_path / "tiny-bert"), epochs=2, batch_size=8, lr=3e-3)
    res = novelty_kfold(None, None, folds=3, seed=0, fit_predict=fp, sizes=(6, 12))
    assert np.isfinite(res.probs).all() and (np.sort(res.folds[:, 0]) == np.repeat([0, 1, 2], 4)).all()
    assert len(res.fold_auc[0]) == 3
    assert ((res.probs > 0) & (res.probs < 1)).all()


def _imbalanced(rng, n):
    # 15% good; the classes overlap, so a probability is the honest answer, not 0 or 1
    y = (rng.random(n) < 0.15).astype(int)
    emb = rng.standard_normal((n, 5)) + np.outer(y, [1.2, 0.6, 0, 0, 0])
    return emb, y


def test_quality_is_a_calibrated_probability_not_a_balanced_score(tmp_path):
    rng = np.random.default_rng(4)
    emb, y = _imbalanced(rng, 600)
    model = train_quality(emb, y, test_fraction=0.25, seed=0)
    fresh, y_fresh = _imbalanced(rng, 4000)
    q = model.predict(fresh)
    # Balanced class weights alone put the mean q near 0.4 with 15% good; calibrated, q averages the base rate.
    assert abs(q.mean() - y_fresh.mean()) < 0.03
    # A threshold means what it says: of the records with q > 0.5, more than half are good.
    assert y_fresh[q > 0.5].mean() > 0.5
    rep = model.report
    assert rep["calibration_method"] == "sigmoid" and rep["calibration_folds"] == 5
    assert rep["brier"] < rep["brier_uncalibrated"] and rep["brier"] < rep["brier_base_rate"]
    assert "calibrated probability" in rep["threshold_meaning"]
    # The saved JSON reproduces scikit-learn's calibrated predictions exactly, and the old
    # uncalibrated format is refused rather than read as a probability.
    model.save(tmp_path / "qm")
    assert np.allclose(QualityModel.load(tmp_path / "qm").predict(fresh), q)
    stale = json.loads((tmp_path / "qm" / "quality.json").read_text()) | {"kind": "logistic_regression"}
    (tmp_path / "qm" / "quality.json").write_text(json.dumps(stale))
    with pytest.raises(ValueError, match="uncalibrated"):
        QualityModel.load(tmp_path / "qm")
    assert calibration_plot(rep, tmp_path / "reliability.png").stat().st_size > 1000


def test_saved_model_equals_sklearn_calibrated_classifier():
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sftflow.select.quality import _fit_calibrated
    rng = np.random.default_rng(5)
    for n in (200, 1200):                                  # sigmoid below 1000 labels, isotonic from there
        emb, y = _imbalanced(rng, n)
        est, cmap, _ = _fit_calibrated(emb, y, 1.0, 0)
        ref = CalibratedClassifierCV(LogisticRegression(max_iter=2000, class_weight="balanced"),
                                     method=cmap["method"], ensemble=False,
                                     cv=StratifiedKFold(5, shuffle=True, random_state=0)).fit(emb, y)
        model = QualityModel(coef=est.coef_[0], intercept=float(est.intercept_[0]), calibration=cmap)
        assert cmap["method"] == ("sigmoid" if n < 1000 else "isotonic")
        assert np.allclose(model.predict(emb), ref.predict_proba(emb)[:, 1])
