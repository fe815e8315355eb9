"""Unwanted openings scored by likelihood: exact probabilities, alternatives summed, metrics paired."""

import json
import math

import pytest

from sftflow.evaluate import EvalConfig, evaluate
from sftflow.evaluate.config import OpeningSpec
from sftflow.evaluate.openings import continuation_logprobs, side_openings

HELD = [{"messages": [{"role": "user", "content": f"What is {i} plus {'one ' * i}two?"},
                      {"role": "assistant", "content": f"Answer: {i + 2}"}]} for i in range(4)]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    return lm, AutoTokenizer.from_pretrained(tiny_model_dir), tiny_model_dir


def _one_at_a_time(lm, ctx, cont):
    """log P(cont | ctx) from one unpadded forward pass: the plain definition."""
    import torch
    with torch.no_grad():
        logits = lm(input_ids=torch.tensor([ctx + cont])).logits[0].float()
    lp = torch.log_softmax(logits, -1)
    return sum(float(lp[len(ctx) - 1 + j, t]) for j, t in enumerate(cont))


def test_batched_left_padded_scores_equal_the_plain_definition(tiny):
    lm, tok, _ = tiny
    contexts = [tok(t)["input_ids"] for t in ("Hello there, how are", "A much longer context with many more "
                                              "words than the first one has", "Short")]
    conts = [tok(t, add_special_tokens=False)["input_ids"] for t in (" I'm sorry, but", " Sure", " No.")]
    batched = continuation_logprobs(lm, contexts, conts, batch_size=2)    # padding inside a batch, cache reused
    for ctx, got in zip(contexts, batched):
        assert got == pytest.approx([_one_at_a_time(lm, ctx, c) for c in conts], abs=1e-4)


def test_alternatives_add_up_and_a_single_token_is_the_next_token_probability(tiny):
    import torch
    lm, tok, _ = tiny
    prompts = [tok("Question: what now?")["input_ids"], tok("Say it")["input_ids"]]
    spec = OpeningSpec(name="apology", texts=["I'm sorry", "Unfortunately"])
    got = side_openings([spec], lm, tok, prompts)["apology"]
    for p, g in zip(prompts, got):
        want = sum(math.exp(_one_at_a_time(lm, p, tok(t, add_special_tokens=False)["input_ids"])) for t in spec.texts)
        assert g == pytest.approx(want, rel=1e-4)
    single = tok.convert_ids_to_tokens(tok("Answer", add_special_tokens=False)["input_ids"])
    assert len(single) == 1
    with torch.no_grad():
        probs = torch.softmax(lm(input_ids=torch.tensor([prompts[0]])).logits[0, -1].float(), -1)
    p = side_openings([OpeningSpec(name="a", texts=["Answer"])], lm, tok, prompts[:1])["a"][0]
    assert p == pytest.approx(float(probs[tok.convert_tokens_to_ids(single[0])]), rel=1e-4)


def test_overlapping_or_empty_openings_are_refused():
    with pytest.raises(ValueError, match="starts"):
        OpeningSpec(name="a", texts=["Sorry", "Sorry, but"])
    with pytest.raises(ValueError, match="starts"):
        OpeningSpec(name="a", texts=["Sorry", "Sorry"])
    with pytest.raises(ValueError, match="empty"):
        OpeningSpec(name="a", texts=[" "])


def test_evaluate_reports_each_side_and_the_paired_difference(tiny, tmp_path, tiny_model_dir, smol_tokenizer,
                                                                tmp_path_factory):
    from conftest import build_tiny_model
    other = build_tiny_model(tmp_path_factory.mktemp("tiny-other-openings"), smol_tokenizer, seed=1)
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in HELD))
    cfg = EvalConfig(max_new_tokens=4, batch_size=4, choice=None, gates=[], loss=False,
                     openings=[{"name": "apology", "texts": ["I'm sorry", "Sorry"], "description": "apologises"}])
    m = evaluate(cfg, model=str(other), base=tiny_model_dir, data=[str(held)], out_dir=tmp_path / "ev")
    o = m["openings"]["apology"]
    rows = [json.loads(x) for x in (tmp_path / "ev" / "openings_per_example.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all(set(r) == {"id", "base_apology", "tuned_apology"} for r in rows)
    for side in ("base", "tuned"):
        vals = [r[f"{side}_apology"] for r in rows]
        assert o[side]["n"] == 4 and o[side]["mean"] == pytest.approx(sum(vals) / 4)
        assert all(0 < v < 1 for v in vals)
    assert o["paired"]["diff"] == pytest.approx(o["tuned"]["mean"] - o["base"]["mean"])
    assert o["paired"]["diff_low"] <= o["paired"]["diff"] <= o["paired"]["diff_high"]
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["openings"]["apology"]["texts"] == \
        ["I'm sorry", "Sorry"]
