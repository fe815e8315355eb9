"""Does the answer state the figure the reference works out? (the ``reference`` metrics)

A fluent, confident answer with the wrong number is the failure a finance assistant
must not have, and loss or format probes cannot see it. This module reads figures out
of text and checks one per prompt:

1. **The target.** The first figure in the reference's ``Answer:`` line (its first line
   when it has none) that the conversation does not already state. In "$20,000 at 5%
   compounded annually grows to $26,801.91 after 6 years" the target is $26,801.91:
   $20,000, 5% and 6 came from the question. A prompt whose reference states no new figure has no target and is
   left out of the rate (its count is reported).
2. **Figures in the answer.** Money (``$1,234.50``, ``-$12``, ``$1.2 million``),
   percentages (``12%``, ``12 percent``), and plain numbers with an optional unit
   (``18 months``, ``7.2 years``, ``1,234.5``).
3. **A match.** Same value within 0.5% relative, or equal once both are rounded to the
   cent (so $1,234.504 and $1,234.50 agree). Kinds must be compatible: money matches
   money or a bare number; a percentage matches a percentage, or a bare decimal below 1
   that is the same share (12% ~ 0.12, the one unambiguous reading); a count or duration
   matches any bare number.

Written by hand: no library extracts financial figures with units from free text
(quantulum-style parsers target physical units and misread ``$`` amounts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

REL_TOL = 0.005

_SCALE = {"thousand": 1e3, "million": 1e6, "billion": 1e9, "trillion": 1e12}
_FIGURE = re.compile(
    r"(?<![\w.,])(?P<neg>[-\u2212])?(?P<cur>\$)?\s?(?P<neg2>-)?"
    r"(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?P<frac>\.\d+)?"
    r"(?:\s?(?P<pct>%|percent\b|per cent\b))?"
    r"(?:\s(?P<scale>thousand|million|billion|trillion)\b)?"
    r"(?:[\s-](?P<unit>years?|months?|weeks?|days?|hours?|minutes?|payments?|shares?|units?|times)\b)?",
    re.IGNORECASE)


# Numbers that are part of a name, not a figure: "the rule of 72", "the 50/30/20 rule", "a 401(k)".
_NAMES = re.compile(r"\brule of \d+\b|\b\d+/\d+(?:/\d+)+\b|\b(?:401|403|457)\s?\([a-z]\)|\b529 plan\b",
                    re.IGNORECASE)


@dataclass(frozen=True)
class Figure:
    value: float
    kind: str            # "money", "percent" or "number"
    text: str
    unit: str | None = None

    def to_dict(self) -> dict:
        return {"value": self.value, "kind": self.kind, "text": self.text,
                **({"unit": self.unit} if self.unit else {})}


def extract_figures(text: str) -> list[Figure]:
    """Every figure in ``text``, in order."""
    out = []
    text = _NAMES.sub(lambda m: " " * len(m.group(0)), text or "")
    for m in _FIGURE.finditer(text):
        value = float(m["int"].replace(",", "") + (m["frac"] or ""))
        if m["scale"]:
            value *= _SCALE[m["scale"].lower()]
        if m["neg"] or m["neg2"]:
            value = -value
        kind = "money" if m["cur"] else "percent" if m["pct"] else "number"
        unit = (m["unit"] or "").lower().rstrip("s") or None
        out.append(Figure(value=value, kind=kind, text=m.group(0).strip(), unit=unit))
    return out


def _close(a: float, b: float, rel_tol: float) -> bool:
    if abs(a - b) <= rel_tol * max(abs(a), abs(b)):
        return True
    return round(a + 0.0, 2) == round(b + 0.0, 2)


def matches(answer: Figure, target: Figure, rel_tol: float = REL_TOL) -> bool:
    """Whether a figure in the answer states the target figure (see the module docstring)."""
    if target.kind == "money":
        return answer.kind in ("money", "number") and _close(answer.value, target.value, rel_tol)
    if target.kind == "percent":
        if answer.kind == "percent":
            return _close(answer.value, target.value, rel_tol)
        # 0.12 for 12% is unambiguous; a bare 12 could be anything, so it does not count.
        return (answer.kind == "number" and answer.unit is None and abs(answer.value) < 1
                and _close(answer.value * 100, target.value, rel_tol))
    return answer.kind == "number" and _close(answer.value, target.value, rel_tol)


def answer_line(reference: str) -> str:
    """The reference's ``Answer:`` line, or its first non-empty line."""
    for line in reference.splitlines():
        if line.strip().lower().startswith("answer:"):
            return line.strip()[len("answer:"):]
    return next((ln for ln in reference.splitlines() if ln.strip()), "")


def target_figure(context_text: str, reference: str, rel_tol: float = REL_TOL) -> Figure | None:
    """The first figure of the reference's answer line that the conversation did not state."""
    given = extract_figures(context_text)
    for fig in extract_figures(answer_line(reference)):
        if not any(matches(g, fig, rel_tol) or matches(fig, g, rel_tol) for g in given):
            return fig
    return None


def states_figure(answer: str, target: Figure, rel_tol: float = REL_TOL) -> bool:
    return any(matches(f, target, rel_tol) for f in extract_figures(answer))


def context_text(example) -> str:
    """Everything the model was shown: the figures it could merely repeat."""
    return "\n".join(m.get("content") or "" for m in example.context)


def figure_rows(examples, answers: list[dict], rel_tol: float = REL_TOL) -> list[dict]:
    """One row per example: its target (or None) and whether the answer states it."""
    rows = []
    for ex, ans in zip(examples, answers):
        target = target_figure(context_text(ex), ex.response, rel_tol)
        row = {"id": ex.id, "target": target.to_dict() if target else None, "stated": None}
        if target is not None:
            row["stated"] = states_figure(ans.get("text") or "", target, rel_tol)
        rows.append(row)
    return rows


def summarize_figures(rows_by_side: dict[str, list[dict]]) -> dict:
    """Each side's rate (Wilson interval) over prompts with a target; base vs tuned paired (McNemar)."""
    from ..intervals import mcnemar_exact, rate

    out: dict = {"description": "states the figure the reference works out "
                                f"(within {REL_TOL:.1%} or to the cent)"}
    for side, rows in rows_by_side.items():
        scored = [r for r in rows if r["stated"] is not None]
        out[side] = {**rate(sum(r["stated"] for r in scored), len(scored)),
                     "without_target": len(rows) - len(scored)}
    sides = [s for s in ("base", "tuned") if s in rows_by_side]
    if len(sides) == 2:
        pairs = [(b["stated"], t["stated"]) for b, t in zip(rows_by_side["base"], rows_by_side["tuned"])
                 if b["stated"] is not None]
        out["paired"] = mcnemar_exact([b for b, _ in pairs], [t for _, t in pairs])
    return out
