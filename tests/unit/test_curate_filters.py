"""Per-record filters: exact measurements and decisions on hand-made records."""

from __future__ import annotations

import pytest

from sftflow.curate.config import EmptyParams, LengthParams, RefusalParams, RepetitionParams
from sftflow.curate.filters import (EmptyFilter, LengthFilter, RefusalFilter, RepetitionFilter,
                                    TemplateLeakFilter, TruncationFilter, repeated_ngram_ratio, words)
from sftflow.schema import Example


def ex(prompt: str, response: str) -> Example:
    return Example.single(prompt, response)


def test_words_fold_case_punctuation_and_split_cjk():
    assert words("Hello, World! It's 2024_x") == ["hello", "world", "it", "s", "2024_x"]
    assert words("Tokyo 東京 is big") == ["tokyo", "東", "京", "is", "big"]
    assert words("Ünïcode café") == ["ünïcode", "café"]


def test_empty_filter_near_empty_and_empty_turns():
    f = EmptyFilter(EmptyParams(min_response_chars=20))
    res = f.run([ex("Say hi", "Hi!"), ex("Say hi", "Hello there, how are you today?"),
                 Example(messages=[{"role": "user", "content": "  "}, {"role": "assistant", "content": "x" * 30}])])
    assert [e.response for e in res.kept] == ["Hello there, how are you today?"]
    assert res.rejected[0].reason == ("near-empty response: 3 characters < 20 and the task does not ask "
                                      "for a short answer")
    assert res.rejected[0].value == 3
    assert res.rejected[1].reason == "empty turn: messages[0] (user) has no text"
    assert res.kept[0].metadata["curate"]["empty"] == {"response_chars": 31, "empty_turns": [], "substance": True}


def test_repetition_unique_word_ratio_exact():
    f = RepetitionFilter(RepetitionParams())
    rep = ex("Write", "the cat " * 10)          # 20 words, 2 unique -> 0.1
    ok = ex("Write", "one two three four five six seven eight nine ten eleven twelve")
    short = ex("Write", "no no no no no")        # 5 words: the unique-word rule does not apply...
    res = f.run([rep, ok, short])
    assert rep.metadata["curate"]["repetition"]["unique_word_ratio"] == 0.1
    assert rep.metadata["curate"]["repetition"]["words"] == 20
    assert res.rejected[0].reason == "repetitive: unique-word ratio 0.100 < 0.3"
    assert ok in res.kept
    # ...but 2 of its 3 word-3-grams repeat the first: ratio 2/3 > 0.5
    assert short.metadata["curate"]["repetition"]["repeated_ngram_ratio"] == pytest.approx(0.6667)
    assert res.rejected[1].step == "repetition" and "3-grams repeat" in res.rejected[1].reason


def test_repeated_ngram_ratio_values():
    assert repeated_ngram_ratio(["a", "b", "c", "d"], 2) == 0.0
    assert repeated_ngram_ratio(["a", "b", "a", "b"], 2) == pytest.approx(1 / 3)
    assert repeated_ngram_ratio(["a"], 3) == 0.0


PASSAGE = ("Explain the passage. Mitochondria produce the energy of the cell; biologists call them the "
           "powerhouse of the cell because they make most of its chemical energy.")


@pytest.mark.parametrize("response,evidence", [
    ("The mitochondria is the powerhouse of the cell and it produces the", "function_word"),
    ("The mitochondria (the powerhouse of the cell", "open_bracket"),
    ("Here is the code:\n```python\ndef f(x):\n    return x", "open_bracket"),
    ("The mitochondria is the powerhouse of the cell and it produces most chemical ene", "cut_word"),
    ("Mitochondria make energy. They are called the powerhouse of the cell by", "function_word"),
    ("Mitochondria make energy. They are called the powerhouse of the cell by biologists", "fragment"),
])
def test_truncation_needs_evidence_of_a_cut(response, evidence):
    r = TruncationFilter().run([ex(PASSAGE, response)])
    assert r.rejected and r.rejected[0].value == evidence, r.rejected
    assert r.rejected[0].reason.startswith("looks truncated: ")


@pytest.mark.parametrize("response", [
    "Mitochondria: the powerhouse of the cell",                   # a headline
    "Powerhouse of the cell",                                      # a span of the passage
    "Positive",                                                    # a label
    "线粒体是细胞的动力工厂，它们产生细胞所需的大部分化学能量，因此被称为细胞的动力工厂并且非常重要",  # CJK ending
    "ミトコンドリアは細胞のエネルギーを作る小さな器官であり、細胞の発電所と呼ばれています",
    "def f(x):\n    return x + 1",
    'He called them "in between a witness and a source\'\' of energy.',
])
def test_truncation_keeps_complete_answers_without_a_full_stop(response):
    assert TruncationFilter().run([ex(PASSAGE, response)]).kept


def test_truncation_by_finish_reason_and_by_the_sources_convention():
    done = [Example.single(f"Summarize document {i}.", f"Document {i} reports a quiet week in town.",
                           metadata={"_source": "news"}) for i in range(30)]
    cut = Example.single("Summarize document 99.", "Document 99 reports a quiet week of",
                         metadata={"_source": "news"})
    cut2 = Example.single("Summarize document 98.", "Document 98 reports a busy week for shops",
                          metadata={"_source": "news"})
    name = Example.single("Summarize document 97.", "Document 97 quotes the mayor Jane Smith",
                          metadata={"_source": "news"})
    limit = Example.single("Tell a story.", "Once upon a time there was a king.",
                           metadata={"generation": {"finish_reason": "length"}})
    res = TruncationFilter().run(done + [cut, cut2, name, limit])
    assert {r.record["id"]: r.value for r in res.rejected} == {cut.id: "function_word", cut2.id: "convention",
                                                               limit.id: "finish_reason"}
    assert "unlike 91% of its source's answers" in next(r.reason for r in res.rejected if r.value == "convention")
    # a headline source has no such convention: its answers stay
    heads = [Example.single(f"Write a headline for story {i}.", f"Town {i} has a quiet week",
                            metadata={"_source": "heads"}) for i in range(30)]
    assert not TruncationFilter().run(heads).rejected


def test_refusal_flagged_by_default_dropped_on_request():
    r = ex("Hack my neighbour", "Unfortunately I cannot help with that request.")
    fine = ex("Capital of France?", "Paris is the capital of France.")
    res = RefusalFilter().run([r, fine])
    assert len(res.kept) == 2 and res.flagged == 1
    assert r.metadata["curate"]["refusal"]["flagged"] is True
    assert r.metadata["curate"]["refusal"]["match"] == "I cannot"
    res2 = RefusalFilter(RefusalParams(drop=True)).run([r, fine])
    assert [e.id for e in res2.kept] == [fine.id]
    assert res2.rejected[0].reason == "refusal or boilerplate: 'I cannot'"


def test_as_an_ai_and_no_access_patterns():
    f = RefusalFilter()
    assert f.measure(ex("q", "As an AI language model, I think so."))["flagged"]
    assert f.measure(ex("q", "I don't have access to the internet."))["flagged"]
    assert not f.measure(ex("q", "I can help: here is the plan."))["flagged"]


def test_template_leak_special_tokens_and_role_markers():
    f = TemplateLeakFilter()
    leak = ex("Hi", "Sure!<|im_end|>\n<|im_start|>user\nmore")
    role = ex("### Human: hi\n### Assistant: hello", "A normal answer here.")
    ok = ex("What is <b>bold</b>?", "It marks text as bold in HTML.")
    res = f.run([leak, role, ok])
    assert [e.id for e in res.kept] == [ok.id]
    assert res.rejected[0].reason == "template marker '<|im_end|>' inside messages[1] content"
    assert res.rejected[1].value == "### Human:"
    html = ex("How do I strike text out in HTML?", "Wrap it in <s>: <s>old price</s> shows a line through it.")
    bos = ex("Say hi", "<s> Hello there, nice to meet you.")
    eos = ex("Say hi", "Hello there, nice to meet you.</s>")
    res = f.run([html, bos, eos])
    assert [e.id for e in res.kept] == [html.id] and len(res.rejected) == 2


def test_length_filter_counts_tokens_exactly(smol_tokenizer):
    p = LengthParams(min_instruction=2, max_instruction=20, min_response=3, max_response=8, max_total=25)
    f = LengthFilter(p, tokenizer=smol_tokenizer)
    texts = ["What is the capital of France?", "Paris is the capital.", "Hi", "ok"]
    n = [len(smol_tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    good = ex(texts[0], texts[1])
    too_short = ex(texts[0], texts[3])
    res = f.run([good, too_short])
    assert good.metadata["curate"]["length"] == {"instruction_tokens": n[0], "response_tokens": n[1],
                                                  "total_tokens": n[0] + n[1]}
    assert [e.id for e in res.kept] == [good.id]
    assert res.rejected[0].reason == (f"response too short: {n[3]} tokens < 3 and the task does not ask for a "
                                      "short answer")
    long = ex(texts[0], " ".join(["word"] * 30))
    assert f.run([long]).rejected[0].reason.startswith("response too long:")


def test_decide_must_give_a_reason():
    class Bad(RepetitionFilter):
        def decide(self, ex, m):
            return False
    with pytest.raises(TypeError, match="must return True or \\(False, reason\\)"):
        Bad().run([ex("a", "b")])


@pytest.mark.parametrize("prompt,response,kind", [
    ("Wall St. Bears Claw Back Into the Black. What label best describes this news article?", "Business", "label"),
    ('Decide whether the suggestion answers the question. If yes, write "True", otherwise "False".', "False", "yes_no"),
    ("Is the sky blue?", "Yes.", "yes_no"),
    ("Review: great food, slow service.\nOn a scale of 1 to 5, I would give this product", "4", "option"),
    ("Review text:\nGreat food.\n\nStars:", "5 stars", "number"),
    ("When was the Eiffel Tower's restaurant opened? Context: the restaurant opened in 1950 on the tower.",
     "1950", "option" if False else "number"),
    ("Read the passage and answer. The Nile is the longest river in Africa and flows north. Which river is longest?",
     "The Nile", "span"),
    ("Write a headline for this article: the city council approved a new park on Tuesday.", "Council backs park",
     "title"),
    ("Which is bigger, a cat or an elephant?", "an elephant", "option"),
])
def test_short_answers_the_task_asks_for_are_kept(prompt, response, kind):
    from sftflow.curate.short_answers import short_answer_kind
    assert short_answer_kind(prompt, response) == kind
    e = ex(prompt, response)
    assert EmptyFilter().run([e]).kept and e.metadata["curate"]["empty"]["short_answer"] == kind


@pytest.mark.parametrize("prompt,response,reason", [
    ("Write an essay about the history of Rome.", "Rome.", "near-empty response"),
    ("What label best describes this article?", "", "empty turn: messages[1] (assistant)"),
    ("What label best describes this article?", " ... ?! ", "punctuation-only response"),
    ("Explain how vaccines train the immune system.", "ok", "near-empty response"),
])
def test_short_answers_are_rejected_when_the_task_wants_more_or_nothing_is_there(prompt, response, reason):
    res = EmptyFilter().run([ex(prompt, response)])
    assert res.rejected[0].reason.startswith(reason)


def test_short_answers_can_be_turned_off():
    e = ex("What label best describes this news article?", "Business")
    assert EmptyFilter(EmptyParams(short_answers=[])).run([e]).rejected


def test_length_filter_keeps_short_answers_the_task_asks_for(smol_tokenizer):
    f = LengthFilter(LengthParams(min_instruction=1), tokenizer=smol_tokenizer)
    lab = ex("Some article text. What label best describes this news article?", "Sci/Tech")
    essay = ex("Write an essay about the history of Rome.", "Rome was big.")
    res = f.run([lab, essay])
    assert [e.id for e in res.kept] == [lab.id] and lab.metadata["curate"]["length"]["short_answer"] == "label"


def test_tool_call_turns_are_not_empty():
    msgs = [{"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "c1", "type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "sunny, 21 C"},
            {"role": "assistant", "content": "It is sunny and 21 degrees in Paris today."}]
    assert EmptyFilter().run([Example(messages=msgs)]).kept


def test_a_group_is_kept_or_rejected_whole():
    g = [Example.single(f"Say a long sentence {i}.", "This is a complete and long enough answer.",
                        metadata={"group": "src-1"}) for i in range(3)]
    g[1] = Example.single("Say a long sentence 1.", "", metadata={"group": "src-1"})
    other = Example.single("Say another long sentence.", "This is a complete and long enough answer.",
                           metadata={"group": "src-2"})
    res = EmptyFilter().run(g + [other])
    assert [e.id for e in res.kept] == [other.id]
    assert len(res.rejected) == 3
    assert sorted(r.reason.split(":")[0] for r in res.rejected) == ["empty turn", "group 'src-1'",
                                                                    "group 'src-1'"]
    assert f"member {g[1].id} rejected: empty turn" in res.rejected[1].reason
    res = EmptyFilter(EmptyParams(reject_empty_turns=False)).run([g[1]])
    assert res.rejected[0].reason == "empty response"


def test_length_counts_tool_calls_reasoning_and_tools(smol_tokenizer):
    call = {"id": "c1", "type": "function",
            "function": {"name": "search_flights", "arguments": {"from": "Paris", "to": "Tokyo", "date": "2026-05-01"}}}
    tools = [{"type": "function", "function": {"name": "search_flights", "description": "Find flights",
                                               "parameters": {"type": "object", "properties": {}}}}]
    msgs = [{"role": "user", "content": "Find me a flight from Paris to Tokyo on the first of May."},
            {"role": "assistant", "content": "", "tool_calls": [call],
             "reasoning_content": "The user wants flights; I should call the search tool with the date."}]
    e = Example(messages=msgs, tools=tools)
    f = LengthFilter(LengthParams(min_instruction=1, min_response=5), tokenizer=smol_tokenizer)
    res = f.run([e])
    m = e.metadata["curate"]["length"]
    n = lambda t: len(smol_tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert m["response_tokens"] == n(e.response) > 5 and res.kept      # the call is the answer
    assert m["reasoning_tokens"] == n(msgs[1]["reasoning_content"])
    assert m["tools_tokens"] > 0
    assert m["total_tokens"] == m["instruction_tokens"] + m["response_tokens"] + m["reasoning_tokens"] \
        + m["tools_tokens"]
    tight = LengthFilter(LengthParams(min_instruction=1, min_response=1, max_total=m["total_tokens"] - 1),
                         tokenizer=smol_tokenizer)
    assert tight.run([Example(messages=msgs, tools=tools)]).rejected[0].reason.startswith("example too long")
