"""Typed options of the select stage (the class is the schema; unknown keys raise)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import StrictModel
from ..engine import EngineConfig

ScoreName = Literal["ppl", "ifd", "option_probs", "embedding"]


class ScoreConfig(StrictModel):
    model: str | None = Field(None, description="model alias, folder or hub id (recipe's model if unset)")
    scores: list[ScoreName] = Field(default_factory=lambda: ["ppl", "ifd"])
    max_length: int | None = Field(2048, ge=8, description="longer records are flagged, not truncated")
    batch_size: int = Field(8, ge=1)
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto = bf16 where the CPU/GPU has native bf16, else fp32")
    template: str | None = Field(None, description="fallback chat template name (model's own if unset)")
    device: str | None = None
    cache: str | None = Field(None, description="score cache file [~/.cache/sftflow/scores.sqlite]")
    use_cache: bool = True
    chunk_size: int = Field(64, ge=1, description="records scored between cache commits")
    embedder: str | None = Field(None, description="sentence-transformers model [all-MiniLM-L6-v2]")
    embedding_method: Literal["sbert", "tfidf"] = "sbert"
    inline_embeddings: bool = Field(False, description="store vectors in the records, not a sidecar .npy")
    engine: EngineConfig = Field(default_factory=EngineConfig, description="where the scoring runs")


class NoveltyConfig(StrictModel):
    curated: list[str] = Field(..., min_length=1, description="files of the curated set C")
    folds: int = Field(5, ge=2)
    repeats: int = Field(1, ge=1, description="repeated K-fold: one out-of-fold probability per repeat")
    classifier: Literal["logreg", "transformer"] = Field(
        "logreg", description="logreg on embeddings, or a fine-tuned transformer classifier (GPU)")
    c: float = Field(1.0, gt=0, description="inverse regularisation strength of the logistic regression")
    transformer: str | None = Field(None, description="classifier base model [the default embedder]")
    epochs: int = Field(2, ge=1, description="transformer: epochs per fold")
    batch_size: int = Field(16, ge=1)
    learning_rate: float = Field(5e-5, gt=0)
    novel_below: float = Field(0.2, gt=0, lt=1, description="novel = every out-of-fold probability below this")
    seed: int = 0


class JudgeLabelConfig(StrictModel):
    """Labels from an LLM judge: each sampled record's answer is graded 1-10."""
    backend: Literal["transformers", "openai", "fake"] = "transformers"
    model: str | None = Field(None, description="judge model (a larger one than the model being tuned)")
    base_url: str | None = Field(None, description="openai backend: server URL")
    limit: int = Field(200, ge=4, description="records to label (a seeded sample)")
    positive_at: float = Field(7, ge=1, le=10, description="grades >= this count as good")
    max_new_tokens: int = Field(256, ge=1)
    prompt: str | None = Field(None, description="grading prompt file; default: the eval judge's")
    seed: int = 0


class QualityConfig(StrictModel):
    model_dir: str | None = Field(None, description="a saved quality model to apply")
    labels: str | None = Field(None, description="JSONL of {id, label} to train a quality model")
    judge: JudgeLabelConfig | None = Field(None, description="label a sample with an LLM judge, then train")
    label_field: str = "label"
    positive_at: float = Field(0.5, description="labels >= this count as good (numeric ratings)")
    test_fraction: float = Field(0.25, gt=0, lt=1)
    c: float = Field(1.0, gt=0)
    seed: int = 0

    @model_validator(mode="after")
    def _one_source(self):
        if not self.model_dir and not self.labels and self.judge is None:
            raise ValueError("quality needs model_dir (a saved model), labels or judge (to train one)")
        if self.labels and self.judge is not None:
            raise ValueError("quality: give labels or judge, not both")
        return self


class QuotaConfig(StrictModel):
    by: str = Field("_source", description="metadata key (dotted path) naming the group: task type, source")
    max_per_group: int | None = Field(None, ge=1)
    balanced: bool = Field(True, description="split the budget evenly; small groups keep all, the rest is shared")


class SelectionConfig(StrictModel):
    method: Literal["topk", "rule", "kcenter", "diverse"] = "topk"
    rule: str | None = Field(None, description="filter, e.g. '(ppl > 20 or option_prob_sum < 0.5) and quality > 0.7'")
    order_by: str | None = Field(None, description="score that ranks records (topk, diverse)")
    descending: bool = True
    budget: int | float | None = Field(None, description=">= 1: a count; < 1: a fraction of the input")
    min_distance: float = Field(0.1, ge=0, le=2, description="diverse: skip a record closer (cosine) to a kept one")
    quota: QuotaConfig | None = None
    seed: int = 0

    @field_validator("rule")
    @classmethod
    def _parse(cls, v):
        if v is not None:
            from .rules import parse_rule
            parse_rule(v)
        return v

    @field_validator("budget")
    @classmethod
    def _positive(cls, v):
        if v is not None and v <= 0:
            raise ValueError("budget must be > 0")
        return v

    @model_validator(mode="after")
    def _needs(self):
        if self.method in ("topk", "diverse") and not self.order_by:
            raise ValueError(f"method '{self.method}' needs order_by (the score to rank by)")
        if self.method == "rule" and not self.rule:
            raise ValueError("method 'rule' needs a rule")
        if self.method == "kcenter" and self.budget is None:
            raise ValueError("method 'kcenter' needs a budget")
        return self


class SelectConfig(StrictModel):
    score: ScoreConfig = Field(default_factory=ScoreConfig)
    novelty: NoveltyConfig | None = None
    quality: QualityConfig | None = None
    selection: SelectionConfig = Field(default_factory=lambda: SelectionConfig(
        method="topk", rule="ifd < 1", order_by="ifd", budget=0.5))
