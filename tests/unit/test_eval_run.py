"""evaluate() end to end on tiny random models, the eval CLI's exit code, the recipe stage."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftflow.evaluate import EvalConfig, evaluate

HELD = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                      {"role": "assistant", "content": f"Answer: {2 * i}"}]} for i in range(4)]


@pytest.fixture(scope="module")
def tiny_pair(tmp_path_factory, tiny_model_dir, smol_tokenizer):
    from conftest import build_tiny_model
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-other"), smol_tokenizer, seed=1)
    d = tmp_path_factory.mktemp("data")
    held = d / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in HELD))
    task = d / "mini.jsonl"
    task.write_text("".join(json.dumps(r) + "\n" for r in [
        {"question": "Capital of France?", "choices": ["Paris", "Rome", "Oslo"], "answer": 0},
        {"question": "2+2?", "choices": ["4", "5", "22"], "answer": 0},
        {"question": "Sky colour?", "choices": ["blue", "green", "red"], "answer": 0},
        {"question": "Opposite of up?", "choices": ["down", "left", "in"], "answer": 0}]))
    return tiny_model_dir, str(other), held, task


def _cfg(task, **kw):
    kw.setdefault("judge", {"backend": "fake", "bootstrap": 100})
    return EvalConfig(max_new_tokens=6, batch_size=4, choice={"tasks": [str(task)]}, **kw)


def test_evaluate_writes_stable_keys_and_side_by_side(tiny_pair, tmp_path):
    base, tuned, held, task = tiny_pair
    m = evaluate(_cfg(task), model=tuned, base=base, data=[str(held)], out_dir=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert set(saved["loss"]) >= {"base", "tuned", "delta"}
    assert saved["loss"]["delta"] == pytest.approx(saved["loss"]["tuned"]["loss"] - saved["loss"]["base"]["loss"])
    assert saved["loss"]["base"]["n"] == 4 and saved["loss"]["base"]["tokens"] > 0
    assert saved["loss"]["delta_low"] <= saved["loss"]["delta"] <= saved["loss"]["delta_high"]
    for name in ("apology_preamble", "refusal", "hit_token_limit", "repeated_ngrams", "long_answer"):
        for side in ("base", "tuned"):
            assert set(saved["probes"][name][side]) >= {"rate", "low", "high", "n"}
            assert saved["probes"][name][side]["n"] == 4
    for side in ("base", "tuned"):
        assert set(saved["choice"]["mini"][side]) == {"acc", "acc_norm", "acc_bytes", "n"}
    assert set(saved["judge"]) >= {"win", "tie", "loss", "unparsed", "win_low", "win_high"}
    # the default fake judge says no verdict at all: every pair is counted as unparsed
    assert saved["judge"]["unparsed"] == 4 and saved["judge"]["n"] == 0
    assert saved["status"] in ("pass", "warn", "fail") and m["status"] == saved["status"]
    rows = [json.loads(x) for x in (tmp_path / "generations.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and rows[0]["reference"] == "Answer: 0"
    assert rows[0]["prompt"] == HELD[0]["messages"][:1]
    assert set(rows[0]["base"]) >= {"text", "finish_reason", "completion_tokens"}
    per_ex = (tmp_path / "loss_per_example.jsonl").read_text().splitlines()
    assert len(per_ex) == 4
    assert (tmp_path / "manifest.json").exists()


def test_evaluate_resumes_from_saved_parts(tiny_pair, tmp_path, monkeypatch):
    base, tuned, held, task = tiny_pair
    cfg = _cfg(task, generate=False, judge=None)
    first = evaluate(cfg, model=tuned, base=base, data=[str(held)], out_dir=tmp_path)
    # parts that are off still have their key
    assert first["judge"] is None and first["probes"] == {} and set(first["choice"]) == {"mini"}
    import sftflow.evaluate.run as run

    def boom(*a, **k):
        raise AssertionError("should have reused the saved results")
    monkeypatch.setattr(run, "evaluate_side", boom)
    again = evaluate(cfg, model=tuned, base=base, data=[str(held)], out_dir=tmp_path)
    assert again["loss"]["tuned"]["loss"] == pytest.approx(first["loss"]["tuned"]["loss"])
    # a different config is not served from the old results
    with pytest.raises(AssertionError, match="reused"):
        evaluate(cfg.model_copy(update={"max_length": 64}), model=tuned, base=base, data=[str(held)],
                 out_dir=tmp_path)


def _task_the_base_aces(base, task_path: Path, out: Path) -> Path:
    """Relabel the task with the base model's own picks: base scores 100%, any other model less."""
    from sftflow.evaluate.choice import read_jsonl_task, score_items
    from sftflow.models import load_model, load_tokenizer
    items = read_jsonl_task(task_path)
    res = score_items(load_model(base), load_tokenizer(base), items)
    rows = [{"question": it.question, "choices": it.choices, "answer": r["pred"]}
            for it, r in zip(items, res["items"])]
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


def test_cli_exits_non_zero_when_forgetting_exceeds_fail_threshold(tiny_pair, tmp_path):
    from sftflow.cli import app as sftflow_app
    base, tuned, held, task = tiny_pair
    aced = _task_the_base_aces(base, task, tmp_path / "aced.jsonl")
    app = sftflow_app
    args = ["eval", "--model", tuned, "--base", base, "--data", str(held), "--choice", str(aced),
            "--set", "generate=false", "--set", "loss=false"]
    res = CliRunner().invoke(app, args + ["-o", str(tmp_path / "a")])
    m = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert m["choice"]["aced"]["base"]["acc"] == 1.0
    drop = -m["forgetting"]["tasks"]["aced"]["delta_points"]
    assert drop > 5.0, "the tiny tuned model should miss at least one of four"
    assert res.exit_code == 1 and m["status"] == "fail"
    assert "aced: acc changed by" in res.output
    # thresholds are configurable: allow the drop and the eval passes
    res = CliRunner().invoke(app, args + ["-o", str(tmp_path / "b"), "--set", "choice.warn_drop=99",
                                          "--set", "choice.fail_drop=100"])
    assert res.exit_code == 0, res.output
    # same model on both sides: no change, exit 0
    res = CliRunner().invoke(app, ["eval", "--model", base, "--base", base, "--data", str(held),
                                   "--choice", str(aced), "--set", "generate=false", "-o", str(tmp_path / "c")])
    assert res.exit_code == 0, res.output


def test_shipped_recipe_loads_and_validates():
    from sftflow.pipeline.recipe import load_recipe
    root = Path(__file__).resolve().parents[2]
    r = load_recipe(root / "recipes" / "eval.yaml")
    assert r.eval is not None and r.report is not None
    assert [p.name for p in r.eval.all_probes()][-2:] == ["house_format", "starts_with_answer"]
    assert r.eval.choice.tasks == ["general_knowledge"] and r.eval.choice.fail_drop == 5.0
    from sftflow.config import ConfigError
    with pytest.raises(ConfigError, match="did you mean 'max_new_tokens'"):
        load_recipe(root / "recipes" / "eval.yaml", ["eval.max_new_token=3"])


def test_recipe_stages_eval_then_report(tiny_pair, tmp_path):
    from sftflow.evaluate.run import EvalFailed
    from sftflow.pipeline.stages.evaluate import run_stage as eval_stage
    from sftflow.pipeline.recipe import Recipe, RunState
    from sftflow.pipeline.stages.report import run_stage as report_stage
    base, tuned, held, task = tiny_pair
    aced = _task_the_base_aces(base, task, tmp_path / "aced.jsonl")
    recipe = Recipe(model=base, eval={"max_new_tokens": 4, "loss": False, "choice": {"tasks": [str(aced)]}},
                    report={})
    state = RunState(recipe=recipe, out_dir=tmp_path / "run", test_path=held, model_dir=Path(tuned))
    eval_stage(recipe.eval, state)        # fails the gate, but defers to the report stage
    assert state.artifacts["eval"]["status"] == "fail"
    with pytest.raises(EvalFailed, match="aced: acc changed"):
        report_stage(recipe.report, state)
    html = (tmp_path / "run" / "report.html").read_text()
    assert "Evaluation <span class='fail'>fail</span>" in html
