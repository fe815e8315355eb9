"""When a short answer is the right answer.

The seed's length rules (at least 20 characters, at least 20 tokens) suit open-ended
instructions and throw away whole task families of real mixes: a sentiment label, a
topic, ``True``, ``1950``, a span copied from a passage, a headline. A response below
those minimums is kept when the prompt asks for that kind of answer; the kind found is
written to the step's measurements (``short_answer``). Kinds, tried in this order:

- ``yes_no``: yes / no / true / false / maybe (and correct / incorrect), when the prompt
  asks something (a question mark, "whether", or the words themselves);
- ``option``: the response is one of the choices the prompt names (it appears in the
  prompt and the prompt offers choices: options, choose, which of, "A or B", a range
  "1 to 5" holding the number);
- ``number``: a number with at most two unit words ("5 stars", "3.5 kg", "1950"), when
  the prompt asks for a quantity, a date, a rating or a score;
- ``label``: at most four words, when the prompt asks for a label, category, topic,
  class, sentiment, rating or the like;
- ``span``: at most twelve words copied from a prompt at least three times longer
  (and of fifteen words or more): extractive QA;
- ``title``: at most fifteen words, when the prompt asks for a title, headline, name,
  question, keyword or phrase;
- ``summary``: at least three words, when the prompt asks for a summary or a TL;DR;
- ``short_request``: the prompt asks for a short answer ("in one word", "answer with",
  "Answer:" at its end).

Empty and punctuation-only responses are never short answers: the ``empty`` step
rejects them whatever the task.
"""

from __future__ import annotations

import re

from .text import has_substance, words

KINDS = ("yes_no", "option", "number", "label", "span", "title", "summary", "short_request")

YES_NO = frozenset({"yes", "no", "true", "false", "maybe", "correct", "incorrect"})
_ASKS = re.compile(r"\?|\bwhether\b|\b(yes|no|true|false)\b", re.I)
_CHOICES = re.compile(r"\b(options?|choices?|choose|select|pick|which (one|of)|one of|among|either)\b"
                      r"|\bor\b|\b\d+\s*(to|-|–)\s*\d+\b|^\s*\(?[a-d1-4][).:]\s", re.I | re.M)
_NUMBER = re.compile(r"^\W*[-+]?(\d[\d,]*(\.\d+)?|\d+/\d+)\s*%?(\s+[^\W\d]+){0,2}\W*$")
_QUANTITY = re.compile(r"\b(how (many|much|old|long|far)|number|amount|count|total|sum|year|date|when|"
                       r"age|rate|rating|scale|score|stars?|grade|calculate|compute|solve|percent)\b"
                       r"|\d|\?", re.I)
_LABEL = re.compile(r"\b(label|categor\w*|class\w*|topic|subject|sentiment|genre|type|kind|tag|"
                    r"rating|rate|stars?|emotion|intent|polarity|positive or negative|tone)\b", re.I)
_TITLE = re.compile(r"\b(title|headline|name|subject line|tagline|slogan|caption|question|keywords?|"
                    r"word|phrase|term|entity|answer)\b", re.I)
_SUMMARY = re.compile(r"\b(summar\w*|tl;?dr|gist|main (point|idea)|in (one|a) sentence|briefly)\b", re.I)
_SHORT = re.compile(r"\b(in (one|a single|two|three|a few) words?|one-word|single word|short answer|"
                    r"answer with|respond with|reply with|only (the|a|one)|just (the|a))\b"
                    r"|\b(answer|a|label|output|result)\s*:\s*$", re.I)


def _in_prompt(resp_words: list[str], prompt_words: list[str]) -> bool:
    n = len(resp_words)
    if n == 0 or n > len(prompt_words):
        return False
    first = resp_words[0]
    return any(prompt_words[i:i + n] == resp_words for i, w in enumerate(prompt_words) if w == first)


def _in_range(number: str, prompt: str) -> bool:
    try:
        x = float(number.replace(",", ""))
    except ValueError:
        return False
    for lo, hi in re.findall(r"\b(\d+)\s*(?:to|-|–)\s*(\d+)\b", prompt):
        if float(lo) <= x <= float(hi):
            return True
    return False


def short_answer_kind(prompt: str, response: str, kinds: list[str] | tuple[str, ...] = KINDS) -> str | None:
    """The kind of short answer ``response`` is for ``prompt``, or None when it is none."""
    text = response.strip()
    if not text or not has_substance(text):
        return None
    rw, pw = words(text), words(prompt)
    checks = {
        "yes_no": lambda: 0 < len(rw) <= 2 and set(rw) <= YES_NO and bool(_ASKS.search(prompt)),
        "option": lambda: len(rw) <= 6 and bool(_CHOICES.search(prompt)) and (
            _in_prompt(rw, pw) or (bool(_NUMBER.match(text)) and _in_range(rw[0], prompt))),
        "number": lambda: bool(_NUMBER.match(text)) and bool(_QUANTITY.search(prompt)),
        "label": lambda: 0 < len(rw) <= 4 and bool(_LABEL.search(prompt)),
        # a span *of a passage*: the prompt must be much longer than the answer
        "span": lambda: 0 < len(rw) <= 12 and len(pw) >= max(15, 3 * len(rw)) and _in_prompt(rw, pw),
        "title": lambda: 0 < len(rw) <= 15 and bool(_TITLE.search(prompt)),
        "summary": lambda: len(rw) >= 3 and bool(_SUMMARY.search(prompt)),
        "short_request": lambda: bool(_SHORT.search(prompt.rstrip())),
    }
    for kind in KINDS:
        if kind in kinds and checks[kind]():
            return kind
    return None
