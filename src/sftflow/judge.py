"""LLM-as-judge: pairwise with position swap, or single-answer grades.

Judges prefer whichever answer they see first (or second) more often than the
answers deserve. So every pair is judged twice, once in each order, and only a
verdict that survives the swap counts: tuned wins when it wins in both orders, loses
when it loses in both, and anything else (the two orders disagree, or either says
tie) is a tie. A judge that always picks "A" therefore scores all ties, as it should.

A verdict the parser cannot read is counted as ``unparsed`` and reported; it is not
turned into a tie or dropped. Rates are over parsed pairs, with a bootstrap 95%
interval over pairs. The prompt is a plain text file with ``{question}``,
``{answer_a}``, ``{answer_b}`` (pairwise) or ``{question}``, ``{answer}`` (single),
so a user can rewrite it without touching code. ``{question}`` is the whole
conversation the answer continues (system prompt and earlier turns, with role headers),
since "the better answer" to "and the other one?" depends on what came before; a
one-turn question is just its text. Placeholders are filled in one pass, so an answer
that contains the text ``{answer_b}`` stays that text.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

from .backends import GenParams
from .intervals import bootstrap_mean, bootstrap_rates

OUTCOMES = ("win", "tie", "loss")
_PAIR_RE = re.compile(r"\[\[\s*([ABC])\s*\]\]")
_PAIR_LOOSE = re.compile(r"(?:final\s+)?verdict\s*(?:is)?\s*[:\-]?\s*\**\s*\(?([ABC])\b", re.IGNORECASE)
_GRADE_RE = re.compile(r"\[\[\s*(\d+(?:\.\d+)?)\s*\]\]")
_GRADE_LOOSE = re.compile(r"rating\s*[:\-]?\s*(\d+(?:\.\d+)?)\s*(?:/\s*10)?", re.IGNORECASE)


def default_prompt_path(mode: str) -> Path:
    return Path(str(resources.files("sftflow") / "prompts" / "judge" / f"{mode}.txt"))


def load_prompt(path: str | Path | None, mode: str) -> str:
    p = Path(path) if path else default_prompt_path(mode)
    if not p.exists():
        raise FileNotFoundError(f"judge prompt {p} does not exist")
    text = p.read_text("utf-8")
    need = ("{question}", "{answer_a}", "{answer_b}") if mode == "pairwise" else ("{question}", "{answer}")
    missing = [n for n in need if n not in text]
    if missing:
        raise ValueError(f"judge prompt {p} lacks the placeholder(s) {', '.join(missing)}")
    return text


def fill(template: str, **values: str) -> str:
    """Replace each ``{name}`` of ``values`` in one pass over the template.

    Not str.format (answers and prompts are full of braces: code, JSON), and not one
    replace per name either: the text put in for ``{answer_a}`` may itself contain
    ``{answer_b}``, which a second replace would then fill with the other answer.
    """
    if not values:
        return template
    pattern = re.compile("|".join(re.escape("{" + k + "}") for k in values))
    return pattern.sub(lambda m: values[m.group(0)[1:-1]], template)


_ROLE_HEADERS = {"system": "System", "user": "User", "assistant": "Assistant", "tool": "Tool result"}


def render_conversation(context: str | list[dict[str, Any]]) -> str:
    """The conversation an answer continues, as text for the judge's ``{question}``.

    A plain string, or a conversation of one user turn, is that text. Anything longer
    (a system prompt, earlier turns, tool results) is every turn under a role header,
    in order, so the judge sees the instructions and context the model saw.
    """
    if isinstance(context, str):
        return context
    if len(context) == 1 and context[0].get("role") == "user":
        return context[0].get("content") or ""
    parts = []
    for m in context:
        text = m.get("content") or ""
        calls = [json.dumps(c.get("function", c), ensure_ascii=False, sort_keys=True)
                 for c in m.get("tool_calls") or []]
        body = "\n".join([t for t in [text, *calls] if t])
        parts.append(f"[{_ROLE_HEADERS.get(m.get('role'), str(m.get('role')))}]\n{body}")
    return "\n\n".join(parts)


def parse_pairwise(text: str) -> str | None:
    """'A', 'B', 'C' (tie) or None. The last bracketed verdict wins (reasoning may quote one)."""
    found = _PAIR_RE.findall(text or "")
    if found:
        return found[-1]
    loose = _PAIR_LOOSE.findall(text or "")
    return loose[-1].upper() if loose else None


def parse_grade(text: str) -> float | None:
    for rx in (_GRADE_RE, _GRADE_LOOSE):
        found = rx.findall(text or "")
        if found:
            v = float(found[-1])
            return v if 1 <= v <= 10 else None
    return None


def combine(first: str | None, second: str | None) -> str:
    """Outcome for the tuned answer. ``first``: verdict with tuned as A; ``second``: tuned as B."""
    if first is None or second is None:
        return "unparsed"
    tuned_first = {"A": "win", "B": "loss", "C": "tie"}[first]
    tuned_second = {"B": "win", "A": "loss", "C": "tie"}[second]
    return tuned_first if tuned_first == tuned_second else "tie"


def judge_pairwise(backend, questions: list[str | list[dict]], tuned: list[str], base: list[str], *,
                   prompt: str | None = None, max_new_tokens: int = 256, bootstrap: int = 1000,
                   seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Judge tuned vs base on each question in both orders. Returns (summary, per-pair rows).

    A question is a string or the conversation before the answer (``Example.context``)."""
    if not (len(questions) == len(tuned) == len(base)):
        raise ValueError("questions, tuned and base answers must have the same length")
    template = load_prompt(prompt, "pairwise")
    requests = []
    for q, t, b in zip(map(render_conversation, questions), tuned, base):
        requests.append([{"role": "user", "content": fill(template, question=q, answer_a=t, answer_b=b)}])
        requests.append([{"role": "user", "content": fill(template, question=q, answer_a=b, answer_b=t)}])
    params = GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
    replies = backend.generate(requests, params) if requests else []
    rows, outcomes = [], []
    for i in range(len(questions)):
        r1, r2 = replies[2 * i], replies[2 * i + 1]
        v1 = parse_pairwise(r1.text) if r1.finish_reason != "error" else None
        v2 = parse_pairwise(r2.text) if r2.finish_reason != "error" else None
        out = combine(v1, v2)
        rows.append({"index": i, "tuned_as_a": v1, "tuned_as_b": v2, "outcome": out,
                     "raw_tuned_as_a": r1.text, "raw_tuned_as_b": r2.text})
        outcomes.append(out)
    return summarize_pairwise(outcomes, bootstrap=bootstrap, seed=seed), rows


def summarize_pairwise(outcomes: list[str], *, bootstrap: int = 1000, seed: int = 0) -> dict[str, Any]:
    parsed = [o for o in outcomes if o != "unparsed"]
    n = len(parsed)
    summary: dict[str, Any] = {"mode": "pairwise", "n": n, "pairs": len(outcomes),
                               "unparsed": len(outcomes) - n}
    ci = bootstrap_rates(parsed, OUTCOMES, samples=bootstrap, seed=seed)
    for lab in OUTCOMES:
        summary[lab] = parsed.count(lab) / n if n else float("nan")
        summary[f"{lab}_low"], summary[f"{lab}_high"] = ci[lab]
    return summary


def judge_single(backend, questions: list[str | list[dict]], answers: dict[str, list[str]], *,
                 prompt: str | None = None, max_new_tokens: int = 256, bootstrap: int = 1000,
                 seed: int = 0) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Grade each answer 1-10; ``answers`` maps a side ("base", "tuned") to its answers."""
    template = load_prompt(prompt, "single")
    sides = list(answers)
    rendered = [render_conversation(q) for q in questions]
    requests = [[{"role": "user", "content": fill(template, question=q, answer=answers[s][i])}]
                for s in sides for i, q in enumerate(rendered)]
    params = GenParams(max_new_tokens=max_new_tokens, temperature=0.0, seed=seed)
    replies = backend.generate(requests, params) if requests else []
    summary: dict[str, Any] = {"mode": "single"}
    rows: list[dict[str, Any]] = [{"index": i} for i in range(len(questions))]
    for k, s in enumerate(sides):
        grades = []
        for i in range(len(questions)):
            r = replies[k * len(questions) + i]
            g = parse_grade(r.text) if r.finish_reason != "error" else None
            rows[i][s] = g
            rows[i][f"raw_{s}"] = r.text
            grades.append(g)
        ok = [g for g in grades if g is not None]
        low, high = bootstrap_mean(ok, samples=bootstrap, seed=seed)
        summary[s] = {"mean": sum(ok) / len(ok) if ok else float("nan"), "low": low, "high": high,
                      "n": len(ok), "unparsed": len(grades) - len(ok)}
    summary["unparsed"] = sum(summary[s]["unparsed"] for s in sides)
    return summary, rows
