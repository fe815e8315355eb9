"""Typed configuration of ``sftflow curate``.

A recipe names the steps in order and gives each step's parameters under its own
key, so ``--set near_dedup.threshold=0.8`` addresses one parameter and a typo in
either a step name or a parameter is an error that names the closest valid one::

    steps: [empty, length, repetition, truncation, echo, restated, language, refusal,
            template_leak, exact_dedup, near_dedup]
    length: {min_response: 20, max_response: 2048, short_answers: [yes_no, option, number]}
    near_dedup: {threshold: 0.7, ngram: 5, num_perm: 128}
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from ..config import StrictModel, closest
from ..engine import EngineConfig

TextField = Literal["prompt", "response", "conversation"]
ShortKind = Literal["yes_no", "option", "number", "label", "span", "title", "summary", "short_request"]
ALL_SHORT: list[str] = ["yes_no", "option", "number", "label", "span", "title", "summary", "short_request"]
_SHORT_HELP = ("a response under the minimum is kept when the prompt asks for this kind of short answer "
               "(see sftflow.curate.short_answers); [] = the minimum applies to every task")
KeepPolicy = Literal["first", "longest_response", "highest_score"]


def _compile_all(patterns: list[str]) -> list[str]:
    for p in patterns:
        try:
            re.compile(p)
        except re.error as e:
            raise ValueError(f"invalid regular expression {p!r}: {e}") from None
    return patterns


class EmptyParams(StrictModel):
    min_response_chars: int = Field(20, ge=0, description="responses shorter than this (stripped) are near-empty, "
                                                          "unless they are a short answer the task asks for")
    short_answers: list[ShortKind] = Field(default_factory=lambda: list(ALL_SHORT), description=_SHORT_HELP)
    reject_empty_turns: bool = Field(True, description="reject a conversation with any empty user/assistant turn")


class LengthParams(StrictModel):
    model: str | None = Field(None, description="tokenizer to count with (default: the recipe's model)")
    min_instruction: int = Field(5, ge=0)
    # Real instructions carry the document they are about (a news story to summarise, a
    # review to rate): 2048 keeps those and max_total still bounds the example.
    max_instruction: int = Field(2048, ge=1)
    min_response: int = Field(20, ge=0, description="unless the response is a short answer the task asks for")
    short_answers: list[ShortKind] = Field(default_factory=lambda: list(ALL_SHORT), description=_SHORT_HELP)
    max_response: int = Field(2048, ge=1)
    max_total: int | None = Field(4096, ge=1, description="all message contents together; null = no limit")
    batch_size: int = Field(256, ge=1)


class RepetitionParams(StrictModel):
    min_unique_word_ratio: float = Field(0.3, ge=0, le=1)
    min_words: int = Field(10, ge=0, description="the unique-word rule applies to responses longer than this")
    ngram: int = Field(3, ge=1)
    max_repeated_ngram_ratio: float = Field(0.5, ge=0, le=1,
                                            description="share of word n-grams that repeat an earlier one")


class TruncationParams(StrictModel):
    """Evidence of a cut; each rule is described in sftflow.curate.truncation."""
    finish_reason: bool = Field(True, description="finish_reason 'length' in metadata")
    open_bracket: bool = Field(True, description="a bracket, quote or code fence left open")
    function_word: bool = Field(True, description="ends on 'the', 'of', 'and', ... without punctuation")
    cut_word: bool = Field(True, description="ends on a strict prefix of a word of the prompt")
    fragment_words: int = Field(6, ge=0, description="words run on after the last full sentence; 0 = off")
    convention_share: float = Field(0.9, ge=0.5, le=1.0,
                                    description="a source closing this share of its answers with punctuation "
                                                "makes an unclosed one a cut")
    convention_min_records: int = Field(20, ge=1, description="answers a source needs for its convention to count")
    min_words: int = Field(4, ge=1, description="the cut_word and convention rules judge answers this long")


class EndOfTurnParams(StrictModel):
    """The scoring model's P(end-of-turn token) after the final answer (sftflow.curate.end_of_turn)."""
    model: str | None = Field(None, description="scoring model: alias, folder or hub id (default: the recipe's "
                                                "model, else sftflow's default)")
    min_prob: float = Field(0.01, ge=0, le=1, description="an answer the model ends its turn after with a lower "
                                                          "probability is taken as cut off")
    batch_size: int = Field(8, ge=1)
    max_length: int = Field(1024, ge=1, description="longer conversations (tokens) are kept unjudged")
    precision: Literal["auto", "fp32", "bf16"] = Field(
        "fp32", description="bf16 autocast (auto: where the hardware has native bf16); the softmax stays fp32")
    drop: bool = Field(True, description="false: answers under min_prob are flagged in metadata, not rejected")


class EchoParams(StrictModel):
    ngram: int = Field(3, ge=1, description="word n-grams compared")
    min_coverage: float = Field(0.8, gt=0, le=1, description="share of the prompt's n-grams in the response")
    max_new_share: float = Field(0.2, ge=0, le=1, description="share of the response's n-grams not in the prompt")
    min_prompt_words: int = Field(5, ge=1, description="shorter prompts are not judged")


class RestatedParams(StrictModel):
    min_overlap: float = Field(0.8, gt=0, le=1,
                               description="content-word overlap with the prompt's question, both ways")
    min_question_words: int = Field(3, ge=1, description="questions with fewer content words are not judged")


class LanguageParams(StrictModel):
    drop: bool = Field(False, description="answers in another language than the instruction are flagged; "
                                          "true also rejects them")


class RefusalParams(StrictModel):
    drop: bool = Field(False, description="refusals are flagged in metadata; true also rejects them")
    patterns: list[str] = Field(default_factory=lambda: [
        r"\bI cannot\b", r"\bI can't\b", r"\bAs an AI\b", r"\bI'?m unable\b", r"\bI am unable\b",
        r"\bI don'?t have access\b", r"\bI do not have access\b", r"\bas a language model\b",
        r"\bI'?m sorry, but\b"])

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, v: list[str]) -> list[str]:
        return _compile_all(v)


class TemplateLeakParams(StrictModel):
    patterns: list[str] = Field(default_factory=lambda: [
        r"<\|(?:im_start|im_end|endoftext|eot_id|start_header_id|end_header_id|user|assistant|system|end)\|>",
        # Llama's <s> and </s> leak at the edges of a turn; inside an answer they are
        # HTML strikethrough or a tag being explained, and stay.
        r"\[/?INST\]", r"<</?SYS>>", r"\A\s*</?s>", r"</?s>\s*\Z", r"<(?:start|end)_of_turn>",
        r"^###\s*(?:Human|Assistant|Instruction|Response)\s*:"])

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, v: list[str]) -> list[str]:
        return _compile_all(v)


class ExactDedupParams(StrictModel):
    field: TextField = Field("prompt", description="prompt = instruction+input; or the whole conversation")


class NearDedupParams(StrictModel):
    field: TextField = "prompt"
    ngram: int = Field(5, ge=1, description="word n-gram (shingle) size")
    num_perm: int = Field(128, ge=8)
    threshold: float = Field(0.7, gt=0, le=1, description="Jaccard similarity that counts as a duplicate")
    bands: int | None = Field(None, ge=1, description="LSH bands; default: chosen for the threshold")
    rows: int | None = Field(None, ge=1, description="rows per band; bands*rows <= num_perm")
    keep: KeepPolicy = "first"
    score_key: str | None = Field(None, description="metadata key (dots for nesting) for keep=highest_score")
    seed: int = 0

    @model_validator(mode="after")
    def _check_bands(self):
        if (self.bands is None) != (self.rows is None):
            raise ValueError("give both bands and rows, or neither")
        if self.bands is not None and self.bands * self.rows > self.num_perm:
            raise ValueError(f"bands*rows = {self.bands * self.rows} exceeds num_perm = {self.num_perm}")
        if self.keep == "highest_score" and not self.score_key:
            raise ValueError("keep=highest_score needs score_key")
        return self


class SemanticDedupParams(StrictModel):
    field: TextField = "prompt"
    method: Literal["sbert", "tfidf"] = "sbert"
    model: str | None = Field(None, description="sentence embedder (default all-MiniLM-L6-v2, offline)")
    threshold: float = Field(0.95, gt=0, le=1, description="cosine similarity that counts as a duplicate")
    keep: KeepPolicy = "first"
    score_key: str | None = None
    batch_size: int = Field(64, ge=1)
    block_size: int = Field(1024, ge=1, description="rows per block of the blockwise neighbour search")

    @model_validator(mode="after")
    def _check_score(self):
        if self.keep == "highest_score" and not self.score_key:
            raise ValueError("keep=highest_score needs score_key")
        return self


class DiversityParams(StrictModel):
    field: TextField = "prompt"
    method: Literal["sbert", "tfidf"] = "sbert"
    model: str | None = None
    algorithm: Literal["k_center", "one_pass"] = "k_center"
    budget: float | None = Field(None, gt=0, description="k_center: a count (>= 1) or a fraction (< 1); "
                                                         "costs N x budget dot products")
    cluster_threshold: float = Field(0.8, gt=-1, le=1,
                                     description="one_pass: join the nearest cluster at this cosine similarity")
    per_cluster: int | None = Field(None, ge=1, description="one_pass: keep at most this many per cluster")
    seed: int = 0
    batch_size: int = Field(64, ge=1)

    @model_validator(mode="after")
    def _check(self):
        if self.budget is not None and self.budget >= 1 and self.budget != int(self.budget):
            raise ValueError(f"budget {self.budget} must be a whole count (>= 1) or a fraction (< 1)")
        return self


class LeakageParams(StrictModel):
    eval: list[str] = Field(default_factory=list, description="evaluation files to check against")
    field: TextField = "prompt"
    ngram: int = Field(13, ge=1, description="a shared word n-gram of this size is an overlap")
    short_min_words: int = Field(5, ge=1, description="an eval text shorter than ngram but this long is looked "
                                                      "for whole inside training texts")
    minhash_threshold: float = Field(0.6, gt=0, le=1,
                                     description="Jaccard on word minhash_ngram-grams; 1 disables")
    minhash_ngram: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=8)
    seed: int = 0


STEP_PARAMS: dict[str, type[StrictModel]] = {
    "empty": EmptyParams,
    "length": LengthParams,
    "repetition": RepetitionParams,
    "truncation": TruncationParams,
    "end_of_turn": EndOfTurnParams,
    "refusal": RefusalParams,
    "template_leak": TemplateLeakParams,
    "echo": EchoParams,
    "restated": RestatedParams,
    "language": LanguageParams,
    "exact_dedup": ExactDedupParams,
    "near_dedup": NearDedupParams,
    "semantic_dedup": SemanticDedupParams,
    "diversity": DiversityParams,
    "leakage": LeakageParams,
}

DEFAULT_STEPS = ["empty", "length", "repetition", "truncation", "echo", "restated", "language", "refusal",
                 "template_leak", "exact_dedup", "near_dedup"]


class CurateConfig(StrictModel):
    steps: list[str] = Field(default_factory=lambda: list(DEFAULT_STEPS),
                             description="steps in the order they run")
    model: str | None = Field(None, description="tokenizer for lengths and stats (default: sftflow's)")
    leak_check: bool | None = Field(None, description="recipes: check against the held-out eval file "
                                                      "(default: on when one exists)")
    duplicate_ids: Literal["error", "reid"] = Field(
        "error", description="a user-supplied id repeated in the input: reject the later record naming "
                             "both places, or give it a new id with a note")
    stats: bool = True
    plots: bool = True
    stats_tasks: Literal["sbert", "tfidf", "keywords"] = Field(
        "sbert", description="task types in stats: nearest labelled prototype by all-MiniLM-L6-v2 (offline), "
                             "by TF-IDF (no model), or the keyword heuristic")
    stats_embed: Literal["tfidf", "sbert", "none"] = Field(
        "tfidf", description="embedding for the cluster view of task diversity in stats")
    empty: EmptyParams = Field(default_factory=EmptyParams)
    length: LengthParams = Field(default_factory=LengthParams)
    repetition: RepetitionParams = Field(default_factory=RepetitionParams)
    truncation: TruncationParams = Field(default_factory=TruncationParams)
    end_of_turn: EndOfTurnParams = Field(default_factory=EndOfTurnParams)
    refusal: RefusalParams = Field(default_factory=RefusalParams)
    template_leak: TemplateLeakParams = Field(default_factory=TemplateLeakParams)
    echo: EchoParams = Field(default_factory=EchoParams)
    restated: RestatedParams = Field(default_factory=RestatedParams)
    language: LanguageParams = Field(default_factory=LanguageParams)
    exact_dedup: ExactDedupParams = Field(default_factory=ExactDedupParams)
    near_dedup: NearDedupParams = Field(default_factory=NearDedupParams)
    semantic_dedup: SemanticDedupParams = Field(default_factory=SemanticDedupParams)
    diversity: DiversityParams = Field(default_factory=DiversityParams)
    leakage: LeakageParams = Field(default_factory=LeakageParams)
    engine: EngineConfig = Field(default_factory=EngineConfig, description="where the steps run")

    @field_validator("steps")
    @classmethod
    def _known_steps(cls, steps: list[str]) -> list[str]:
        seen = set()
        for s in steps:
            if s not in STEP_PARAMS:
                hint = closest(s, STEP_PARAMS)
                raise ValueError(f"unknown step '{s}'" + (f"; did you mean '{hint}'?" if hint else
                                                          f"; valid steps: {', '.join(STEP_PARAMS)}"))
            if s in seen:
                raise ValueError(f"step '{s}' is listed twice")
            seen.add(s)
        return steps

    @model_validator(mode="after")
    def _check_used_steps(self):
        # Checked here, not in DiversityParams: an unused step's defaults must not fail.
        if "diversity" in self.steps and self.diversity.algorithm == "k_center" and self.diversity.budget is None:
            raise ValueError("step 'diversity' with algorithm k_center needs diversity.budget "
                             "(a count, or a fraction below 1)")
        return self

    def params(self, step: str) -> StrictModel:
        return getattr(self, step)
