"""Typed options of the generate stage; the same classes back the CLI and recipes."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import StrictModel
from ..engine import EngineConfig
from .instruction_checks import BLACKLIST

Method = Literal["self-instruct", "paraphrase", "roundtrip", "backtranslate"]


class BackendConfig(StrictModel):
    kind: Literal["transformers", "openai"] = "transformers"
    model: str | None = Field(None, description="model name/path; default: the embedded SmolLM2")
    # local model
    batch_size: int = Field(8, ge=1)
    device: str | None = None
    # OpenAI-compatible server
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = Field("OPENAI_API_KEY", description="environment variable holding the key")
    concurrency: int = Field(8, ge=1)
    max_retries: int = Field(5, ge=0)
    timeout: float = Field(120.0, gt=0)
    backoff_base: float = Field(1.0, ge=0)
    backoff_max: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _model_for_http(self):
        if self.kind == "openai" and not self.model:
            raise ValueError("backend.model is required with kind 'openai' (the name the server knows)")
        return self


class SelfInstructConfig(StrictModel):
    seeds: str | None = Field(None, description="seed tasks JSONL; default: sftflow's own set")
    n: int = Field(50, ge=1, description="target number of new instructions")
    num_prompt_instructions: int = Field(8, ge=1)
    num_machine_instructions: int = Field(2, ge=0, description="machine-written demos per prompt")
    requests_per_round: int = Field(8, ge=1)
    max_rounds: int = Field(100, ge=1, description="give up after this many bootstrap rounds")
    rouge_threshold: float = Field(0.7, gt=0, lt=1)
    min_words: int = Field(3, ge=1)
    max_words: int = Field(150, ge=1)
    blacklist: list[str] = Field(default_factory=lambda: list(BLACKLIST))
    max_instances: int = Field(5, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(0.5, gt=0, le=1)
    max_new_tokens: int = Field(256, ge=8)
    instance_max_new_tokens: int = Field(300, ge=8)


class ValidationConfig(StrictModel):
    min_cosine: float = Field(0.75, ge=-1, le=1, description="embedding cosine of rewrite vs source")
    embed_method: Literal["sbert", "tfidf"] = "sbert"
    embed_model: str | None = None
    min_length_ratio: float = Field(0.5, gt=0)
    max_length_ratio: float = Field(2.0, gt=0)
    check_numbers: bool = True
    check_entities: bool = True


class RewriteConfig(StrictModel):
    """paraphrase and round trip."""
    input: str | None = Field(None, description="records to rewrite; in a recipe default: the training data")
    format: str = "auto"
    styles: list[str] = Field(default_factory=lambda: ["formal", "casual", "terse", "detailed"])
    k: int = Field(2, ge=1, description="rewrites per instruction (styles taken in order)")
    pivot: str = Field("French", description="round-trip pivot language")
    temperature: float = Field(0.7, ge=0)
    max_new_tokens: int = Field(256, ge=8)
    limit: int | None = Field(None, ge=1, description="rewrite at most this many records")


class BacktranslateConfig(StrictModel):
    """Instruction backtranslation (Humpback) with self-curation."""
    input: str | None = Field(None, description="unlabelled texts: .txt (blank-line separated) or JSONL")
    text_field: str = "text"
    min_score: int = Field(4, ge=1, le=5, description="keep pairs the model rates at least this")
    temperature: float = Field(0.7, ge=0)
    max_new_tokens: int = Field(128, ge=8)
    limit: int | None = Field(None, ge=1)


class GenerateConfig(StrictModel):
    method: Method = "self-instruct"
    seed: int = 0
    show_progress: bool = True
    backend: BackendConfig = Field(default_factory=BackendConfig)
    self_instruct: SelfInstructConfig = Field(default_factory=SelfInstructConfig)
    rewrite: RewriteConfig = Field(default_factory=RewriteConfig)
    backtranslate: BacktranslateConfig = Field(default_factory=BacktranslateConfig)
    validation: ValidationConfig = Field(default_factory=ValidationConfig)
    engine: EngineConfig = Field(default_factory=EngineConfig, description="where the backend runs")
