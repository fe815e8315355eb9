"""Gates read intervals, never point estimates; the eval reports reference figures, tools and general ability."""

from __future__ import annotations

import json

import pytest

from sftflow.evaluate.config import EvalConfig, GateSpec
from sftflow.evaluate.gates import evaluate_gates, verdict


def paired(diff, low, high, n=50):
    return {"paired": {"diff": diff, "diff_low": low, "diff_high": high, "n": n}}


@pytest.mark.parametrize("want,low,high,status", [
    ("higher", 0.05, 0.30, "pass"), ("higher", -0.05, 0.30, "inconclusive"), ("higher", -0.3, -0.01, "fail"),
    ("lower", -0.3, -0.01, "pass"), ("lower", -0.3, 0.01, "inconclusive"), ("lower", 0.02, 0.2, "fail"),
])
def test_gain_gates(want, low, high, status):
    assert verdict(GateSpec(metric="probes.x", want=want), (low + high) / 2, low, high, loss=False)[0] == status


def test_a_large_point_gain_with_a_wide_interval_is_inconclusive():
    # +8 points on 100 questions, the interval spans zero: not a pass.
    assert verdict(GateSpec(metric="choice.t", want="higher"), 0.08, -0.01, 0.17, loss=False)[0] == "inconclusive"


@pytest.mark.parametrize("low,high,status", [
    (-0.03, 0.01, "pass"),          # a drop beyond 5 points is excluded
    (-0.09, 0.02, "inconclusive"),  # could be a big drop, could be none
    (-0.09, -0.01, "fail"),         # a significant drop (fail_beyond 0)
])
def test_no_worse_for_accuracy(low, high, status):
    spec = GateSpec(metric="choice.t", want="no_worse", margin=0.05, fail_beyond=0.0)
    assert verdict(spec, (low + high) / 2, low, high, loss=False)[0] == status


def test_loss_gate_reads_relative_change():
    metrics = {"general": {"loss": {"base": {"loss": 2.0}, "delta": 0.02, "delta_low": 0.01, "delta_high": 0.03}}}
    g = evaluate_gates([GateSpec(metric="general.loss", want="no_worse", margin=0.02)], metrics)
    assert g["gates"][0]["status"] == "pass" and g["gates"][0]["high"] == pytest.approx(0.015)
    metrics["general"]["loss"].update(delta=0.1, delta_low=0.06, delta_high=0.14)   # +3% to +7%
    assert evaluate_gates([GateSpec(metric="general.loss", want="no_worse", margin=0.02)], metrics)["status"] == "fail"


def test_wildcards_and_unmeasured_metrics():
    metrics = {"choice": {"a": paired(0.0, -0.02, 0.02), "b": paired(-0.1, -0.2, -0.05)}, "reference": None}
    g = evaluate_gates([GateSpec(metric="choice.*", want="no_worse", margin=0.05, fail_beyond=0.0),
                        GateSpec(metric="reference.figures", want="higher")], metrics)
    assert [r["status"] for r in g["gates"]] == ["pass", "fail", "not measured"]
    assert g["status"] == "fail"


def test_opening_gate_reads_the_paired_probability_difference():
    metrics = {"openings": {"apology": paired(-0.004, -0.012, -0.002)}}
    g = evaluate_gates([GateSpec(metric="openings.apology", want="lower")], metrics)
    assert g["gates"][0]["status"] == "pass"
    metrics["openings"]["apology"] = paired(0.003, 0.001, 0.005)
    assert evaluate_gates([GateSpec(metric="openings.apology", want="lower")], metrics)["status"] == "fail"
    assert evaluate_gates([GateSpec(metric="openings.hedge", want="lower")], metrics)["gates"][0]["status"] == \
        "not measured"


@pytest.fixture(scope="module")
def pair(tmp_path_factory, tiny_model_dir, smol_tokenizer):
    from conftest import build_tiny_model
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-b"), smol_tokenizer, seed=2)
    d = tmp_path_factory.mktemp("d")
    rows = [{"messages": [{"role": "user", "content": f"What is {a} times {b}?"},
                          {"role": "assistant", "content": f"Answer: {a} times {b} is {a * b}.\n\nDetails: x"}]}
            for a, b in [(3, 7), (12, 11), (6, 9)]]
    (d / "test.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (d / "general.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:2]))
    return tiny_model_dir, str(other), d


def test_evaluate_reports_reference_tools_general_and_gates(pair, tmp_path):
    from sftflow.evaluate.run import evaluate
    base, tuned, d = pair
    cfg = EvalConfig(max_new_tokens=5, batch_size=4, choice=None, tools={"max_steps": 2},
                     general={"data": [str(d / "general.jsonl")], "max_new_tokens": 4})
    m = evaluate(cfg, model=tuned, base=base, data=[str(d / "test.jsonl")], out_dir=tmp_path)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    fig = saved["reference"]["figures"]
    assert fig["base"]["n"] == 3 and fig["tuned"]["n"] == 3 and fig["paired"]["n"] == 3
    assert set(saved["tools"]) >= {"names", "max_steps", "base", "tuned"}
    assert saved["tools"]["tuned"]["answers"] == 3
    gen = saved["general"]
    assert gen["n"] == 2 and "delta_low" in gen["loss"] and "relative_change" in gen["loss"]
    assert set(gen["probes"]) == {"ended_turn", "looping"} and "paired" in gen["probes"]["looping"]
    names = [g["metric"] for g in saved["gates"]["gates"]]
    assert "general.loss" in names and "reference.figures" in names
    assert saved["gates"]["status"] in ("pass", "fail", "inconclusive")
    rows = [json.loads(x) for x in (tmp_path / "reference_figures.jsonl").read_text().splitlines()]
    assert rows[0]["base"]["target"]["value"] == 21.0
    assert m["status"] in ("pass", "fail")
