"""Recipe stage: score the current training file, select from it, hand the selection on."""

from __future__ import annotations

from ...select.config import SelectConfig
from ...select.pipeline import score_and_select


def run_stage(cfg: SelectConfig, state) -> None:
    if state.train_path is None:
        raise ValueError("the select stage needs training data: give data.train in the recipe")
    d = state.stage_dir("select")
    report, res = score_and_select([state.train_path], d, cfg, model=cfg.score.model or state.recipe.model)
    state.train_path = d / "selected.jsonl"
    state.artifacts["select"] = {"scored": str(d / "scored.jsonl"), "selected": len(res.selected),
                                 "not_selected": len(res.not_selected), "summary": res.summary,
                                 "losses_computed": report.get("scores", {}).get("losses_computed")}
