"""Score a file, then select from it: the functions behind the CLI verbs, the recipe stage
and the experiment. Each step reads and writes files (JSONL + manifest) so it can be
rerun alone; scores come from the cache when they were computed before.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.console import Console

from ..embed import EmbeddingCache
from ..io import read_examples, write_examples, write_manifest, write_rejected
from ..schema import Example
from .cache import ScoreCache
from .config import NoveltyConfig, QualityConfig, ScoreConfig, SelectConfig, SelectionConfig
from .scorers import (MODEL_SCORES, ModelScorer, attach_embeddings, embed_examples, load_embeddings,
                      write_sidecar)
from .selectors import SelectionResult, select

console = Console(stderr=True)


def sidecar_path(jsonl: Path) -> Path:
    return jsonl.with_name(jsonl.name.removesuffix(".jsonl") + ".embeddings.npy")


def _manifest(out_file: Path, **kw) -> Path:
    """``<name>.manifest.json`` beside an output file (several outputs may share a folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        src = write_manifest(tmp, **kw)
        dest = out_file.with_name(out_file.name.removesuffix(".jsonl") + ".manifest.json")
        shutil.move(str(src), dest)
    return dest


def open_cache(cfg: ScoreConfig) -> ScoreCache | None:
    return ScoreCache(cfg.cache) if cfg.use_cache else None


def open_embedding_cache(cfg: ScoreConfig) -> EmbeddingCache | None:
    """The embedding rows: in the score cache's file when one is named (one file to keep or
    delete), else the user cache curation's semantic dedup shares."""
    return EmbeddingCache(cfg.cache) if cfg.use_cache else None


def score_examples(examples: list[Example], cfg: ScoreConfig, *, model: str | None = None,
                   sidecar: Path | None = None, cache: ScoreCache | None = None,
                   embedding_cache: EmbeddingCache | None = None, progress: bool = True,
                   scorer: ModelScorer | None = None) -> dict[str, Any]:
    """Model scores and embeddings into metadata["scores"]; returns counts and timings."""
    report: dict[str, Any] = {}
    kinds = [k for k in cfg.scores if k in MODEL_SCORES]
    if kinds and cfg.engine.kind == "ray":
        from .ray_score import score_on_ray
        report.update(score_on_ray(examples, cfg, model=model))
    elif kinds:
        t = time.perf_counter()
        scorer = scorer or ModelScorer(cfg.model or model, max_length=cfg.max_length,
                                       batch_size=cfg.batch_size, precision=cfg.precision,
                                       template=cfg.template, cache=cache, chunk_size=cfg.chunk_size,
                                       progress=progress, device=cfg.device)
        report.update(scorer.score(examples, kinds))
        report["model"] = scorer.identity.to_dict()
        report["losses_computed"] = scorer.computed
        report["score_s"] = round(time.perf_counter() - t, 2)
    if "embedding" in cfg.scores:
        emb = embed_examples(examples, embedder=cfg.embedder, method=cfg.embedding_method,
                             cache=embedding_cache, progress=progress)
        attach_embeddings(examples, emb, sidecar=None if cfg.inline_embeddings else sidecar,
                          embedder=cfg.embedder, method=cfg.embedding_method)
    return report


def _embeddings_for(examples: list[Example], cfg: ScoreConfig, cache: EmbeddingCache | None,
                    base_dir: Path | None) -> np.ndarray:
    have = all("embedding" in ex.metadata.get("scores", {}) for ex in examples)

    def compute(part: list[Example]) -> np.ndarray:
        return embed_examples(part, embedder=cfg.embedder, method=cfg.embedding_method, cache=cache)
    if have and base_dir is not None:
        return load_embeddings(examples, base_dir, recompute=compute)   # stale rows: computed again
    return compute(examples)


def apply_novelty(pool: list[Example], ncfg: NoveltyConfig, scfg: ScoreConfig, cache: EmbeddingCache | None,
                  base_dir: Path | None = None) -> dict[str, Any]:
    from .novelty import attach_novelty, novelty_kfold, transformer_fold
    from .scorers import embedding_text
    curated = read_examples(ncfg.curated).examples
    if ncfg.classifier == "transformer":
        fp = transformer_fold([embedding_text(ex) for ex in curated + pool], ncfg.transformer,
                              epochs=ncfg.epochs, batch_size=ncfg.batch_size, lr=ncfg.learning_rate,
                              device=scfg.device, seed=ncfg.seed)
        res = novelty_kfold(None, None, folds=ncfg.folds, repeats=ncfg.repeats, seed=ncfg.seed,
                            fit_predict=fp, sizes=(len(curated), len(pool)))
        attach_novelty(pool, res, ncfg.novel_below)
        return res.report(ncfg.novel_below) | {"curated": len(curated), "classifier": "transformer"}
    if scfg.embedding_method == "tfidf":
        # tf-idf spaces are fitted per call: embed both sets together so they share one.
        emb = embed_examples(curated + pool, embedder=scfg.embedder, method="tfidf")
        c_emb, p_emb = emb[:len(curated)], emb[len(curated):]
    else:
        c_emb = embed_examples(curated, embedder=scfg.embedder, method=scfg.embedding_method, cache=cache)
        p_emb = _embeddings_for(pool, scfg, cache, base_dir)
    res = novelty_kfold(c_emb, p_emb, folds=ncfg.folds, repeats=ncfg.repeats, c=ncfg.c, seed=ncfg.seed)
    attach_novelty(pool, res, ncfg.novel_below)
    return res.report(ncfg.novel_below) | {"curated": len(curated)}


def apply_quality(examples: list[Example], qcfg: QualityConfig, scfg: ScoreConfig,
                  cache: EmbeddingCache | None, out_dir: Path, base_dir: Path | None = None) -> dict[str, Any]:
    from .quality import (QualityModel, attach_quality, calibration_plot, labelled_matrix, read_labels,
                          train_quality)
    emb = _embeddings_for(examples, scfg, cache, base_dir)
    report: dict[str, Any] = {}
    if qcfg.labels or qcfg.judge is not None:
        if qcfg.judge is not None:
            labels, judged = judge_labels(examples, qcfg.judge, out_dir / "quality_labels.jsonl")
            report["judge"] = judged
            positive_at = qcfg.judge.positive_at
        else:
            labels, positive_at = read_labels(qcfg.labels, qcfg.label_field), qcfg.positive_at
        x, y, unmatched = labelled_matrix(examples, emb, labels, positive_at)
        model = train_quality(x, y, test_fraction=qcfg.test_fraction, c=qcfg.c, seed=qcfg.seed,
                              embedder=scfg.embedder, method=scfg.embedding_method)
        model_dir = Path(qcfg.model_dir) if qcfg.model_dir else out_dir / "quality_model"
        model.save(model_dir)
        report["calibration_plot"] = str(calibration_plot(model.report, model_dir / "calibration.png"))
        report.update(model.report, model_dir=str(model_dir), labels_without_record=unmatched)
    else:
        model = QualityModel.load(qcfg.model_dir)
        if model.method == "tfidf":
            raise ValueError(f"quality model {qcfg.model_dir} was trained on tf-idf embeddings; a tf-idf "
                             "space is fitted per dataset, so it cannot score new records. Train it on "
                             "sbert embeddings to reuse it")
        if model.method != scfg.embedding_method or model.embedder != scfg.embedder:
            raise ValueError(f"quality model {qcfg.model_dir} was trained on {model.method}:"
                             f"{model.embedder or 'default'} embeddings, not {scfg.embedding_method}:"
                             f"{scfg.embedder or 'default'}")
        report.update(model_dir=qcfg.model_dir, heldout_auc=model.report.get("heldout_auc"))
    attach_quality(examples, model.predict(emb))
    return report


def judge_labels(examples: list[Example], jcfg, out: Path) -> tuple[dict[str, float], dict[str, Any]]:
    """Grade a seeded sample of records 1-10 with an LLM judge (the eval stage's single-answer
    judge); writes every grade, raw reply included, to ``out``. Unparsed replies label nothing."""
    import random

    from ..backends import get_backend
    from ..judge import judge_single
    from ..io import write_jsonl
    sample = random.Random(jcfg.seed).sample(examples, min(jcfg.limit, len(examples)))
    opts = {"base_url": jcfg.base_url} if jcfg.base_url else {}
    backend = get_backend(jcfg.backend, jcfg.model, **opts)
    _, rows = judge_single(backend, [ex.prompt for ex in sample], {"record": [ex.response for ex in sample]},
                           prompt=jcfg.prompt, max_new_tokens=jcfg.max_new_tokens, seed=jcfg.seed)
    write_jsonl(out, [{"id": ex.id, "label": r["record"], "raw": r["raw_record"]} for ex, r in zip(sample, rows)])
    labels = {ex.id: float(r["record"]) for ex, r in zip(sample, rows) if r["record"] is not None}
    return labels, {"asked": len(sample), "graded": len(labels), "unparsed": len(sample) - len(labels),
                    "labels_file": str(out), "backend": jcfg.backend, "model": jcfg.model}


def score_file(inputs: Sequence[str | Path], out: str | Path, cfg: SelectConfig, *,
               model: str | None = None, fmt: str = "auto", progress: bool = True) -> dict[str, Any]:
    """Read, score (+ novelty, quality when configured), write ``out`` with its manifest."""
    out = Path(out)
    res = read_examples(inputs, fmt, skip_invalid=True)
    if res.rejected:
        write_rejected(out.with_name(out.name.removesuffix(".jsonl") + ".rejected.jsonl"), res.rejected)
    examples = res.examples
    cache, emb_cache = open_cache(cfg.score), open_embedding_cache(cfg.score)
    report = {"input": len(examples) + len(res.rejected), "unreadable": len(res.rejected)}
    report["scores"] = score_examples(examples, cfg.score, model=model, sidecar=sidecar_path(out),
                                      cache=cache, embedding_cache=emb_cache, progress=progress)
    base = out.parent
    if cfg.novelty is not None:
        report["novelty"] = apply_novelty(examples, cfg.novelty, cfg.score, emb_cache,
                                          base if "embedding" in cfg.score.scores else None)
    if cfg.quality is not None:
        report["quality"] = apply_quality(examples, cfg.quality, cfg.score, emb_cache, out.parent,
                                          base if "embedding" in cfg.score.scores else None)
    write_examples(out, examples)
    report["written"] = len(examples)
    if cache is not None:
        report["cache"] = {"path": str(cache.path), "hits": cache.hits, "misses": cache.misses,
                           "embeddings": {"path": str(emb_cache.path), "hits": emb_cache.hits,
                                          "misses": emb_cache.misses}}
    _manifest(out, stage="score", inputs=inputs, config=cfg, counts={"input": report["input"],
              "scored": len(examples), "unreadable": len(res.rejected)}, extra={"report": report})
    return report


def _rewrite_sidecar(examples: list[Example], emb: np.ndarray | None, out: Path) -> None:
    if emb is None or not examples:
        return
    rows = [ex.metadata["scores"]["embedding"] for ex in examples]
    if all("vector" in r for r in rows):
        return
    write_sidecar(examples, emb, sidecar_path(out), rows[0].get("model"))


def select_file(scored: str | Path, out_dir: str | Path, scfg: SelectionConfig, *,
                config_for_manifest: Any = None) -> SelectionResult:
    """Select from a scored file: selected.jsonl, not_selected.jsonl, manifest.json in ``out_dir``."""
    scored, out_dir = Path(scored), Path(out_dir)
    examples = read_examples(scored).examples
    needs_emb = scfg.method in ("kcenter", "diverse")
    has_emb = examples and all("embedding" in ex.metadata.get("scores", {}) for ex in examples)
    emb = load_embeddings(examples, scored.parent) if (needs_emb or has_emb) else None
    row = {id(ex): i for i, ex in enumerate(examples)}
    res = select(examples, scfg, embeddings=emb)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, part in (("selected.jsonl", res.selected), ("not_selected.jsonl", res.not_selected)):
        sub = emb[[row[id(ex)] for ex in part]] if emb is not None and part else None
        _rewrite_sidecar(part, sub, out_dir / name)
        write_examples(out_dir / name, part)
    write_manifest(out_dir, stage="select", inputs=[scored], config=config_for_manifest or scfg,
                   counts={"input": len(examples), "selected": len(res.selected),
                           "not_selected": len(res.not_selected)}, extra={"summary": res.summary})
    return res


def score_and_select(inputs: Sequence[str | Path], out_dir: str | Path, cfg: SelectConfig, *,
                     model: str | None = None, progress: bool = True) -> tuple[dict, SelectionResult]:
    out_dir = Path(out_dir)
    report = score_file(inputs, out_dir / "scored.jsonl", cfg, model=model, progress=progress)
    res = select_file(out_dir / "scored.jsonl", out_dir, cfg.selection, config_for_manifest=cfg)
    return report, res
