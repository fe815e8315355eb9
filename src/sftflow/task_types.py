"""Task type of an instruction (summarisation, classification, extraction, ...).

Used by curation statistics, the report and quotas; kept out of any one stage so each can
read it. Two ways to tell:

- ``classify_task_types`` (measured): the nearest of a small shipped set of labelled
  instructions (``data/task_prototypes.jsonl``, about ten per type, written for sftflow)
  in an embedding space: all-MiniLM-L6-v2 by default (offline), TF-IDF without a model.
  Only the first and last sentences of a prompt are embedded (the instruction sits
  there around a pasted document); each votes for the types whose prototypes it is
  close to (similarity above ``min_similarity``). A prompt that no sentence of which
  comes close to any prototype gets the keyword heuristic's answer instead.
- ``task_type`` (heuristic): the first keyword rule that matches.

Accuracy on the T0 sample (templates of known type) is asserted in
``tests/integration/test_task_types_t0.py``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from importlib.resources import files

import numpy as np

# Task-type heuristic: the first rule whose pattern matches the instruction wins, so the
# specific kinds come before the broad ones ("summarize this question" is summarisation).
TASK_RULES: list[tuple[str, re.Pattern]] = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in [
    ("coding", r"\b(code|function|python|javascript|sql|program|script|regex|regular expression|compile|"
               r"bug|html|class)\b|```"),
    ("math", r"\b(calculate|compute|solve|solving|equation|sum of|how many|percentage|probability|math|"
             r"numbers?|convert(ing)? \d|celsius|fahrenheit)\b|\d\s*[+*/^=]\s*\d"),
    ("translation", r"\b(translate|translation|in (french|spanish|german|chinese|japanese|english))\b"),
    ("summarization", r"\b(summari[sz]e|summari[sz]ation|summary|tl;?dr|in (one|a few) sentences?|main points?)\b"),
    ("classification", r"\b(classify|categori[sz]e|which (category|class|topic)|sentiment|positive or negative|"
                       r"is (this|it) (positive|negative)|label|rate|stars?|true or false|yes or no|"
                       r"tell (me )?(if|whether)|decide (if|whether)|identify (if|whether)|detect|predict|"
                       r"choose|select|rank|or not|multiple choice)\b"),
    ("extraction", r"\b(extract|list all|find (all|the|out)|identify the|pull out|link|replace|fill in|"
                   r"pos tags?|parsing|entities)\b"),
    ("rewriting", r"\b(rewrite|rephrase|paraphrase|edit|correct the|fix the grammar|make it|convert it|"
                  r"turn .{0,20} into)\b"),
    ("brainstorming", r"\b(brainstorm|ideas?|suggest|suggestions|recommend|list (some|a few|\d+)|"
                      r"make a list|list of|examples?|checklist|plan|budget|recipe|tips|things to do)\b"),
    ("explanation", r"\b(explain|describe|analy[sz]e|why)\b"),
    ("creative_writing", r"\b(write|compose|story|poem|essay|letter|tweet|song|slogan|draft|generate|create|"
                         r"make up|come up with|design|joke|haiku|lyrics|title|complete the|expand|reply)\b"),
    ("open_qa", r"\?\s*$|^(what|who|when|where|why|how|which|is|are|can|does|do)\b|\banswer the following\b|"
                r"^question:"),
]]


def task_type(instruction: str, window: int = 200) -> str:
    """Task kind of an instruction by the first matching rule (else "other").

    Only the head and tail of a long prompt are read: that is where the instruction
    sits around a pasted document ("Summarize: {doc}", "{doc} TL;DR:"), and the
    document's own words ("class", "bug") would otherwise decide the type.
    """
    text = instruction if len(instruction) <= 2 * window else instruction[:window] + "\n" + instruction[-window:]
    for name, rx in TASK_RULES:
        if rx.search(text):
            return name
    return "other"


PROTOTYPES = "data/task_prototypes.jsonl"


@lru_cache(maxsize=4)
def load_prototypes(path: str | None = None) -> tuple[tuple[str, str], ...]:
    """(task type, instruction) pairs of the shipped (or a given) prototype set."""
    text = (open(path, encoding="utf-8").read() if path
            else files("sftflow").joinpath(PROTOTYPES).read_text(encoding="utf-8"))
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return tuple((r["task_type"], r["instruction"]) for r in rows)


_CUE = re.compile(r"^((?:[\w;/'-]+ ?){1,3}:)\s+(\S.*)$")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z])")


def instruction_segments(text: str, keep: int = 3, max_chars: int = 300) -> list[str]:
    """The first and last ``keep`` sentences of a prompt, a leading cue ("Summarize:",
    "Review:") split off its line: the instruction sits there around a pasted
    document, and a sentence of the document matches no prototype well."""
    parts: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        m = _CUE.match(line)
        for piece in ([m.group(1), m.group(2)] if m else [line]):
            parts.extend(x for x in _SENTENCE_END.split(piece) if x.strip())
    if len(parts) > 2 * keep:
        parts = parts[:keep] + parts[-keep:]
    return [x[:max_chars] for x in parts] or [text[:max_chars]]


def task_type_names() -> list[str]:
    return sorted({t for t, _ in load_prototypes()} | {name for name, _ in TASK_RULES}) + ["other"]


def classify_task_types(texts: list[str], *, method: str = "sbert", model: str | None = None,
                        min_similarity: float | None = None, prototypes: str | None = None) -> list[str]:
    """Task type per text by its nearest prototype; the keyword heuristic below ``min_similarity``.

    ``method``: ``sbert`` (falls back to ``tfidf`` when no sentence-transformers model can
    be loaded), ``tfidf`` or ``keywords`` (the heuristic alone)."""
    texts = list(texts)
    if method == "keywords" or not texts:
        return [task_type(t) for t in texts]
    from .embed import embed_texts
    protos = load_prototypes(prototypes)
    segs = [instruction_segments(t) for t in texts]
    flat = [x for ss in segs for x in ss]
    owner = np.repeat(np.arange(len(texts)), [len(ss) for ss in segs])
    if method == "sbert":
        try:
            emb = embed_texts(flat + [p for _, p in protos], model, method="sbert")
        except (ImportError, OSError, ValueError):
            method = "tfidf"
    if method == "tfidf":
        emb = embed_texts(flat + [p for _, p in protos], method="tfidf")
    elif method != "sbert":
        raise ValueError(f"unknown task-type method {method!r}; expected sbert, tfidf or keywords")
    # Every segment votes for each type with its similarity to the type's nearest
    # prototype above the floor: one weak match of a bare cue ("Question:") is outvoted by
    # the instruction's sentences. Measured on the T0 sample, summing beat the single
    # best segment (99% vs 83% with sbert).
    floor = min_similarity if min_similarity is not None else (0.3 if method == "sbert" else 0.05)
    sims = emb[:len(flat)] @ emb[len(flat):].T           # segment x prototype
    labels = np.array([t for t, _ in protos])
    types = sorted(set(labels.tolist()))
    per_type = np.stack([sims[:, labels == t].max(axis=1) for t in types], axis=1)
    votes = np.zeros((len(texts), len(types)))
    np.add.at(votes, owner, np.clip(per_type - floor, 0, None))
    return [types[int(v.argmax())] if v.max() > 0 else task_type(t) for v, t in zip(votes, texts)]
