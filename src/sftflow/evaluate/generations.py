"""Base and tuned answers to the held-out prompts, side by side.

The prompt is the conversation up to the final assistant turn, rendered by the
backend with the model's own chat template and generation prompt (the inference
template, not the training render). Greedy by default so two runs compare equal.
"""

from __future__ import annotations

from typing import Any

from ..backends import GenParams
from ..schema import Example


def generate_answers(backend, examples: list[Example], params: GenParams) -> list[dict[str, Any]]:
    completions = backend.generate([e.context for e in examples], params)
    if len(completions) != len(examples):
        raise RuntimeError(f"backend returned {len(completions)} completions for {len(examples)} prompts")
    return [{"text": c.text, "finish_reason": c.finish_reason, "completion_tokens": c.completion_tokens,
             **({"error": c.error} if c.error else {})} for c in completions]


def side_by_side(examples: list[Example], base: list[dict] | None, tuned: list[dict] | None) -> list[dict]:
    rows = []
    for i, ex in enumerate(examples):
        row: dict[str, Any] = {"id": ex.id, "prompt": ex.context, "reference": ex.response}
        if base is not None:
            row["base"] = base[i]
        if tuned is not None:
            row["tuned"] = tuned[i]
        rows.append(row)
    return rows
