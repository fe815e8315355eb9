"""Recipe stage: train on the current training file, evaluate on the held-out one."""

from __future__ import annotations

from ...train.config import TrainConfig
from ...train.sft import train


def run_stage(cfg: TrainConfig, state) -> None:
    if cfg.model is None:
        cfg = cfg.model_copy(update={"model": state.recipe.model})
    if cfg.seed == 0 and state.recipe.seed:
        cfg = cfg.model_copy(update={"seed": state.recipe.seed})
    train_path = None if cfg.data else state.train_path
    eval_path = None if cfg.eval else state.eval_path
    result = train(cfg, train_path, eval_path, out_dir=state.stage_dir("train"))
    state.model_dir = result.merged_dir or result.output_dir
    state.artifacts["train"] = {"output_dir": str(result.output_dir), "steps": result.steps,
                                "best_eval_loss": result.best_eval_loss,
                                "final_train_loss": result.final_train_loss}
