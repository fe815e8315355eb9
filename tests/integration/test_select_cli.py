"""sftflow score / select end to end on a tiny random model, the recipe stage, the shipped recipe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftflow import Example
from sftflow.io import load_examples, write_examples

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture()
def app():
    from sftflow.cli import _register_all, app
    if not any(c.name == "score" for c in app.registered_commands):
        _register_all()
    return app


def pool(n=12) -> list[Example]:
    out = []
    for i in range(n):
        out.append(Example.single(f"Question {i}: what is {i} plus {i}?", f"It is {2 * i}." + " ok" * (i % 4),
                                  metadata={"task_type": "math" if i % 3 else "chat"}))
    out.append(Example.single("Pick the colour.", "red",
                              metadata={"options": ["red", "seven"], "answer": "red", "task_type": "mc"}))
    return out


def test_score_then_select_cli(tmp_path, tiny_model_dir, app):
    data = tmp_path / "pool.jsonl"
    write_examples(data, pool())
    scored = tmp_path / "scored.jsonl"
    runner = CliRunner()
    args = ["score", str(data), "-o", str(scored), "--model", tiny_model_dir, "--scores",
            "ppl,ifd,option_probs,embedding", "--embed", "tfidf", "--precision", "fp32",
            "--cache", str(tmp_path / "cache.sqlite"), "--quiet"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "scored 13 records (" in r.output
    rows = load_examples(scored)
    sc = rows[0].metadata["scores"]
    assert {"response_loss", "ppl", "response_loss_alone", "ifd", "embedding", "model"} <= set(sc)
    assert sc["embedding"]["file"] == "scored.embeddings.npy"
    assert rows[-1].metadata["scores"]["option_prob_sum"] <= 1
    manifest = json.loads((tmp_path / "scored.manifest.json").read_text())
    assert manifest["counts"]["scored"] == 13

    r = runner.invoke(app, args)          # rerun: everything from the cache
    assert r.exit_code == 0 and "(0 losses computed" in r.output

    out = tmp_path / "sel"
    r = runner.invoke(app, ["select", str(scored), "-o", str(out), "--by", "ifd", "--budget", "5",
                            "--rule", "ifd < 1 or ifd >= 1", "--quota-by", "task_type"])
    assert r.exit_code == 0, r.output
    sel, rest = load_examples(out / "selected.jsonl"), load_examples(out / "not_selected.jsonl")
    assert len(sel) == 5 and len(sel) + len(rest) == 13
    assert {e.metadata["task_type"] for e in sel} == {"math", "chat", "mc"}     # quotas reach the tail
    assert all(e.metadata["selection"]["selected"] for e in sel)
    assert json.loads((out / "manifest.json").read_text())["counts"]["selected"] == 5

    r = runner.invoke(app, ["select", str(scored), "-o", str(tmp_path / "k"), "--method", "kcenter",
                            "--budget", "4"])
    assert r.exit_code == 0, r.output
    assert len(load_examples(tmp_path / "k" / "selected.jsonl")) == 4


def test_select_without_instructions_is_an_error(tmp_path, app):
    data = tmp_path / "x.jsonl"
    write_examples(data, pool(2))
    r = CliRunner().invoke(app, ["select", str(data), "-o", str(tmp_path / "o")])
    assert r.exit_code != 0
    assert "say how to select" in str(r.exception) + r.output


def test_recipe_stage_hands_the_selection_to_the_next_stage(tmp_path, tiny_model_dir):
    from sftflow.pipeline.recipe import Recipe, run_recipe
    data = tmp_path / "pool.jsonl"
    write_examples(data, pool())
    recipe = Recipe.model_validate({
        "model": tiny_model_dir, "data": {"train": [str(data)], "test_fraction": 0.2},
        "select": {"score": {"scores": ["ppl", "ifd"], "precision": "fp32",
                             "cache": str(tmp_path / "c.sqlite")},
                   "selection": {"method": "topk", "order_by": "ppl", "budget": 4}}})
    state = run_recipe(recipe, tmp_path / "run")
    assert state.train_path == tmp_path / "run" / "select" / "selected.jsonl"
    assert len(load_examples(state.train_path)) == 4
    assert state.artifacts["select"]["selected"] == 4


def test_shipped_recipe_loads_and_validates():
    from sftflow.pipeline.recipe import load_recipe
    r = load_recipe(ROOT / "recipes" / "select.yaml")
    assert r.select is not None and r.select.selection.method == "diverse"
    assert "embedding" in r.select.score.scores
    for f in r.data.train + r.data.validation + r.data.test:
        assert (ROOT / f).exists()
    from sftflow.pipeline.experiment import load_experiment_config
    cfg = load_experiment_config(ROOT / "recipes" / "select.yaml", budget=120)
    assert cfg.budget == 120 and cfg.random_arms == 3 and cfg.pool == r.data.train
