"""The generative general-ability probe: does tuning on one domain cost general answers?

A multiple-choice probe of 100 questions has a standard error near 5 points and reads
one token per question; a tune that makes every general answer a little worse slips
past it. This probe reads whole answers instead, on general conversations (no finance)
whose reference answers were written for sftflow:

- **response loss** of the reference answers under each model (token-weighted mean over
  the final assistant turn, the eval's ``train_on="last"`` definition), paired
  base vs tuned with a bootstrap interval; the gate reads its relative change;
- **stop rate** (the answer ends its turn before ``max_new_tokens``) and **looping**
  (some 4-word sequence repeats 3+ times) of each model's own greedy answers, each
  with a Wilson interval and a paired exact test.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .config import GeneralSection

SHIPPED = {"general_conversations": Path(__file__).resolve().parent / "data" / "general_conversations.jsonl"}

GENERAL_PROBES = [
    {"name": "ended_turn", "kind": "finish_reason", "equals": "stop",
     "description": "ended its turn before the token limit"},
    {"name": "looping", "kind": "repeated_ngrams", "n": 4, "min_repeats": 3,
     "description": "some 4-word sequence occurs 3 or more times"},
]


def general_files(section: GeneralSection) -> list[str]:
    return [str(SHIPPED.get(f, f)) for f in section.data]


def load_general(section: GeneralSection):
    from ..io import load_examples
    files = general_files(section)
    missing = [f for f in files if not Path(f).exists()]
    if missing:
        raise FileNotFoundError(f"general probe data not found: {', '.join(missing)}")
    examples = load_examples(files)
    return examples[: section.limit] if section.limit else examples


def side_general(section: GeneralSection, lm, tok, backend, *, max_length: int | None, batch_size: int
                 ) -> dict[str, Any]:
    """One model's general-probe results: loss rows and its own answers."""
    from ..backends import GenParams
    from .generations import generate_answers
    from .heldout import heldout_loss

    examples = load_general(section)
    loss, rows = heldout_loss(lm, tok, examples, train_on="last", max_length=max_length, batch_size=batch_size)
    out: dict[str, Any] = {"n": len(examples), "loss": loss, "loss_rows": rows}
    if section.generate:
        out["answers"] = generate_answers(backend, examples, GenParams(max_new_tokens=section.max_new_tokens))
    return out


def general_metrics(sides: dict[str, dict]) -> dict[str, Any] | None:
    """The ``general`` block of metrics.json (None when the probe was off)."""
    from .heldout import compare
    from ..probes import compare_probes, run_probes

    per = {s: r.get("general") for s, r in sides.items() if r.get("general")}
    if "tuned" not in per:
        return None
    base = per.get("base") or {}
    out: dict[str, Any] = {"n": per["tuned"]["n"], "data_definition": "response loss of the final assistant "
                           "turn, token-weighted (train_on=last)",
                           "loss": compare(base.get("loss"), per["tuned"]["loss"], base.get("loss_rows"),
                                           per["tuned"]["loss_rows"])}
    if base.get("loss"):
        out["loss"]["relative_change"] = out["loss"]["delta"] / base["loss"]["loss"]
    if "answers" in per["tuned"]:
        rates = {s: run_probes(r["answers"], GENERAL_PROBES) for s, r in per.items()}
        out["probes"] = {p["name"]: {"description": p["description"], **{s: rates[s][p["name"]] for s in rates}}
                         for p in GENERAL_PROBES}
        if "answers" in base:
            for name, paired in compare_probes(base["answers"], per["tuned"]["answers"], GENERAL_PROBES).items():
                out["probes"][name]["paired"] = paired
    return out
