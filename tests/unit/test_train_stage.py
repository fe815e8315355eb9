"""The recipe's train stage: what the train section leaves unset comes from the recipe."""

import pytest

from sftflow.config import validate
from sftflow.pipeline.recipe import Recipe, RunState


def staged_config(tmp_path, monkeypatch, recipe: dict):
    import sftflow.pipeline.stages.train as stage
    seen = {}

    class Done:
        merged_dir, output_dir, steps, best_eval_loss, final_train_loss = None, tmp_path, 0, None, None

    def fake_train(cfg, train_path, eval_path, out_dir=None):
        seen["cfg"] = cfg
        return Done()
    monkeypatch.setattr(stage, "train", fake_train)
    r = validate(Recipe, recipe)
    stage.run_stage(r.train, RunState(recipe=r, out_dir=tmp_path))
    return seen["cfg"]


@pytest.mark.parametrize("train_seed,expected", [(0, 0), (3, 3), (None, 7)])
def test_train_seed_overrides_recipe_seed_even_when_zero(tmp_path, monkeypatch, train_seed, expected):
    section = {"max_steps": 1} if train_seed is None else {"max_steps": 1, "seed": train_seed}
    cfg = staged_config(tmp_path, monkeypatch, {"seed": 7, "model": "m", "train": section})
    assert cfg.seed == expected and cfg.model == "m"


def test_heldout_loss_during_training_uses_the_eval_stage_masks(tmp_path, monkeypatch):
    cfg = staged_config(tmp_path, monkeypatch, {"train": {"train_on": "assistant"}, "eval": {"train_on": "all"}})
    assert (cfg.train_on, cfg.eval_train_on) == ("assistant", "all")
    cfg = staged_config(tmp_path, monkeypatch, {"train": {"eval_train_on": "last"}, "eval": {"train_on": "all"}})
    assert cfg.eval_train_on == "last"                 # set in the train section: kept
