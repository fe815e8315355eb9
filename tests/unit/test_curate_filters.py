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
    assert res.rejected[0].reason == "near-empty response: 3 characters < 20"
    assert res.rejected[0].value == 3
    assert res.rejected[1].reason == "empty turn: messages[0] (user) has no text"
    assert res.kept[0].metadata["curate"]["empty"] == {"response_chars": 31, "empty_turns": []}


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


def test_truncation_only_long_responses_ending_mid_word():
    f = TruncationFilter()
    cut = ex("Explain", "The mitochondria is the powerhouse of the cell and it produces ener")
    done = ex("Explain", "The mitochondria is the powerhouse of the cell and it produces energy.")
    short = ex("Label", "Positive sentiment overall")       # < 50 characters: not judged
    code = ex("Code", "def f(x):\n    return x + 1\n" * 3)   # ends with a digit
    res = f.run([cut, done, short, code])
    assert [r.record["id"] for r in res.rejected] == [cut.id]
    assert "ends mid-word" in res.rejected[0].reason
    assert cut.metadata["curate"]["truncation"] == {"last_char": "r", "truncated": True}


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
    assert res.rejected[0].reason == f"response too short: {n[3]} tokens < 3"
    long = ex(texts[0], " ".join(["word"] * 30))
    assert f.run([long]).rejected[0].reason.startswith("response too long:")


def test_decide_must_give_a_reason():
    class Bad(RepetitionFilter):
        def decide(self, ex, m):
            return False
    with pytest.raises(TypeError, match="must return True or \\(False, reason\\)"):
        Bad().run([ex("a", "b")])
