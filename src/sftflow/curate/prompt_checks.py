"""Checks of the response against its prompt: an echo, the question restated, another language.

- ``echo``: the response repeats the prompt, or most of it (share of the prompt's word
  n-grams found in the response >= ``min_coverage`` while almost nothing in the
  response is new). Tasks that ask for the text back (rewrite, correct, format, copy)
  are exempt: a corrected sentence is mostly its input.
- ``restated``: the response is the prompt's question asked again (its content words
  match the question's both ways), not an answer to it.
- ``language``: the response is in another language than the instruction. Flagged in
  metadata and kept by default (a translation task or a multilingual mix may want it);
  ``language.drop: true`` rejects. Identification is by script, then for Latin script by
  the most frequent function words of seven languages; too little text to tell gives
  no verdict and no flag.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any

from ..schema import Example
from .config import EchoParams, LanguageParams, RestatedParams
from .steps import Decision, Filter
from .text import content_words, words

# Verbs that ask for the text back; the ambiguous ones ("correct", "copy", "format") only
# as a command with an object ("correct the grammar", not "a correct answer").
_ASKS_FOR_TEXT_BACK = re.compile(
    r"\b(rewrite|re-write|rephrase|paraphrase|proofread|reword|repeat after)\b"
    r"|\b(correct|fix|edit|improve|format|convert|repeat|copy|clean up|normali[sz]e|capitali[sz]e|"
    r"punctuate|spell-check|sort|reorder|echo)\s+(the|this|these|that|it|my|our|your|following|each|all|"
    r"every|any)\b", re.I)
_TRANSLATE = re.compile(r"\b(translat\w*|in (english|french|german|spanish|italian|portuguese|dutch|"
                        r"chinese|japanese|korean|russian|arabic|hindi)|into \w+)\b", re.I)


def _grams(ws: list[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)} if len(ws) >= n else ({tuple(ws)} if ws else set())


class EchoFilter(Filter):
    name = "echo"

    def __init__(self, params: EchoParams | None = None):
        self.p = params or EchoParams()

    def measure(self, ex: Example) -> dict[str, Any]:
        pw, rw = words(ex.prompt), words(ex.response)
        pg, rg = _grams(pw, self.p.ngram), _grams(rw, self.p.ngram)
        if len(pw) < self.p.min_prompt_words or not rg:
            return {"prompt_coverage": 0.0, "new_share": 1.0}
        return {"prompt_coverage": round(len(pg & rg) / len(pg), 4),
                "new_share": round(len(rg - pg) / len(rg), 4)}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if m["prompt_coverage"] < self.p.min_coverage or m["new_share"] > self.p.max_new_share:
            return True
        if _ASKS_FOR_TEXT_BACK.search(ex.prompt):
            return True
        return (False, f"echoes the prompt: {m['prompt_coverage']:.0%} of its word {self.p.ngram}-grams "
                       f"repeated, {m['new_share']:.0%} new", m["prompt_coverage"])


def prompt_question(prompt: str) -> str | None:
    """The last sentence of the prompt that ends with a question mark."""
    qs = re.findall(r"[^.!?\n]*\?", prompt)
    return qs[-1].strip() if qs else None


class RestatedFilter(Filter):
    name = "restated"

    def __init__(self, params: RestatedParams | None = None):
        self.p = params or RestatedParams()

    def measure(self, ex: Example) -> dict[str, Any]:
        q = prompt_question(ex.prompt)
        qw, rw = (content_words(q) if q else set()), content_words(ex.response)
        if len(qw) < self.p.min_question_words or not rw:
            return {"question_recall": 0.0, "answer_precision": 0.0}
        common = len(qw & rw)
        return {"question_recall": round(common / len(qw), 4), "answer_precision": round(common / len(rw), 4)}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if m["question_recall"] >= self.p.min_overlap and m["answer_precision"] >= self.p.min_overlap:
            return (False, f"restates the question instead of answering: {m['question_recall']:.0%} of its "
                           f"content words, nothing new", m["answer_precision"])
        return True


# Most frequent function words; counting hits tells these languages apart on a sentence.
_LATIN_WORDS = {
    "en": "the and of to is in that it for you with on are this was be have not",
    "fr": "le la les et des est une un du que pour dans pas sur il vous qui au ce",
    "de": "der die und das ist nicht ein eine ich zu den mit sie es auf dem sich",
    "es": "el la los las de que y es en un una por con para no se del al lo",
    "it": "il di che è la per un una non sono del della con gli le ho si mi",
    "pt": "o a os as de que e é do da em um uma para com não no na se",
    "nl": "de het een en van is dat op te zijn niet met voor er ik ook aan",
}
_LATIN_SETS = {lang: set(ws.split()) for lang, ws in _LATIN_WORDS.items()}
_SCRIPTS = (("CJK", "zh"), ("HIRAGANA", "ja"), ("KATAKANA", "ja"), ("HANGUL", "ko"), ("CYRILLIC", "ru"),
            ("ARABIC", "ar"), ("DEVANAGARI", "hi"), ("GREEK", "el"), ("HEBREW", "he"), ("THAI", "th"))


@lru_cache(maxsize=8192)
def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return next((code for key, code in _SCRIPTS if name.startswith(key)), "latin")


def detect_language(text: str, min_hits: int = 3) -> str | None:
    """An ISO 639-1 code, 'latin' for Latin script in no language listed, or None (too little text)."""
    scripts: Counter[str] = Counter()
    # Per distinct character, not per character: a text has a few dozen of them, and the
    # Unicode name lookup was most of curate's time on long records.
    for ch, count in Counter(text[:4000]).items():
        if ch.isalpha():
            scripts[_script(ch)] += count
    if sum(scripts.values()) < 2:
        return None
    top, n = scripts.most_common(1)[0]
    if "ja" in scripts and top == "zh":
        top = "ja"  # Japanese mixes kanji with kana; Chinese has no kana
    if top != "latin":
        return top if n >= 2 else None
    counts = Counter(words(text[:4000]))
    hits = Counter({lang: sum(c for w, c in counts.items() if w in s) for lang, s in _LATIN_SETS.items()})
    (best, b), (_, second) = hits.most_common(2)
    return best if b >= min_hits and b >= 2 * second else None


class LanguageFilter(Filter):
    name = "language"

    def __init__(self, params: LanguageParams | None = None):
        self.p = params or LanguageParams()

    def measure(self, ex: Example) -> dict[str, Any]:
        pl, rl = detect_language(ex.prompt), detect_language(ex.response)
        differs = bool(pl and rl and pl != rl and not _TRANSLATE.search(ex.prompt))
        return {"prompt": pl, "response": rl, "flagged": differs}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if self.p.drop and m["flagged"]:
            return False, f"answer in {m['response']}, instruction in {m['prompt']}", m["response"]
        return True
