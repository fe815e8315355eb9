"""The end_of_turn curate step: P(end-of-turn token) after the final answer, from the scoring model.

A random model's probabilities mean nothing, so the tiny model here is checked against a
direct computation (the model's logits over the whole rendered conversation, softmax at
the position before the final turn's end-of-turn token), and its thresholds are set just
above and below probabilities computed that way. Its weights are drawn wide so that the
probabilities differ from record to record and from position to position: reading the
wrong position (an earlier turn's end, the token after the marker) gives another number.
The last test asks the real SmolLM2 whether a complete answer ends more surely than the
same answer cut in mid-sentence.
"""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest

from sftflow.chat import encode
from sftflow.curate.config import DEFAULT_STEPS, CurateConfig, EndOfTurnParams
from sftflow.curate.end_of_turn import EndOfTurnFilter, end_of_turn_probs
from sftflow.curate.pipeline import curate, curate_in_memory, run_steps
from sftflow.schema import Example

torch = pytest.importorskip("torch")


def conv(*turns: str, system: str | None = None) -> list[dict[str, str]]:
    msgs = [{"role": "system", "content": system}] if system else []
    for k, t in enumerate(turns):
        msgs.append({"role": "user" if k % 2 == 0 else "assistant", "content": t})
    return msgs


RECORDS = [
    conv("What is 2 + 2?", "2 + 2 is 4."),
    conv("Name a primary colour.", "Red is a primary colour, and so are blue and"),
    conv("Hi!", "Hello. How can I help?", "Tell me a fact about the moon.",
         "The Moon is about 384,400 km from Earth on average."),
    conv("Summarise: the cat sat on the mat all afternoon.", "A cat spent the afternoon on a mat.",
         system="You are a careful summariser."),
    conv("Define inflation.", "Inflation is the rate at which prices rise.", "And deflation?",
         "Deflation is when prices fall over time, which can",
         system="You are a concise personal-finance assistant."),
]


@pytest.fixture(scope="module")
def sharp_dir(sharp_model_dir) -> str:
    """The tiny random Llama with wide weights (``conftest.sharp_model_dir``)."""
    return sharp_model_dir


@pytest.fixture(scope="module")
def sharp(sharp_dir):
    from sftflow.models import load_model, load_tokenizer
    return load_model(sharp_dir).eval(), load_tokenizer(sharp_dir)


def direct_prob(model, tok, messages) -> float:
    """P(end of turn) from the model's logits over the whole rendered conversation."""
    enc = encode(messages, tok, train_on="last")
    ids = enc.input_ids
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    k = max(i for i, lab in enumerate(enc.labels) if lab != -100)
    assert ids[k] == eot and enc.text.endswith("<|im_end|>\n")
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    return torch.softmax(logits[k - 1], dim=-1)[eot].item()


def test_probabilities_match_a_direct_computation(sharp):
    model, tok = sharp
    got = end_of_turn_probs(model, tok, RECORDS, batch_size=3)
    want = [direct_prob(model, tok, r) for r in RECORDS]
    for g, w in zip(got, want):
        assert g.unjudged is None and g.token == "<|im_end|>"
        assert g.prob == pytest.approx(w, rel=1e-4, abs=1e-9)
    # The numbers differ enough that another position would not pass for the right one.
    assert max(want) / min(want) > 2
    # Batching and order do not change a record's number.
    alone = [end_of_turn_probs(model, tok, [r], batch_size=1)[0].prob for r in reversed(RECORDS)]
    assert alone[::-1] == pytest.approx([g.prob for g in got], rel=1e-4)


def test_a_wrong_position_gives_another_number(sharp):
    """Guard for the test above: the token after the marker and an earlier turn's marker
    read other probabilities than the final one."""
    model, tok = sharp
    msgs = RECORDS[2]
    enc = encode(msgs, tok, train_on="last")
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    ends = [i for i, t in enumerate(enc.input_ids) if t == eot]
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([enc.input_ids])).logits[0].float(), -1)[:, eot]
    final = end_of_turn_probs(model, tok, [msgs])[0].prob
    assert final == pytest.approx(probs[ends[-1] - 1].item(), rel=1e-4)
    for other in (probs[ends[-1]].item(), probs[ends[-2] - 1].item(), probs[ends[-1] - 2].item()):
        assert other != pytest.approx(final, rel=1e-2)


def test_threshold_both_ways_and_flag_only(sharp):
    model, tok = sharp
    ex = Example(messages=RECORDS[1])
    p = direct_prob(model, tok, ex.messages)
    above = EndOfTurnFilter(EndOfTurnParams(min_prob=p * 1.01), model_obj=model, tokenizer=tok)
    res = above.run([Example(messages=RECORDS[1])])
    assert not res.kept and len(res.rejected) == 1
    r = res.rejected[0]
    assert r.step == "end_of_turn"
    assert r.reason == f"ends where the model would go on: P(end of turn) {p:.3g} < {p * 1.01:g}"
    assert r.reason.startswith("ends where the model would go on: P(end of turn) ")
    assert r.value == pytest.approx(p, rel=1e-4)
    assert r.record["metadata"]["curate"]["end_of_turn"]["eot_prob"] == r.value == float(f"{r.value:.4g}")

    below = EndOfTurnFilter(EndOfTurnParams(min_prob=p * 0.99), model_obj=model, tokenizer=tok)
    res = below.run([Example(messages=RECORDS[1])])
    assert len(res.kept) == 1 and not res.rejected
    m = res.kept[0].metadata["curate"]["end_of_turn"]
    assert m == {"eot_prob": pytest.approx(p, rel=1e-3)}

    flag = EndOfTurnFilter(EndOfTurnParams(min_prob=p * 1.01, drop=False), model_obj=model, tokenizer=tok)
    res = flag.run([Example(messages=RECORDS[1]), Example(messages=RECORDS[0])])
    assert len(res.kept) == 2 and not res.rejected
    p0 = direct_prob(model, tok, RECORDS[0])
    assert res.kept[0].metadata["curate"]["end_of_turn"]["flagged"] is True
    assert res.kept[1].metadata["curate"]["end_of_turn"]["flagged"] is (p0 < p * 1.01)
    assert res.flagged == 1 + (p0 < p * 1.01)


def test_unjudgeable_records_are_kept_with_a_reason(sharp):
    model, tok = sharp
    long = conv("Repeat after me. " * 40, "Done. " * 40)
    plain = copy.deepcopy(tok)
    # Turns closed by plain text: nothing marks the end of a turn to read the probability of.
    plain.chat_template = ("{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n###\n{% endfor %}"
                           "{% if add_generation_prompt %}assistant: {% endif %}")
    res = end_of_turn_probs(model, tok, [long, RECORDS[0], conv("Only a question?")], max_length=64)
    assert res[0].prob is None and res[0].unjudged.startswith("too_long: ")
    assert "max_length 64" in res[0].unjudged and res[0].length > 64
    assert res[1].prob == pytest.approx(direct_prob(model, tok, RECORDS[0]), rel=1e-4)
    assert res[2].prob is None and res[2].unjudged.startswith("cannot encode: ")
    assert "no assistant" in res[2].unjudged
    res = end_of_turn_probs(model, plain, [RECORDS[0]])
    assert res[0].prob is None and res[0].unjudged == "the template ends the turn with '###', not a special token"

    step = EndOfTurnFilter(EndOfTurnParams(min_prob=1.0, max_length=64), model_obj=model, tokenizer=tok)
    out = step.run([Example(messages=long), Example(messages=RECORDS[0])])
    assert [ex.messages for ex in out.kept] == [Example(messages=long).messages]
    m = out.kept[0].metadata["curate"]["end_of_turn"]
    assert m["eot_prob"] is None and m["unjudged"].startswith("too_long: ")
    assert len(out.rejected) == 1 and "P(end of turn)" in out.rejected[0].reason


def test_a_rejected_member_takes_its_group(sharp):
    model, tok = sharp
    p_cut = direct_prob(model, tok, RECORDS[1])
    p_ok = direct_prob(model, tok, RECORDS[0])
    lo, hi = sorted([p_cut, p_ok])
    step = EndOfTurnFilter(EndOfTurnParams(min_prob=math.sqrt(lo * hi)), model_obj=model, tokenizer=tok)
    exs = [Example(messages=RECORDS[0], metadata={"group": "g"}), Example(messages=RECORDS[1], metadata={"group": "g"})]
    res = run_steps(exs, [step])
    assert not res.kept and len(res.rejected) == 2
    assert any(r.reason.startswith("group 'g': member ") for r in res.rejected)


def _write_input(path: Path) -> list[dict]:
    rows = [{"id": f"r{k}", "messages": m} for k, m in enumerate(RECORDS)]
    rows.append({"id": "r5", "messages": conv("Repeat after me. " * 300, "Done. " * 300)})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_curate_run_streaming_and_in_memory(tmp_path, sharp, sharp_dir, monkeypatch):
    import sftflow.curate.end_of_turn as eot_mod
    model, tok = sharp
    rows = _write_input(tmp_path / "in.jsonl")
    probs = sorted(direct_prob(model, tok, r["messages"]) for r in rows[:5])
    cut = math.sqrt(probs[1] * probs[2])          # two judged records under it, three over
    cfg = CurateConfig(steps=["template_leak", "end_of_turn"], stats=False, plots=False,
                       end_of_turn=EndOfTurnParams(model=sharp_dir, min_prob=cut, max_length=512))
    judged: list[int] = []
    real = eot_mod.end_of_turn_probs
    monkeypatch.setattr(eot_mod, "end_of_turn_probs", lambda m, t, exs, **kw: judged.append(len(exs)) or real(m, t, exs, **kw))

    res = curate([tmp_path / "in.jsonl"], tmp_path / "stream", cfg, progress=False)
    assert sum(judged) == len(rows)            # two passes, one forward per record
    kept, rejected = _lines(tmp_path / "stream" / "kept.jsonl"), _lines(tmp_path / "stream" / "rejected.jsonl")
    assert len(kept) + len(rejected) == len(rows) and len(rejected) == 2 and res.kept_count == 4
    assert all(r["step"] == "end_of_turn" for r in rejected)
    for r in rejected:
        assert r["reason"].startswith("ends where the model would go on: P(end of turn) ")
        assert r["reason"].endswith(f" < {cut:g}") and r["value"] < cut
    long = next(k for k in kept if k["id"] == "r5")
    assert long["metadata"]["curate"]["end_of_turn"]["unjudged"].startswith("too_long: ")
    for k in kept:
        if k["id"] != "r5":
            assert k["metadata"]["curate"]["end_of_turn"]["eot_prob"] >= float(f"{cut:.4g}")
    manifest = json.loads((tmp_path / "stream" / "manifest.json").read_text())
    assert manifest["counts"]["rejected_by_step"] == {"end_of_turn": 2}

    mem = curate_in_memory([tmp_path / "in.jsonl"], tmp_path / "mem", cfg, progress=False)
    assert len(mem.kept) == 4 and len(mem.rejected) == 2
    assert (tmp_path / "mem" / "kept.jsonl").read_bytes() == (tmp_path / "stream" / "kept.jsonl").read_bytes()
    assert (tmp_path / "mem" / "rejected.jsonl").read_bytes() == (tmp_path / "stream" / "rejected.jsonl").read_bytes()


def test_config_opt_in(tmp_path):
    assert "end_of_turn" not in DEFAULT_STEPS
    cfg = CurateConfig(steps=["end_of_turn"], end_of_turn={"min_prob": 0.1, "drop": False})
    assert cfg.end_of_turn.min_prob == 0.1 and cfg.end_of_turn.model is None
    with pytest.raises(ValueError, match="min_prob"):
        CurateConfig(end_of_turn={"min_prob": 1.5})


PAIRS = [  # (question, complete answer, the same answer cut in mid-sentence)
    (("We're closing on a house with $595,000 financed at 4.75% for 20 years. What's the monthly principal "
      "and interest?"),
     ("Answer: The monthly principal-and-interest payment is $3,845.03.\n\nDetails: Using M = P*r*(1+r)^n / "
      "((1+r)^n - 1) with P = $595,000, r = 4.75%/12 and n = 240 payments gives $3,845.03."),
     "Answer: The monthly principal-and-interest payment is $3,845.03.\n\nDetails: Using M = P*r"),
    ("What is a secured credit card?",
     ("Answer: A secured credit card requires a cash deposit, usually equal to your credit limit.\n\nDetails: "
      "A $300 deposit typically gives a $300 limit, and on-time payments build your score."),
     ("Answer: A secured credit card requires a cash deposit, usually equal to your credit limit.\n\nDetails: "
      "A $300 deposit typically gives a $300 limit, and on-time payments")),
    ("Carrying $1,350 on plastic at 21.49% APR and sending just $38: monthly interest?",
     "Answer: This month's interest is $24.18.\n\nDetails: Interest = $1,350 * 0.2149 / 12 = $24.18.",
     "Answer: This month's interest is $24.18.\n\nDetails: Interest = $1,350 * 0.2149 / 12 = $24.18. Only"),
]


def test_real_model_prefers_to_end_after_a_complete_answer(smol_path):
    from sftflow.models import load_model, load_tokenizer
    tok, model = load_tokenizer(smol_path), load_model(smol_path).eval()
    system = "You are a concise personal-finance assistant."
    records = [conv(q, a, system=system) for q, full, cut in PAIRS for a in (full, cut)]
    res = end_of_turn_probs(model, tok, records, batch_size=len(records))
    for k in range(0, len(res), 2):
        full, cut = res[k].prob, res[k + 1].prob
        assert full is not None and cut is not None
        assert full > cut, (PAIRS[k // 2][2], full, cut)


CALC = [{"type": "function", "function": {"name": "calculate", "description": "Arithmetic.",
                                          "parameters": {"type": "object",
                                                         "properties": {"expression": {"type": "string"}}}}}]
CALL = {"id": "c1", "type": "function", "function": {"name": "calculate", "arguments": {"expression": "1200 * 0.05"}}}
TOOL_RECORDS = [
    # A final answer after a call and its result: read after the answer, not after the call.
    Example(messages=[{"role": "user", "content": "5% of $1,200?"},
                      {"role": "assistant", "content": "", "tool_calls": [CALL]},
                      {"role": "tool", "tool_call_id": "c1", "name": "calculate", "content": "60"},
                      {"role": "assistant", "content": "Answer: $60.00."}], tools=CALC),
    # The same answer cut in mid-sentence.
    Example(messages=[{"role": "user", "content": "5% of $1,200?"},
                      {"role": "assistant", "content": "", "tool_calls": [CALL]},
                      {"role": "tool", "tool_call_id": "c1", "name": "calculate", "content": "60"},
                      {"role": "assistant", "content": "Answer: the interest is"}], tools=CALC),
    # A turn that ends on its call.
    Example(messages=[{"role": "user", "content": "5% of $1,200?"},
                      {"role": "assistant", "content": "", "tool_calls": [CALL]}], tools=CALC),
    # A reasoning trace before the answer.
    Example(messages=[{"role": "user", "content": "Is 7 prime?"},
                      {"role": "assistant", "reasoning_content": "7 has no divisor but 1 and 7.",
                       "content": "Yes, 7 is prime."}]),
]


def test_tool_and_reasoning_turns_are_read_after_the_final_turn(sharp):
    model, tok = sharp
    eot = tok.convert_tokens_to_ids("<|im_end|>")
    got = end_of_turn_probs(model, tok, TOOL_RECORDS, batch_size=2)
    tails = []     # what precedes the read position: the last turn's own text
    for ex, g in zip(TOOL_RECORDS, got):
        enc = encode(ex.messages, tok, tools=ex.tools, train_on="last")
        k = max(i for i, lab in enumerate(enc.labels) if lab != -100)
        assert enc.input_ids[k] == eot
        with torch.no_grad():
            want = torch.softmax(model(torch.tensor([enc.input_ids])).logits[0, k - 1].float(), -1)[eot].item()
        assert g.unjudged is None and g.token == "<|im_end|>"
        assert g.prob == pytest.approx(want, rel=1e-4, abs=1e-9)
        tails.append(tok.decode(enc.input_ids[:k])[-20:])
    # The answer, the answer cut off, the call, the answer after a trace.
    assert tails[0].endswith("Answer: $60.00.") and tails[1].endswith("the interest is")
    assert tails[2].rstrip().endswith("</tool_call>") and tails[3].endswith("Yes, 7 is prime.")
    assert got[0].prob != got[1].prob
    # The trace is part of the judged turn: without it the number changes.
    bare = end_of_turn_probs(model, tok, [conv("Is 7 prime?", "Yes, 7 is prime.")])[0].prob
    assert bare != pytest.approx(got[3].prob, rel=1e-3)
