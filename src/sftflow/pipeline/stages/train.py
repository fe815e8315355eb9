"""Recipe stage: train on the current training file, evaluate on the held-out one."""

from __future__ import annotations

from ...train.config import TrainConfig
from ...train.sft import train


def inherit_recipe(cfg: TrainConfig, recipe) -> TrainConfig:
    """Fields the train section leaves unset (None) take the recipe's values: its model,
    its seed, and the eval stage's ``train_on`` for the held-out loss, so the loss the
    trainer logs and the one the eval stage reports are measured on the same tokens."""
    update = {}
    if cfg.model is None:
        update["model"] = recipe.model
    if cfg.seed is None:
        update["seed"] = recipe.seed
    if cfg.eval_train_on is None and recipe.eval is not None:
        update["eval_train_on"] = recipe.eval.train_on
    return cfg.model_copy(update=update)


def run_stage(cfg: TrainConfig, state) -> None:
    cfg = inherit_recipe(cfg, state.recipe)
    train_path = None if cfg.data else state.train_path
    eval_path = None if cfg.eval else state.eval_path
    result = train(cfg, train_path, eval_path, out_dir=state.stage_dir("train"))
    state.model_dir = result.merged_dir or result.output_dir
    state.artifacts["train"] = {"output_dir": str(result.output_dir), "steps": result.steps,
                                "best_eval_loss": result.best_eval_loss,
                                "final_train_loss": result.final_train_loss}
