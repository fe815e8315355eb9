import math

import pytest

from sftflow.config import ConfigError
from sftflow.evaluate.config import EvalConfig, ProbeSpec
from sftflow.probes import load_probes, max_ngram_repeats, run_probes
from sftflow.intervals import wilson

ANSWERS = [
    {"text": "I'm sorry, but I can't help with that.", "finish_reason": "stop", "completion_tokens": 10},
    {"text": "  As an AI, I think the answer is 4.", "finish_reason": "stop", "completion_tokens": 11},
    {"text": "Answer: 4", "finish_reason": "stop", "completion_tokens": 3},
    {"text": "answer: Paris is the capital.", "finish_reason": "stop", "completion_tokens": 7},
    {"text": "the cat sat on the cat sat on the cat sat on the mat", "finish_reason": "length",
     "completion_tokens": 64},
    {"text": "Unfortunately the data is missing. " + " ".join(f"w{i}" for i in range(210)), "finish_reason": "length",
     "completion_tokens": 256},
    {"text": "", "finish_reason": "error", "completion_tokens": 0},
]


def test_default_probes_exact_counts():
    res = run_probes(ANSWERS)
    # six answers are judged; the errored generation is counted apart, not as a "no"
    for r in res.values():
        assert r["n"] == 6 and r["errors"] == 1
    assert res["apology_preamble"]["count"] == 3        # I'm sorry / As an AI / Unfortunately
    assert res["refusal"]["count"] == 1                 # "I can't help"
    assert res["hit_token_limit"]["count"] == 2
    assert res["repeated_ngrams"]["count"] == 1         # "the cat sat on" x3
    assert res["long_answer"]["count"] == 1             # 215 words
    assert res["apology_preamble"]["rate"] == pytest.approx(3 / 6)
    assert res["long_answer"]["mean_length"] == pytest.approx(
        sum(len(a["text"].split()) for a in ANSWERS[:6]) / 6)


def test_user_format_rules_and_negate():
    probes = [ProbeSpec(name="starts_answer", kind="prefix", prefix="Answer:", ignore_case=False),
              ProbeSpec(name="starts_answer_any_case", kind="prefix", prefix="Answer:"),
              ProbeSpec(name="violates_format", kind="prefix", prefix="Answer:", negate=True),
              ProbeSpec(name="short", kind="length", unit="tokens", below=5),
              ProbeSpec(name="mentions_four", kind="regex", pattern=r"\b4\b")]
    res = run_probes(ANSWERS, probes)
    assert res["starts_answer"]["count"] == 1
    assert res["starts_answer_any_case"]["count"] == 2
    assert res["violates_format"]["count"] == 4
    assert res["short"]["count"] == 1
    assert res["mentions_four"]["count"] == 2


def test_wilson_interval_matches_formula():
    k, n, z = 3, 6, 1.959963984540054
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low, high = wilson(k, n)
    assert low == pytest.approx(centre - half, abs=1e-9)
    assert high == pytest.approx(centre + half, abs=1e-9)
    assert wilson(0, 10)[0] == 0.0 and wilson(10, 10)[1] == pytest.approx(1.0)


def test_probe_yaml_and_validation(tmp_path):
    f = tmp_path / "probes.yaml"
    f.write_text("probes:\n  - name: starts_answer\n    kind: prefix\n    prefix: 'Answer:'\n")
    specs = load_probes(f)
    assert [s.name for s in specs] == ["starts_answer"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- name: x\n  kind: regex\n  patern: 'a'\n")
    with pytest.raises(ConfigError, match="did you mean 'pattern'"):
        load_probes(bad)
    with pytest.raises(ValueError, match="needs 'pattern'"):
        ProbeSpec(name="x", kind="regex")
    with pytest.raises(ValueError, match="bad regex"):
        ProbeSpec(name="x", kind="regex", pattern="(")
    cfg = EvalConfig(extra_probes=[{"name": "refusal", "kind": "prefix", "prefix": "No"}])
    with pytest.raises(ValueError, match="unique"):
        cfg.all_probes()


def test_max_ngram_repeats():
    assert max_ngram_repeats("a b c a b c a b c", 3) == 3
    assert max_ngram_repeats("a b", 3) == 0


def test_paired_loss_delta_interval():
    from sftflow.evaluate.heldout import paired_delta_interval
    base = [{"id": str(i), "loss_sum": 2.0 * (i + 1), "tokens": i + 1, "flag": None} for i in range(6)]
    tuned = [{"id": str(i), "loss_sum": 1.5 * (i + 1), "tokens": i + 1, "flag": None} for i in range(6)]
    # every example improves by exactly 0.5 nats/token: the interval is that point
    assert paired_delta_interval(base, tuned) == pytest.approx((-0.5, -0.5))
    tuned[0] = dict(tuned[0], loss_sum=5.0)
    low, high = paired_delta_interval(base, tuned)
    assert low < high and high > -0.5


def test_compare_probes_pairs_base_and_tuned_by_prompt():
    from sftflow.probes import compare_probes
    sorry = {"text": "I'm sorry, I think so.", "finish_reason": "stop"}
    plain = {"text": "Yes.", "finish_reason": "stop"}
    failed = {"text": "", "finish_reason": "error"}
    # base apologises on 8 prompts; tuned stops on 7 of them and starts on 1 other
    base = [sorry] * 8 + [plain] * 4 + [failed]
    tuned = [plain] * 7 + [sorry] + [sorry] + [plain] * 3 + [plain]
    spec = [ProbeSpec(name="apology", kind="regex", pattern=r"^\s*I'm sorry")]
    out = compare_probes(base, tuned, spec)["apology"]
    assert out["n"] == 12                                  # the failed generation is not paired
    assert out["before_only"] == 7 and out["after_only"] == 1 and out["both"] == 1
    # exact two-sided binomial on 8 discordant prompts: 2 * P(X <= 1 | Bin(8, 1/2)) = 2 * 9 / 256
    assert out["p_value"] == pytest.approx(18 / 256)
    assert out["diff"] == pytest.approx((2 - 8) / 12)
    assert out["diff_low"] < out["diff"] < out["diff_high"] < 0
    with pytest.raises(ValueError, match="paired by prompt"):
        compare_probes(base, tuned[:-1], spec)


def test_probe_metrics_carry_the_paired_test_when_a_base_was_evaluated(tmp_path):
    from sftflow import Example
    from sftflow.evaluate.run import probe_metrics
    examples = [Example.single(f"q{i}", "a") for i in range(6)]
    base = [{"text": "I'm sorry.", "finish_reason": "stop"}] * 5 + [{"text": "ok", "finish_reason": "stop"}]
    tuned = [{"text": "ok", "finish_reason": "stop"}] * 6
    cfg = EvalConfig(probes=[{"name": "apology", "kind": "regex", "pattern": "sorry"}])
    out = probe_metrics(cfg, {"base": {"answers": base}, "tuned": {"answers": tuned}}, examples, tmp_path)
    paired = out["apology"]["paired"]
    assert (paired["before_only"], paired["after_only"]) == (5, 0)
    assert paired["p_value"] == pytest.approx(2 / 32) and paired["diff"] == pytest.approx(-5 / 6)
    alone = probe_metrics(cfg, {"tuned": {"answers": tuned}}, examples, tmp_path)
    assert "paired" not in alone["apology"]
