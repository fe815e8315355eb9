"""The curate stage of a recipe: clean the current training file, hand on the kept set.

Evaluation data was set aside before any stage ran (``recipe.prepare_data``); by default
this stage also checks the training data against it and removes whatever leaked.
"""

from __future__ import annotations

from .config import CurateConfig
from .pipeline import curate


def run_stage(cfg: CurateConfig, state) -> None:
    if state.train_path is None:
        raise ValueError("curate: the recipe has no training data (set data.train)")
    out = state.stage_dir("curate")
    eval_paths = []
    has_eval = state.eval_path is not None and state.eval_path.exists()
    if (cfg.leak_check is None and has_eval) or (cfg.leak_check and has_eval):
        eval_paths.append(state.eval_path)
    elif cfg.leak_check and not has_eval and not cfg.leakage.eval:
        raise ValueError("curate.leak_check is true but the recipe has no evaluation file")
    if eval_paths:
        eval_paths += list(cfg.leakage.eval)
    result = curate([state.train_path], out, cfg, model=cfg.model or state.recipe.model,
                    eval_paths=eval_paths or None)
    state.train_path = out / "kept.jsonl"
    state.artifacts["curate"] = {"input": result.n_input, "kept": len(result.kept),
                                 "rejected": len(result.rejected), "dir": str(out)}
