"""Curate config: named steps, strict parameters with suggestions, --set overrides, shipped recipe."""

from __future__ import annotations

from pathlib import Path

import pytest

from sftflow.config import ConfigError, validate
from sftflow.cli.curate import load_curate_config
from sftflow.curate.config import DEFAULT_STEPS, CurateConfig

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_run_filters_and_dedup_not_embedders():
    cfg = CurateConfig()
    assert cfg.steps == DEFAULT_STEPS
    assert "semantic_dedup" not in cfg.steps and "diversity" not in cfg.steps
    assert (cfg.length.min_instruction, cfg.length.max_instruction) == (5, 2048)
    assert (cfg.length.min_response, cfg.length.max_response) == (20, 2048)
    assert (cfg.near_dedup.threshold, cfg.near_dedup.ngram, cfg.near_dedup.num_perm) == (0.7, 5, 128)
    assert cfg.refusal.drop is False


def test_unknown_step_suggests_closest():
    with pytest.raises(ConfigError, match="unknown step 'near_dedupe'; did you mean 'near_dedup'"):
        validate(CurateConfig, {"steps": ["length", "near_dedupe"]})


def test_unknown_parameter_suggests_closest():
    with pytest.raises(ConfigError, match="unknown key 'treshold' in NearDedupParams; did you mean 'threshold'"):
        validate(CurateConfig, {"near_dedup": {"treshold": 0.8}})
    with pytest.raises(ConfigError, match="did you mean 'length'"):
        validate(CurateConfig, {"lenght": {"min_response": 3}})


def test_set_overrides_are_validated(tmp_path):
    cfg = load_curate_config(None, ["near_dedup.threshold=0.85", "refusal.drop=true",
                                    "steps=[empty, exact_dedup]"])
    assert cfg.near_dedup.threshold == 0.85 and cfg.refusal.drop is True
    assert cfg.steps == ["empty", "exact_dedup"]
    with pytest.raises(ConfigError, match="near_dedup.threshold"):
        load_curate_config(None, ["near_dedup.threshold=1.5"])


def test_invalid_combinations():
    with pytest.raises(ConfigError, match="give both bands and rows"):
        validate(CurateConfig, {"near_dedup": {"bands": 16}})
    with pytest.raises(ConfigError, match="exceeds num_perm"):
        validate(CurateConfig, {"near_dedup": {"bands": 16, "rows": 16}})
    with pytest.raises(ConfigError, match="needs diversity.budget"):
        validate(CurateConfig, {"steps": ["diversity"]})
    with pytest.raises(ConfigError, match="listed twice"):
        validate(CurateConfig, {"steps": ["empty", "empty"]})
    with pytest.raises(ConfigError, match="invalid regular expression"):
        validate(CurateConfig, {"refusal": {"patterns": ["(unclosed"]}})


def test_shipped_recipe_loads_both_ways():
    from sftflow.pipeline.recipe import load_recipe
    path = ROOT / "recipes" / "curate.yaml"
    recipe = load_recipe(path)
    assert recipe.curate is not None and recipe.curate.near_dedup.keep == "longest_response"
    assert recipe.curate.leak_check is True
    for f in recipe.data.train + recipe.data.validation + recipe.data.test:
        assert (ROOT / f).exists(), f
    section = load_curate_config(path, ["near_dedup.threshold=0.8"])
    assert section.steps == recipe.curate.steps and section.near_dedup.threshold == 0.8
