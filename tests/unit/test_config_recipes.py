"""Every shipped recipe validates; typos are errors that suggest the right key."""

from pathlib import Path

import pytest

from sftflow.config import ConfigError, load_config
from sftflow.pipeline.recipe import Recipe, load_recipe
from sftflow.train.config import TrainConfig

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert len(RECIPES) >= 2


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_validates(path):
    r = load_recipe(path)
    assert isinstance(r, Recipe)
    for f in r.data.train + r.data.validation + r.data.test:
        assert (ROOT / f).exists(), f"{path.name} names a missing data file {f}"


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_shipped_recipe_fixes_three_sets(path):
    r = load_recipe(path)
    assert r.data.validation and r.data.test, f"{path.name}: give validation and test files"
    assert not set(r.data.validation) & set(r.data.test) & set(r.data.train)


def test_old_eval_key_is_an_error_that_suggests_the_new_schema(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("data:\n  train: [a.jsonl]\n  test_fration: 0.2\n")
    with pytest.raises(ConfigError, match="did you mean 'test_fraction'"):
        load_recipe(p)


def test_misspelled_key_suggests_closest(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  learnig_rate: 1e-4\n")
    with pytest.raises(ConfigError, match="unknown key 'learnig_rate'.*did you mean 'learning_rate'"):
        load_recipe(p)
    p.write_text("trian:\n  epochs: 1\n")
    with pytest.raises(ConfigError, match="did you mean 'train'"):
        load_recipe(p)


def test_overrides_are_typed_and_validated(tmp_path):
    p = tmp_path / "r.yaml"
    p.write_text("train:\n  epochs: 1\n")
    r = load_recipe(p, ["train.learning_rate=1e-4", "train.method=full", "seed=7"])
    assert r.train.learning_rate == 1e-4 and r.train.method == "full" and r.seed == 7
    assert r.train.lr == 1e-4
    with pytest.raises(ConfigError, match="method"):
        load_recipe(p, ["train.method=qlora-ish"])
    with pytest.raises(ConfigError, match="did you mean 'epochs'"):
        load_recipe(p, ["train.epoch=2"])


def test_lr_defaults_follow_method():
    assert TrainConfig().lr == 2e-4
    assert TrainConfig(method="full").lr == 2e-5
    cfg = TrainConfig()
    assert (cfg.lr_scheduler, cfg.warmup_ratio, cfg.weight_decay, cfg.max_grad_norm) == ("cosine", 0.03, 0.1, 1.0)


def test_train_config_from_yaml(tmp_path):
    p = tmp_path / "t.yaml"
    p.write_text("method: full\nbatch_size: 2\n")
    cfg = load_config(TrainConfig, p, ["epochs=3"])
    assert (cfg.method, cfg.batch_size, cfg.epochs) == ("full", 2, 3.0)
