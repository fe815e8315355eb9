"""The curate stage of a recipe: clean the current training file, hand on the kept set.

Validation and test were set aside before any stage ran (``recipe.prepare_data``); by
default this stage also checks the training data against both and removes whatever leaked.
"""

from __future__ import annotations

from pathlib import Path

from ...curate.config import CurateConfig
from ...curate.pipeline import curate


def run_stage(cfg: CurateConfig, state) -> None:
    if state.train_path is None:
        raise ValueError("curate: the recipe has no training data (set data.train)")
    out = state.stage_dir("curate")
    held = [p for p in (state.validation_path, state.test_path) if p is not None and Path(p).exists()]
    check = cfg.leak_check if cfg.leak_check is not None else bool(held)
    eval_paths: list = []
    if check:
        eval_paths = held + list(cfg.leakage.eval)
        if not eval_paths:
            raise ValueError("curate.leak_check is true but there is no validation or test file "
                             "(set data.validation / data.test, their fractions, or curate.leakage.eval)")
    result = curate([state.train_path], out, cfg, model=cfg.model or state.recipe.model,
                    eval_paths=eval_paths or None, collect=False)
    state.train_path = out / "kept.jsonl"
    state.artifacts["curate"] = {"input": result.n_input, "kept": result.kept_count,
                                 "rejected": result.rejected_count, "dir": str(out)}
