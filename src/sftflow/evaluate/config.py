"""What ``sftflow eval`` does, as one typed config (the ``eval`` section of a recipe).

Every part can be switched off on its own: held-out loss, side-by-side generations,
behaviour probes, reference correctness (figures, optional judge grade), the tool loop,
the generative general probe, multiple-choice forgetting tasks, the LLM judge and the
gates. Defaults are
what a first run on a laptop should do: greedy generations, the shipped probes, the
shipped general-knowledge forgetting task, and no judge (a judge needs a model the
user chooses).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import StrictModel

from ..probes import DEFAULT_PROBES, ProbeKind, ProbeSpec  # noqa: F401 - part of the eval schema


class ChoiceSection(StrictModel):
    tasks: list[str] = Field(default_factory=lambda: ["general_knowledge"],
                             description="JSONL files (question/choices/answer), the shipped "
                                         "'general_knowledge', or 'lm_eval:<task>'")
    lm_eval_include: list[str] = Field(default_factory=list,
                                       description="folders of extra lm-evaluation-harness task YAMLs")
    num_fewshot: int = Field(0, ge=0)
    limit: int | None = Field(None, gt=0, description="first N questions per task")
    batch_size: int = Field(8, gt=0)
    metric: Literal["acc", "acc_norm", "acc_bytes"] = "acc"
    warn_drop: float = Field(2.0, ge=0, description="points of accuracy lost that warn")
    fail_drop: float = Field(5.0, ge=0, description="points of accuracy lost that fail the eval")
    seed: int = 0

    @model_validator(mode="after")
    def _order(self):
        if self.fail_drop < self.warn_drop:
            raise ValueError(f"fail_drop ({self.fail_drop}) must be >= warn_drop ({self.warn_drop})")
        return self


class JudgeSection(StrictModel):
    backend: Literal["transformers", "openai", "fake"] = "transformers"
    model: str | None = Field(None, description="judge model; required for transformers/openai")
    mode: Literal["pairwise", "single"] = "pairwise"
    verdict: Literal["generate", "likelihood"] = Field(
        "generate", description="generate: parse the judge's text; likelihood: pick the most likely "
                                "verdict label (local transformers models; never unparseable)")
    prompt: str | None = Field(None, description="prompt file; default: the shipped one for the mode")
    max_new_tokens: int = Field(256, gt=0)
    bootstrap: int = Field(1000, ge=100)
    seed: int = 0
    limit: int | None = Field(None, gt=0, description="judge only the first N pairs")
    batch_size: int = Field(4, gt=0)

    @model_validator(mode="after")
    def _likelihood_is_local(self):
        if self.verdict == "likelihood" and self.backend != "transformers":
            raise ValueError("judge.verdict 'likelihood' needs backend 'transformers' (a local model)")
        return self


class CorrectnessJudgeSection(StrictModel):
    """A judge model grades each answer CORRECT / INCORRECT against the reference answer."""

    backend: Literal["transformers", "openai", "fake"] = "transformers"
    model: str | None = Field(None, description="judge model; required for transformers/openai")
    prompt: str | None = Field(None, description="prompt file with {question} {reference} {answer}")
    max_new_tokens: int = Field(32, gt=0)
    limit: int | None = Field(None, gt=0, description="grade only the first N answers per side")
    batch_size: int = Field(4, gt=0)


class ReferenceSection(StrictModel):
    """Correctness against the reference answer: stated figures, and optionally a judge's grade."""

    figures: bool = Field(True, description="score whether the answer states the figure the reference works out")
    rel_tol: float = Field(0.005, gt=0, lt=1, description="relative tolerance of a figure match")
    judge: CorrectnessJudgeSection | None = None


class ToolsSection(StrictModel):
    """Answers are generated through the tool loop: calls are parsed, run, and fed back."""

    names: list[str] = Field(default_factory=lambda: ["calculate"], description="registered tool names")
    max_steps: int = Field(3, ge=1, le=10, description="generations per answer at most (calls + final answer)")


class GeneralSection(StrictModel):
    """The generative general-ability probe: response loss on general conversations with good
    answers, and the stop and looping rates of the models' own answers to them."""

    data: list[str] = Field(default_factory=lambda: ["general_conversations"],
                            description="files, or the shipped 'general_conversations'")
    limit: int | None = Field(None, gt=0)
    generate: bool = True
    max_new_tokens: int = Field(128, gt=0)


class OpeningSpec(StrictModel):
    """An unwanted way to open an answer, scored by likelihood (see ``sftflow.evaluate.openings``)."""

    name: str = Field(..., pattern=r"^[A-Za-z0-9_]+$")
    texts: list[str] = Field(..., min_length=1, description="alternative openings; none may start another")
    description: str = ""

    @model_validator(mode="after")
    def _exclusive(self):
        # P(any of them) is the sum only when no opening is the start of another
        for i, a in enumerate(self.texts):
            if not a.strip():
                raise ValueError(f"opening '{self.name}': an empty text opens every answer")
            for j, b in enumerate(self.texts):
                if i != j and b.startswith(a):
                    raise ValueError(f"opening '{self.name}': {a!r} starts {b!r}; their probabilities "
                                     "overlap, so keep the shorter one only")
        return self


class GateSpec(StrictModel):
    """A pass / fail / inconclusive verdict on one base-vs-tuned difference, read from its interval.

    ``metric``: ``loss``, ``general.loss`` (relative change), ``reference.figures``,
    ``probes.<name>`` or ``choice.<task>`` (paired rate differences), ``openings.<name>`` (paired
    difference of an unwanted opening's mean probability). ``want``: ``higher``
    or ``lower`` (a gain: pass when the interval excludes no change, fail when it shows the
    opposite), or ``no_worse``: pass when the interval excludes a worsening larger than
    ``margin``, fail when it shows a worsening larger than ``fail_beyond`` (default: margin).
    """

    name: str | None = None
    metric: str
    want: Literal["higher", "lower", "no_worse"]
    better: Literal["higher", "lower"] | None = Field(None, description="for no_worse: which way is better "
                                                                        "(default: lower for losses)")
    margin: float = Field(0.0, ge=0)
    fail_beyond: float | None = Field(None, ge=0)


DEFAULT_GATES: list[dict] = [
    {"name": "general loss rises at most 2%", "metric": "general.loss", "want": "no_worse", "margin": 0.02},
    {"name": "multiple-choice accuracy does not drop", "metric": "choice.*", "want": "no_worse",
     "margin": 0.05, "fail_beyond": 0.0},
    {"name": "states the correct figure no less often", "metric": "reference.figures", "want": "no_worse",
     "margin": 0.05, "fail_beyond": 0.0},
]


class EvalConfig(StrictModel):
    model: str | None = Field(None, description="the tuned model (folder or adapter folder)")
    base: str | None = Field(None, description="the base model to compare with")
    data: list[str] = Field(default_factory=list, description="held-out files")
    limit: int | None = Field(None, gt=0, description="use the first N held-out examples")
    loss: bool = True
    train_on: Literal["last", "assistant", "all"] = "last"
    max_length: int | None = Field(None, gt=0)
    batch_size: int = Field(8, gt=0)
    generation_batch_size: int | None = Field(
        None, gt=0, description="rows per generation batch (None = batch_size); greedy decoding lets a "
                                "finished row leave its batch, so large batches cost little memory and save time")
    generate: bool = True
    max_new_tokens: int = Field(256, gt=0)
    temperature: float = Field(0.0, ge=0)
    probes: list[ProbeSpec] = Field(default_factory=lambda: [ProbeSpec(**p) for p in DEFAULT_PROBES])
    extra_probes: list[ProbeSpec] = Field(default_factory=list,
                                          description="added to 'probes' (keeps the defaults)")
    openings: list[OpeningSpec] = Field(
        default_factory=list, description="unwanted openings (an apology, a hedge) scored by their probability "
                                          "as the answer's first tokens: sees a lean that greedy answers hide")
    choice: ChoiceSection | None = Field(default_factory=ChoiceSection)
    judge: JudgeSection | None = None
    reference: ReferenceSection | None = Field(default_factory=ReferenceSection)
    tools: ToolsSection | None = Field(None, description="generate through the tool loop with these tools")
    general: GeneralSection | None = Field(None, description="the generative general-ability probe")
    gates: list[GateSpec] = Field(default_factory=lambda: [GateSpec(**g) for g in DEFAULT_GATES],
                                  description="verdicts from intervals; a failing gate fails the eval")

    def all_probes(self) -> list[ProbeSpec]:
        names = [p.name for p in self.probes + self.extra_probes]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"probe names must be unique; repeated: {', '.join(sorted(dup))}")
        return list(self.probes) + list(self.extra_probes)
