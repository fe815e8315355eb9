"""Behaviour probes: simple rules counted over answers, each a rate with a 95% interval.

A probe says yes or no for one answer (does it open with an apology? did it hit the
token limit?). Over a set of answers that is a proportion, reported with a Wilson
interval so that "3 of 40" is not read as a precise 7.5%. Base and tuned answer the
same prompts, so their difference is a paired one: ``compare_probes`` counts the prompts
where only one side tripped the probe and applies McNemar's exact test to them, with an
interval on the difference of rates. Probes are data (YAML), not code, so a user adds a
house format rule without writing Python.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Literal

from pydantic import Field, model_validator

from .config import ConfigError, StrictModel, validate
from .intervals import mcnemar_exact, rate

ProbeKind = Literal["regex", "prefix", "finish_reason", "repeated_ngrams", "length"]


class ProbeSpec(StrictModel):
    """One behaviour probe: a rule that is true or false for each answer.

    kinds: ``regex`` (``pattern`` searched in the answer, or only in its first
    ``head_chars`` characters), ``prefix`` (answer starts with ``prefix`` after
    leading whitespace), ``finish_reason`` (equals ``equals``: "stop" or "length"),
    ``repeated_ngrams`` (some word ``n``-gram occurs at least ``min_repeats`` times),
    ``length`` (answer longer than ``above`` / shorter than ``below``, in ``unit``).
    ``negate`` flips the rule, so a format rule can count its violations.
    """

    name: str
    kind: ProbeKind
    description: str = ""
    pattern: str | None = None
    ignore_case: bool = True
    head_chars: int | None = Field(None, gt=0)
    prefix: str | None = None
    equals: Literal["stop", "length"] | None = None
    n: int = Field(4, ge=1)
    min_repeats: int = Field(3, ge=2)
    unit: Literal["words", "chars", "tokens"] = "words"
    above: float | None = None
    below: float | None = None
    negate: bool = False

    @model_validator(mode="after")
    def _needs(self):
        need = {"regex": ("pattern",), "prefix": ("prefix",), "finish_reason": ("equals",)}
        for f in need.get(self.kind, ()):
            if getattr(self, f) is None:
                raise ValueError(f"probe '{self.name}' of kind '{self.kind}' needs '{f}'")
        if self.kind == "length" and self.above is None and self.below is None:
            raise ValueError(f"probe '{self.name}' of kind 'length' needs 'above' or 'below'")
        if self.kind == "regex":
            import re
            try:
                re.compile(self.pattern)
            except re.error as e:
                raise ValueError(f"probe '{self.name}': bad regex {self.pattern!r}: {e}") from None
        return self


# The shipped probes. The apology/hedge preamble is the fintech case from the
# mission: an assistant that opens with "I'm sorry" or "As an AI" wastes the
# reader's first line, so a good tune should drive this rate near zero.
DEFAULT_PROBES: list[dict] = [
    {"name": "apology_preamble", "kind": "regex", "head_chars": 80,
     "description": "opens with an apology or hedge",
     "pattern": r"^\W*(I'?m sorry|I am sorry|sorry\b|I apologi[sz]e|my apologies|as an AI|"
                r"as a language model|unfortunately|I'?m afraid|I'?m just an AI)"},
    {"name": "refusal", "kind": "regex", "description": "declines to answer",
     "pattern": r"\b(I can(?:no|')t (?:help|assist|provide|answer|do that|comply|fulfill)|"
                r"I(?: am|'m) (?:not able|unable) to (?:help|assist|provide|answer)|"
                r"I won'?t (?:help|provide|answer)|I will not (?:help|provide|answer)|"
                r"I must decline|against my (?:guidelines|programming|policy))"},
    {"name": "hit_token_limit", "kind": "finish_reason", "equals": "length",
     "description": "ran into max_new_tokens instead of ending its turn"},
    {"name": "repeated_ngrams", "kind": "repeated_ngrams", "n": 4, "min_repeats": 3,
     "description": "some 4-word sequence occurs 3 or more times (looping)"},
    {"name": "long_answer", "kind": "length", "unit": "words", "above": 200,
     "description": "more than 200 words"},
]


def _length(answer: dict[str, Any], unit: str) -> float:
    text = answer.get("text") or ""
    if unit == "chars":
        return len(text)
    if unit == "tokens":
        if answer.get("completion_tokens") is None:
            raise ValueError("a 'tokens' length probe needs completion_tokens in each answer")
        return answer["completion_tokens"]
    return len(text.split())


def max_ngram_repeats(text: str, n: int) -> int:
    words = text.lower().split()
    if len(words) < n:
        return 0
    counts = Counter(tuple(words[i:i + n]) for i in range(len(words) - n + 1))
    return max(counts.values())


class Probe:
    """A compiled ProbeSpec: ``probe(answer) -> bool``."""

    def __init__(self, spec: ProbeSpec):
        self.spec = spec
        self.name = spec.name
        flags = re.IGNORECASE if spec.ignore_case else 0
        self._re = re.compile(spec.pattern, flags) if spec.pattern else None

    def raw(self, answer: dict[str, Any]) -> bool:
        s = self.spec
        text = answer.get("text") or ""
        if s.kind == "regex":
            return self._re.search(text[: s.head_chars] if s.head_chars else text) is not None
        if s.kind == "prefix":
            t, p = text.lstrip(), s.prefix
            return t.lower().startswith(p.lower()) if s.ignore_case else t.startswith(p)
        if s.kind == "finish_reason":
            return answer.get("finish_reason") == s.equals
        if s.kind == "repeated_ngrams":
            return max_ngram_repeats(text, s.n) >= s.min_repeats
        if s.kind == "length":
            v = _length(answer, s.unit)
            return (s.above is not None and v > s.above) or (s.below is not None and v < s.below)
        raise ValueError(f"unknown probe kind {s.kind!r}")

    def __call__(self, answer: dict[str, Any]) -> bool:
        return self.raw(answer) != self.spec.negate


def as_specs(probes: Iterable[ProbeSpec | dict] | None) -> list[ProbeSpec]:
    if probes is None:
        probes = DEFAULT_PROBES
    return [p if isinstance(p, ProbeSpec) else validate(ProbeSpec, p, "probe") for p in probes]


def load_probes(path: str | Path) -> list[ProbeSpec]:
    """A YAML file with ``probes: [...]`` (or a bare list)."""
    import yaml
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    data = yaml.safe_load(path.read_text("utf-8"))
    if isinstance(data, dict):
        data = data.get("probes")
    if not isinstance(data, list):
        raise ConfigError(f"{path}: expected a list of probes (or a mapping with 'probes:')")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            raise ConfigError(f"{path}: probes[{i}]: expected a mapping")
        out.append(validate(ProbeSpec, item, f"{path}: probes[{i}]"))
    return out


def run_probes(answers: list[dict[str, Any]], probes: Iterable[ProbeSpec | dict] | None = None) -> dict:
    """``answers``: dicts with ``text`` and ``finish_reason`` (optionally ``completion_tokens``).

    Returns ``{probe name: {rate, low, high, n, count, errors}}``. Answers whose
    generation failed (finish_reason "error") are not judged; they are counted in
    ``errors`` so a rate over fewer answers is visible, not hidden.
    """
    specs = as_specs(probes)
    valid = [a for a in answers if a.get("finish_reason") != "error"]
    errors = len(answers) - len(valid)
    out: dict[str, dict] = {}
    for spec in specs:
        probe = Probe(spec)
        count = sum(bool(probe(a)) for a in valid)
        r = rate(count, len(valid))
        r["errors"] = errors
        if spec.kind == "length" and valid:
            r["mean_length"] = sum(_length(a, spec.unit) for a in valid) / len(valid)
        out[spec.name] = r
    return out


def compare_probes(base_answers: list[dict[str, Any]], tuned_answers: list[dict[str, Any]],
                   probes: Iterable[ProbeSpec | dict] | None = None) -> dict[str, dict]:
    """``{probe name: mcnemar_exact(base fired, tuned fired)}`` over the prompts both sides answered.

    Answers pair by position (both lists follow the held-out order). A prompt whose
    generation failed on either side is left out of the pair count, as in ``run_probes``.
    ``diff`` is tuned rate - base rate, so a negative diff on a bad-behaviour probe is an
    improvement; ``p_value`` tests "no change".
    """
    if len(base_answers) != len(tuned_answers):
        raise ValueError(f"compare_probes: {len(base_answers)} base answers but {len(tuned_answers)} tuned; "
                         "the comparison is paired by prompt")
    pairs = [(b, t) for b, t in zip(base_answers, tuned_answers)
             if b.get("finish_reason") != "error" and t.get("finish_reason") != "error"]
    out: dict[str, dict] = {}
    for spec in as_specs(probes):
        probe = Probe(spec)
        out[spec.name] = mcnemar_exact([bool(probe(b)) for b, _ in pairs], [bool(probe(t)) for _, t in pairs])
    return out
