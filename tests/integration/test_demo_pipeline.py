"""The whole demo, and the shipped pipeline recipe, end to end on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sftflow.io import load_examples
from sftflow.pipeline.demo import EXAMPLES_PER_STEP
from sftflow.splits import group_of

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory, tiny_model_dir):
    from sftflow.pipeline.demo import DemoSize, run_demo
    out = tmp_path_factory.mktemp("demo")
    # Replay written here (the shipped one is the embedded model's own answers; the test must not need it).
    replay = out / "replay.jsonl"
    replay.write_text("".join(json.dumps({"messages": [{"role": "user", "content": f"Name a colour, {i}."},
                                                       {"role": "assistant", "content": f"Blue, {i}."}],
                                          "metadata": {"group": f"replay:{i}"}}) + "\n" for i in range(32)))
    size = DemoSize(steps=2, test_prompts=4, forgetting_questions=4, general_conversations=3,
                    general_answers_tokens=4, max_new_tokens=8, train_records=40, validation_records=6)
    code = run_demo(out, model=tiny_model_dir, size=size, report=False, replay_file=replay)
    return out, code, json.loads((out / "metrics.json").read_text())


def test_demo_writes_every_metric(demo_run):
    out, code, m = demo_run
    assert code in (0, 1) and (code == 1) == (m["status"] == "fail")
    for key in ("loss", "probes", "reference", "tools", "general", "choice", "gates", "without_tools", "train",
                "models", "splits", "cost", "status", "reasons"):
        assert m.get(key) is not None, key
    fig = m["reference"]["figures"]
    # of the first 4 test prompts, 3 have a figure to state (one is conceptual)
    assert fig["base"]["n"] == fig["tuned"]["n"] == 3 and fig["base"]["without_target"] == 1
    assert {"p_value", "diff_low"} <= set(fig["paired"])
    assert m["without_tools"]["figures"]["tuned"]["n"] == 3 and "vs_tools" in m["without_tools"]["figures"]
    assert {"house_format", "apology_preamble", "hit_token_limit"} <= set(m["probes"])
    assert "paired" in m["probes"]["house_format"]
    ap = m["openings"]["apology"]        # the apology lean: a probability per side, paired, gated
    assert 0 < ap["base"]["mean"] < 1 and ap["base"]["n"] == 4 and "diff_low" in ap["paired"]
    assert "openings.apology" in [g["metric"] for g in m["gates"]["gates"]]
    assert m["tools"]["tuned"]["answers"] == 4 and "errors" in m["tools"]["tuned"]
    assert {"loss", "probes"} <= set(m["general"]) and "relative_change" in m["general"]["loss"]
    assert "paired" in next(iter(m["choice"].values()))
    assert {g["status"] for g in m["gates"]["gates"]} <= {"pass", "fail", "inconclusive", "not measured"}
    assert [g["metric"] for g in m["gates"]["gates"]][:2] == ["reference.figures", "probes.house_format"]
    assert set(m["train"]) == {"tools", "plain"}
    assert m["models"]["base"]["source"] == "local folder" and m["models"]["tuned"]["kind"] == "LoRA adapter"
    stages = [s["stage"] for s in m["cost"]["stages"]]
    assert stages == ["data", "train_tools", "eval", "train_plain", "eval_without_tools"]
    assert m["cost"]["tokens"]["trained_tools"]["tokens_processed"] > 0
    t = m["train"]["tools"]          # a step is one batch of EXAMPLES_PER_STEP examples
    assert m["cost"]["tokens"]["trained_tools"]["passes"] == round(t["steps"] * EXAMPLES_PER_STEP
                                                                   / t["train_examples"], 4)
    assert m["cost"]["tokens"]["generated"]["eval:tuned"] > 0
    assert json.loads((out / "costs.json").read_text())["total"]["wall_s"] > 0


def test_demo_sets_are_disjoint_and_test_ids_recorded(demo_run):
    out, _, m = demo_run
    manifest = json.loads((out / "data" / "manifest.json").read_text())
    test = load_examples([ROOT / "src/sftflow/data/demo/test.jsonl"])
    assert manifest["test_ids"] == [e.id for e in test]
    for arm in ("tools", "plain"):
        train = load_examples([out / "data" / f"train_{arm}.jsonl"])
        val = load_examples([out / "data" / f"validation_{arm}.jsonl"])
        for a, b in ((train, val), (train, test), (val, test)):
            assert not {e.id for e in a} & {e.id for e in b}
            assert not {group_of(e) for e in a} & {group_of(e) for e in b}
        replay = [e for e in train if e.metadata.get("_source") == "replay"]
        assert len(replay) == round(0.075 * 40 / 0.925) == 3 and len(train) == 43
    # the trainer evaluated on validation, never on test
    trained_eval = load_examples([out / "train_tools" / "data" / "eval.jsonl"])
    assert not {e.id for e in trained_eval} & set(manifest["test_ids"])


def test_pipeline_recipe_runs_end_to_end(tmp_path, tiny_model_dir):
    from sftflow.pipeline.recipe import load_recipe, run_recipe
    recipe = load_recipe(ROOT / "recipes" / "pipeline.yaml", [
        f"model={tiny_model_dir}", f"generate.backend.model={tiny_model_dir}", "generate.self_instruct.n=2",
        "select.score.max_length=128", "train.max_steps=2", "train.max_length=256", "eval.limit=3",
        "eval.max_new_tokens=4", "eval.choice.limit=4", "cost.cpu_hour=0.05"])
    for i, f in enumerate(recipe.data.train + recipe.data.validation + recipe.data.test):
        assert (ROOT / f).exists()
    import os
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        state = run_recipe(recipe, tmp_path / "run")
    except Exception as e:    # a failed gate still writes everything; anything else is a bug
        from sftflow.errors import EvalFailed
        assert isinstance(e, EvalFailed), e
        state = None
    finally:
        os.chdir(cwd)
    run = tmp_path / "run"
    m = json.loads((run / "eval" / "metrics.json").read_text())
    fig = m["reference"]["figures"]["tuned"]
    assert fig["n"] + fig["without_target"] == 3 and fig["n"] >= 1 and m["gates"] is not None
    assert m["models"]["tuned"]["kind"] == "LoRA adapter"
    costs = json.loads((run / "costs.json").read_text())
    assert [s["stage"] for s in costs["stages"]][:2] == ["data", "generate"]
    assert costs["price"]["lines"]["cpu"]["cost"] > 0 and m["cost"]["price"]["total"] > 0
    assert (run / "report.html").exists()
    manifest = json.loads((run / "data" / "manifest.json").read_text())
    assert len(manifest["test_ids"]) == len(load_examples([ROOT / "src/sftflow/data/demo/test.jsonl"]))
    if state is not None:
        assert state.test_path is not None
