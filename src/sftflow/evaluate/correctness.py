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
from typing import Any

from ..backends import GenParams
from ..intervals import mcnemar_exact, rate
from ..io import write_jsonl
from ..judge import fill

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


def reference_metrics(cfg, sides: dict[str, dict], examples, out_dir: Path) -> dict:
    """Correctness against the reference: stated figures per side, paired; the optional judge grade."""
    from .reference import figure_rows, summarize_figures
    out: dict[str, Any] = {"figures": None, "judge": None}
    if cfg.reference.figures:
        rows = {s: figure_rows(examples, r["answers"], cfg.reference.rel_tol) for s, r in sides.items()}
        write_jsonl(out_dir / "reference_figures.jsonl",
                    [{"id": ex.id, **{s: rows[s][i] for s in rows}} for i, ex in enumerate(examples)])
        out["figures"] = summarize_figures(rows)
    if cfg.reference.judge is not None:
        out["judge"] = run_correctness_judge(cfg, sides, examples, out_dir)
    return out


def run_correctness_judge(cfg, sides: dict[str, dict], examples, out_dir: Path) -> dict:
    from ..backends import get_backend
    j = cfg.reference.judge
    if j.backend != "fake" and not j.model:
        raise ValueError("reference.judge.model is required (the model that grades)")
    options = {"batch_size": j.batch_size} if j.backend == "transformers" else {}
    backend = get_backend(j.backend, model=j.model, **options)
    prompt = load_correctness_prompt(j.prompt)
    n = min(len(examples), j.limit or len(examples))
    rows = {s: grade_answers(backend, examples[:n], r["answers"][:n], prompt, max_new_tokens=j.max_new_tokens)
            for s, r in sides.items()}
    write_jsonl(out_dir / "reference_judgments.jsonl",
                [{"id": ex.id, **{s: rows[s][i] for s in rows}} for i, ex in enumerate(examples[:n])])
    return {**summarize_grades(rows), "backend": j.backend, "judge_model": j.model}
