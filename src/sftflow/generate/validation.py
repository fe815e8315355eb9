"""Is a rewrite still the same request? Embedding cosine plus a drift check.

A paraphrase or a round trip through another language can change the task while
reading fluently: a number changes ("within 30 days" -> "within 3 days"), a name
disappears, half the request is dropped. Each rewrite is measured against its
source; the measurements go into the record's metadata, and a rewrite that fails a
check goes to the rejects with the check's name and value.

- cosine: ``sftflow.embed.embed_texts`` (sentence-transformers or TF-IDF) of source
  and rewrite, at least ``min_cosine``;
- length ratio: words(rewrite) / words(source) within [min, max];
- numbers: every number in the source appears in the rewrite (compared as values,
  so "1,000" == "1000" and "3.50" == "3.5");
- named entities: every capitalised name, acronym or ticker of the source appears
  in the rewrite. No NER model ships offline with sftflow, so this is a heuristic on
  capitalisation: words capitalised away from a sentence start, and all-caps
  tokens. It misses lower-case names and may flag a capitalised common word; the
  check can be turned off.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

_NUM = re.compile(r"(?<![A-Za-z])\d[\d,]*(?:\.\d+)?")
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9&'./-]*")


def numbers(text: str) -> set[str]:
    out = set()
    for m in _NUM.findall(text):
        raw = m.replace(",", "").rstrip(".")
        try:
            v = float(raw)
        except ValueError:
            continue
        out.add(f"{v:g}" if abs(v) < 1e15 else raw)
    return out


def entities(text: str) -> set[str]:
    """Capitalised words away from a sentence start, and all-caps tokens (tickers, acronyms)."""
    out = set()
    for sent in re.split(r"(?<=[.!?:;])\s+|\n+", text):
        words = _WORD.findall(sent)
        for i, w in enumerate(words):
            w = w.rstrip(".'")
            if len(w) >= 2 and w.isupper():
                out.add(w)
            elif i > 0 and len(w) >= 2 and w[:1].isupper():
                out.add(w)
    return out


def lost_numbers(source: str, rewrite: str) -> list[str]:
    return sorted(numbers(source) - numbers(rewrite))


def lost_entities(source: str, rewrite: str) -> list[str]:
    low = rewrite.lower()
    return sorted(e for e in entities(source) if e.lower() not in low)


def length_ratio(source: str, rewrite: str) -> float:
    return len(rewrite.split()) / max(1, len(source.split()))


_LEAD = re.compile(r"^\s*(?:here is[^:\n]*:|here's[^:\n]*:|(?:rewritten |paraphrased |new )?instruction\s*:|"
                   r"translation\s*:|rewrite\s*:)\s*", re.IGNORECASE)


def clean_rewrite(text: str) -> str:
    """Strip the wrapper a chat model puts around an answer ("Here is ...:", quotes)."""
    t = text.strip()
    for _ in range(2):
        t = _LEAD.sub("", t).strip()
    if len(t) >= 2 and t[0] == t[-1] and t[0] in "\"'\u201c\u201d`":
        t = t[1:-1].strip()
    if t.startswith("\u201c") and t.endswith("\u201d"):
        t = t[1:-1].strip()
    return t


@dataclass
class Verdict:
    ok: bool
    measures: dict[str, Any] = field(default_factory=dict)
    step: str | None = None
    reason: str | None = None
    value: Any = None


def validate_rewrites(pairs: list[tuple[str, str]], cfg) -> list[Verdict]:
    """Check (source, rewrite) pairs with a ``ValidationConfig``; one embedding call for all."""
    from ..embed import embed_texts
    if not pairs:
        return []
    sources = [s for s, _ in pairs]
    rewrites = [r for _, r in pairs]
    vecs = embed_texts(sources + rewrites, cfg.embed_model, method=cfg.embed_method)
    n = len(pairs)
    cos = (vecs[:n] * vecs[n:]).sum(axis=1)
    out = []
    for i, (src, rw) in enumerate(pairs):
        m = {"cosine": round(float(cos[i]), 4), "embed_method": cfg.embed_method,
             "length_ratio": round(length_ratio(src, rw), 3),
             "lost_numbers": lost_numbers(src, rw), "lost_entities": lost_entities(src, rw)}
        v = Verdict(ok=True, measures=m)
        if not rw.strip():
            v.ok, v.step, v.reason, v.value = False, "validate:empty", "empty rewrite", ""
        elif rw.strip() == src.strip():
            v.ok, v.step, v.reason, v.value = False, "validate:unchanged", "rewrite equals the source", None
        elif not cfg.min_length_ratio <= m["length_ratio"] <= cfg.max_length_ratio:
            v.ok, v.step = False, "validate:length_ratio"
            v.reason = (f"length ratio {m['length_ratio']} outside "
                        f"[{cfg.min_length_ratio}, {cfg.max_length_ratio}]")
            v.value = m["length_ratio"]
        elif cfg.check_numbers and m["lost_numbers"]:
            v.ok, v.step, v.reason = False, "validate:numbers", "numbers of the source are missing"
            v.value = m["lost_numbers"]
        elif cfg.check_entities and m["lost_entities"]:
            v.ok, v.step, v.reason = False, "validate:entities", "named entities of the source are missing"
            v.value = m["lost_entities"]
        elif m["cosine"] < cfg.min_cosine:
            v.ok, v.step = False, "validate:cosine"
            v.reason = f"embedding cosine {m['cosine']} < {cfg.min_cosine}"
            v.value = m["cosine"]
        out.append(v)
    return out
