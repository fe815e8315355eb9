"""Small text measures shared by the curation filters: words, content words, endings."""

from __future__ import annotations

import re
import unicodedata

# Words for the repetition measures: letters/digits runs, lower-cased. CJK and kana are
# taken one character at a time because those scripts do not separate words by spaces.
CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff"
WORD_RE = re.compile(rf"[{CJK}]|[^\W{CJK}]+")
CJK_RE = re.compile(f"[{CJK}]")

# English function words: an answer whose last word is one of these (with no closing
# punctuation) stopped mid-phrase. Only words that cannot end a finished English
# sentence or headline are listed ("up", "in", "on" can: "Prices go up").
FUNCTION_WORDS = frozenset("""
a an the of to for with from by at into onto than as and or but nor because although though
while whereas if unless whether that which whose who whom their its his her our your my
this these those is are was were be been being has have had will would shall should can
could may might must very such so not also both either neither between among upon via
per including about""".split())

STOPWORDS = FUNCTION_WORDS | frozenset("""
what when where why how do does did i you he she it we they me him them us there here
in on up out off over under again then once all any each few more most other some own same
too just now only no yes question answer please tell give""".split())

CLOSERS = set(".!?…。！？」』）)]}\"'”’»›:;*_`~-–—>|/") | {"\u3002"}


def words(text: str) -> list[str]:
    return WORD_RE.findall(text.lower())


def stem(w: str) -> str:
    """Crude English plural/verb folding, enough to match "caves" with "cave"."""
    for suffix in ("ies", "es", "s", "ed", "ing"):
        if len(w) > len(suffix) + 2 and w.endswith(suffix):
            return w[: -len(suffix)]
    return w


def content_words(text: str) -> set[str]:
    return {stem(w) for w in set(words(text)) if w not in STOPWORDS and not w.isdigit()}


def visible_end(text: str) -> str:
    """The last character that is not whitespace ('' for blank text)."""
    t = text.rstrip()
    return t[-1:] if t else ""


def ends_closed(text: str) -> bool:
    """True when the last visible character closes a unit: punctuation, a bracket, a quote,
    markup, a digit or a symbol (anything but a letter), or a CJK character (those
    scripts often end a line without a full stop)."""
    last = visible_end(text)
    if not last or last in CLOSERS or CJK_RE.match(last):
        return True
    return not unicodedata.category(last).startswith("L")


def has_substance(text: str) -> bool:
    """Any letter, digit or symbol (not only punctuation, spaces and control characters)."""
    return any(unicodedata.category(ch)[0] in "LNS" for ch in text)
