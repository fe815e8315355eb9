"""Paraphrase, round trip and instruction backtranslation on scripted backends."""

from __future__ import annotations

import json
import re

import pytest

from sftflow.backends import FakeBackend
from sftflow.generate.backtranslate import (parse_score, read_unlabelled, replace_prompt, run_backtranslate,
                                            run_paraphrase, run_roundtrip)
from sftflow.generate.config import GenerateConfig
from sftflow.schema import Example, RecordError

EXS = [Example.single("Explain how a 30-year mortgage at 6% works for Alice.", "It is a loan ..."),
       Example.single("List three ways to cut monthly spending.", "1. Cook at home ...")]


def read(p):
    return [json.loads(x) for x in p.read_text().splitlines()]


def cfg(method, **kw):
    return GenerateConfig(method=method, show_progress=False,
                          validation={"embed_method": "tfidf", "min_cosine": 0.2}, **kw)


def test_paraphrase_styles_keep_response_and_validate(tmp_path):
    def resp(msgs):
        p = msgs[-1]["content"]
        inst = p.split("Instruction:\n", 1)[1].strip()
        style = re.search(r"in a (\w+) style", p).group(1)
        if style == "formal":
            return f'Here is the rewritten instruction: "Kindly {inst[0].lower()}{inst[1:]}"'
        return inst.replace("30-year", "15-year")        # casual drops a number: drift
    counts = run_paraphrase(cfg("paraphrase", rewrite={"k": 2, "styles": ["formal", "casual"]}),
                            tmp_path, backend=FakeBackend(resp), examples=EXS)
    recs, rej = read(tmp_path / "records.jsonl"), read(tmp_path / "rejected.jsonl")
    assert counts["records"] + counts["rejected"] == 4 == counts["requests"]
    assert [r["messages"][0]["content"] for r in recs] == [
        "Kindly explain how a 30-year mortgage at 6% works for Alice.",
        "Kindly list three ways to cut monthly spending."]
    assert [r["messages"][1]["content"] for r in recs] == [e.response for e in EXS]
    assert recs[0]["metadata"]["style"] == "formal" and recs[0]["metadata"]["source_id"] == EXS[0].id
    assert "cosine" in recs[0]["metadata"]["validation"]
    assert [(r["step"], r["value"]) for r in rej] == [("validate:numbers", ["30"]),
                                                     ("validate:unchanged", None)]


def test_paraphrase_needs_enough_styles(tmp_path):
    with pytest.raises(ValueError, match="k=3"):
        run_paraphrase(cfg("paraphrase", rewrite={"k": 3, "styles": ["formal"]}), tmp_path,
                       backend=FakeBackend(), examples=EXS)


def test_roundtrip_through_pivot(tmp_path):
    fr = {EXS[0].prompt: "Expliquez comment fonctionne un prêt de 30 ans à 6% pour Alice.",
          EXS[1].prompt: "Citez trois façons de réduire les dépenses."}
    en = {fr[EXS[0].prompt]: "Explain how a 30-year loan at 6% works for Alice.",
          fr[EXS[1].prompt]: "Name three ways to reduce expenses."}

    def resp(msgs):
        p = msgs[-1]["content"]
        text = p.split("Text:\n", 1)[1].strip()
        return fr[text] if "into French" in p else en[text]
    fake = FakeBackend(resp)
    counts = run_roundtrip(cfg("roundtrip"), tmp_path, backend=fake, examples=EXS)
    recs = read(tmp_path / "records.jsonl")
    assert counts["requests"] == 4 and counts["records"] == 2
    assert recs[0]["messages"][0]["content"] == "Explain how a 30-year loan at 6% works for Alice."
    assert recs[0]["metadata"]["pivot_text"].startswith("Expliquez")
    assert recs[0]["metadata"]["pivot"] == "French"
    assert recs[1]["metadata"]["validation"]["length_ratio"] == round(6 / 7, 3)


def test_humpback_backtranslation_and_curation(tmp_path):
    texts = ["Index funds track a market index and charge low fees.",
             "Click here to subscribe to our newsletter!",
             "An emergency fund should cover three to six months of expenses."]
    scores = {texts[0]: "Score: 5", texts[1]: "Score: 1", texts[2]: "I cannot rate this"}

    def resp(msgs):
        p = msgs[-1]["content"]
        if p.startswith("Below is a response"):
            return "Instruction: What is this about: " + p.split("Response:\n", 1)[1].strip()[:20]
        ans = p.split("Answer:\n", 1)[1].split("\n\nReply with", 1)[0].strip()
        return scores[ans]
    src = tmp_path / "texts.txt"
    src.write_text("\n\n".join(texts) + "\n")
    c = cfg("backtranslate", backtranslate={"input": str(src), "min_score": 4})
    counts = run_backtranslate(c, tmp_path / "out", backend=FakeBackend(resp))
    recs, rej = read(tmp_path / "out" / "records.jsonl"), read(tmp_path / "out" / "rejected.jsonl")
    assert counts["records"] == 1 and counts["rejected"] == 2 and counts["inputs"] == 3
    assert recs[0]["messages"] == [{"role": "user", "content": "What is this about: Index funds track a"},
                                   {"role": "assistant", "content": texts[0]}]
    assert recs[0]["metadata"]["curation_score"] == 5
    assert [(r["step"], r["value"]) for r in rej] == [("curate:score", 1),
                                                     ("curate:unparsed", "I cannot rate this")]


def test_parse_score_and_readers(tmp_path):
    assert [parse_score(t) for t in ["Score: 4", "score=2.", "3", "I'd give it a 9", "Score: 7"]] == \
        [4, 2, 3, None, None]
    p = tmp_path / "u.jsonl"
    p.write_text('{"text": "a"}\n{"messages": [{"role": "user", "content": "q"}, '
                 '{"role": "assistant", "content": "b"}]}\n')
    assert read_unlabelled(p) == ["a", "b"]
    p.write_text('{"text": "a"}\n{"body": 3}\n')
    with pytest.raises(RecordError, match="line 2"):
        read_unlabelled(p)


def test_replace_prompt_multi_turn():
    ex = Example(messages=[{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"},
                           {"role": "user", "content": "q2"}, {"role": "assistant", "content": "a2"}])
    assert [m["content"] for m in replace_prompt(ex, "Q2")] == ["q1", "a1", "Q2", "a2"]


def test_recipe_stage_rewrites_the_current_training_data(tmp_path):
    from sftflow.pipeline.stages.generate import run_stage
    from sftflow.io import load_examples, write_examples
    from sftflow.pipeline.recipe import Recipe, RunState
    state = RunState(recipe=Recipe(), out_dir=tmp_path)
    state.train_path = tmp_path / "train.jsonl"
    write_examples(state.train_path, EXS)
    c = cfg("paraphrase", rewrite={"k": 1, "styles": ["formal"]})
    run_stage(c, state, backend=FakeBackend(lambda m: "Kindly " + m[-1]["content"].split("Instruction:\n")[1]))
    got = load_examples([state.train_path])
    assert state.train_path == tmp_path / "generate" / "train.jsonl"
    assert [e.prompt for e in got] == [e.prompt for e in EXS] + ["Kindly " + e.prompt.strip() for e in EXS]
    assert state.artifacts["generate"]["generated"] == 2 and state.artifacts["generate"]["existing"] == 2
