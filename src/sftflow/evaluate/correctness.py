"""Judge-graded correctness against the reference, for answers without figures to check.

The figure metric (``reference.py``) checks numbers exactly; free-text answers need a
reader. A judge model (any generation backend) sees the question, the reference answer
and the model's answer and says ``[[CORRECT]]`` or ``[[INCORRECT]]``. A reply with
neither is counted as unparsed and left out of the rate, never guessed. Each side's
rate has a Wilson interval; base vs tuned is a paired exact test over prompts both
sides got a verdict for.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..backends import GenParams
from ..intervals import mcnemar_exact, rate
from .judge import fill

_VERDICT = re.compile(r"\[\[\s*(CORRECT|INCORRECT)\s*\]\]", re.IGNORECASE)
_LOOSE = re.compile(r"\b(CORRECT|INCORRECT)\b")


def default_prompt() -> Path:
    return Path(__file__).resolve().parent / "prompts" / "correctness.txt"


def load_correctness_prompt(path: str | Path | None) -> str:
    p = Path(path) if path else default_prompt()
    text = p.read_text("utf-8")
    missing = [k for k in ("{question}", "{reference}", "{answer}") if k not in text]
    if missing:
        raise ValueError(f"correctness prompt {p} lacks the placeholder(s) {', '.join(missing)}")
    return text


def parse_verdict(text: str) -> bool | None:
    """True (correct), False (incorrect) or None (unreadable). The last bracketed verdict wins."""
    found = _VERDICT.findall(text or "") or _LOOSE.findall(text or "")
    return None if not found else found[-1].upper() == "CORRECT"


def grade_answers(backend, examples, answers: list[dict], prompt: str, *, max_new_tokens: int = 32
                  ) -> list[dict]:
    requests = [[{"role": "user", "content": fill(prompt, question=e.prompt, reference=e.response,
                                                  answer=a.get("text") or "")}]
                for e, a in zip(examples, answers)]
    replies = backend.generate(requests, GenParams(max_new_tokens=max_new_tokens, temperature=0.0))
    return [{"id": e.id, "correct": parse_verdict(r.text), "verdict_text": r.text}
            for e, r in zip(examples, replies)]


def summarize_grades(rows_by_side: dict[str, list[dict]]) -> dict:
    out: dict = {"description": "judged correct against the reference answer"}
    for side, rows in rows_by_side.items():
        parsed = [r for r in rows if r["correct"] is not None]
        out[side] = {**rate(sum(r["correct"] for r in parsed), len(parsed)),
                     "unparsed": len(rows) - len(parsed)}
    if {"base", "tuned"} <= set(rows_by_side):
        pairs = [(b["correct"], t["correct"]) for b, t in zip(rows_by_side["base"], rows_by_side["tuned"])
                 if b["correct"] is not None and t["correct"] is not None]
        out["paired"] = mcnemar_exact([b for b, _ in pairs], [t for _, t in pairs])
    return out
