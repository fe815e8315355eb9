"""Truncated answers, found by evidence of a cut rather than by "ends with a letter".

Headlines, labels, extracted spans and answers in CJK scripts end without a full stop
and are complete. A response is truncated when one of these holds (each can be turned
off in ``TruncationParams``):

- ``finish_reason``: the generation that wrote it stopped at its token limit
  (``finish_reason: "length"`` anywhere in the first levels of metadata, as sftflow's
  generate stage and OpenAI-style outputs record it);
- ``function_word``: it ends on a word that cannot end an English sentence or title
  ("the", "of", "and", "because") with no punctuation after it;
- ``open_bracket``: a bracket, quote or code fence opened and never closed;
- ``cut_word``: its last word is a strict prefix (two or more letters short) of a word of
  the prompt and no word itself ("...caused dama" under a passage saying "damage");
- ``fragment``: its last paragraph closes at least one sentence and then runs on for
  ``fragment_words`` words or more without closing punctuation;
- ``convention``: its source (input file) closes at least ``convention_share`` of its
  answers of ``min_words`` words or more with punctuation, and this one does not: a
  dataset's own habit is the best evidence of what a complete answer looks like.

The word rules read Latin-script words only; CJK endings are never evidence of a cut.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..schema import Example
from .config import TruncationParams
from .steps import Decision, Filter, StepResult
from .text import CJK_RE, FUNCTION_WORDS, ends_closed, words

_PAIRS = (("(", ")"), ("[", "]"), ("{", "}"), ("“", "”"), ("「", "」"))


def finish_reason(meta: Any, depth: int = 3) -> str | None:
    """A ``finish_reason`` recorded in metadata (searched a few levels deep)."""
    if not isinstance(meta, dict) or depth == 0:
        return None
    if isinstance(meta.get("finish_reason"), str):
        return meta["finish_reason"]
    for v in meta.values():
        found = finish_reason(v, depth - 1)
        if found:
            return found
    return None


def open_bracket(text: str) -> str | None:
    """A bracket or code fence opened and not closed; a straight quote left open counts only
    when the text does not end a sentence after it (typographic quotes are often unpaired:
    ``"like this''``)."""
    for o, c in _PAIRS:
        if text.count(o) > text.count(c) and text.rfind(o) > text.rfind(c):
            return o
    if text.count("```") % 2:
        return "```"
    if text.replace("''", '"').count('"') % 2 and not ends_closed(text):
        return '"'
    return None


def cut_word(last: str, prompt_words: set[str]) -> bool:
    if len(last) < 2 or last in prompt_words or not last.isalpha():
        return False
    return any(len(w) >= len(last) + 2 and w.startswith(last) for w in prompt_words)


def run_on_fragment(text: str) -> int:
    """Words after the last sentence end of the last paragraph (0 when no sentence ends there)."""
    para = text.rstrip().rsplit("\n", 1)[-1]
    cut = max(para.rfind(". "), para.rfind("! "), para.rfind("? "))
    return len(para[cut + 2:].split()) if cut >= 0 else 0


class TruncationFilter(Filter):
    name = "truncation"

    def __init__(self, params: TruncationParams | None = None):
        self.p = params or TruncationParams()
        self._closed_share: dict[str, float] = {}

    def run(self, examples: list[Example]) -> StepResult:
        # The convention rule needs the whole set: share of closed answers per source.
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for ex in examples:
            vote = self.convention_vote(ex)
            if vote:
                c = counts[source_of(ex)]
                c[0] += vote == 2
                c[1] += 1
        self.use_counts(counts)
        return super().run(examples)

    def convention_vote(self, ex: Example) -> int:
        """What ``ex`` says about its source's convention: 0 nothing (too short), 1 an open
        answer, 2 an answer closed with punctuation."""
        if len(words(ex.response)) < self.p.min_words:
            return 0
        return 2 if ends_closed(ex.response) else 1

    def use_counts(self, counts: dict[str, list[int]]) -> None:
        """Set the per-source share of closed answers from (closed, counted) per source."""
        self._closed_share = {s: k / n for s, (k, n) in counts.items() if n >= self.p.convention_min_records}

    def measure(self, ex: Example) -> dict[str, Any]:
        return {"evidence": self._evidence(ex), "last_char": ex.response.rstrip()[-1:]}

    def _evidence(self, ex: Example) -> str | None:
        evidence, candidate = self.evidence_before_convention(ex)
        if evidence or not candidate:
            return evidence
        share = self._closed_share.get(source_of(ex))
        return "convention" if share is not None and share >= self.p.convention_share else None

    def evidence_before_convention(self, ex: Example) -> tuple[str | None, bool]:
        """(evidence of a cut from the answer alone, whether the source's convention could
        still call it cut): the convention needs the whole set, so a streaming run decides
        the candidates once every record was seen."""
        p, text = self.p, ex.response.rstrip()
        if p.finish_reason and finish_reason(ex.metadata) == "length":
            return "finish_reason", False
        if p.open_bracket and open_bracket(text):
            return "open_bracket", False
        if not text or ends_closed(text) or CJK_RE.match(text[-1]):
            return None, False
        ws = words(text)
        last = ws[-1] if ws else ""
        if p.function_word and len(ws) >= 3 and last in FUNCTION_WORDS:
            return "function_word", False
        if p.cut_word and len(ws) >= p.min_words and cut_word(last, set(words(ex.prompt))):
            return "cut_word", False
        if p.fragment_words and run_on_fragment(text) >= p.fragment_words:
            return "fragment", False
        # A cut lands on any word; a finished sentence that skips its full stop most often
        # ends on a name ("..., says head coach Denis Betts"), so a capitalised last word
        # is not taken as a cut on the convention's word alone.
        return None, len(ws) >= p.min_words and not text.split()[-1][:1].isupper()

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if not m["evidence"]:
            return True
        return False, self.reason(m["evidence"], ex.response, source_of(ex)), m["evidence"]

    def reason(self, evidence: str, response: str, source: str) -> str:
        tail = response.rstrip()[-30:]
        why = {"finish_reason": "the generation stopped at its token limit",
               "function_word": "ends on a function word",
               "open_bracket": f"leaves {open_bracket(response)!r} open" if evidence == "open_bracket" else "",
               "cut_word": "ends on a cut-off word of the prompt",
               "fragment": "runs on after its last full sentence without closing",
               "convention": (f"ends without closing punctuation, unlike "
                              f"{self._closed_share.get(source, 0):.0%} "
                              "of its source's answers")}[evidence]
        return f"looks truncated: {why} (…{tail!r})"


def source_of(ex: Example) -> str:
    """The input a record came from, as the convention rule groups answers."""
    return str(ex.metadata.get("_source", ""))
