import pytest

from sftflow.backends import FakeBackend
from sftflow.judge import combine, judge_pairwise, judge_single, load_prompt, parse_grade, parse_pairwise

QS = ["q1", "q2", "q3", "q4"]
TUNED = ["tuned-1", "tuned-2", "tuned-3", "tuned-4"]
BASE = ["base-1", "base-2", "base-3", "base-4"]


def _answer_in_slot(prompt: str, slot: str) -> str:
    start = prompt.index(f"[Answer {slot}]") + len(f"[Answer {slot}]")
    return prompt[start: prompt.index(f"[End of Answer {slot}]")].strip()


def test_judge_that_always_prefers_first_position_gives_all_ties():
    judge = FakeBackend(lambda msgs: "The first one reads better. [[A]]")
    summary, rows = judge_pairwise(judge, QS, TUNED, BASE, bootstrap=200)
    assert len(judge.calls) == 8                              # every pair in both orders
    assert [r["outcome"] for r in rows] == ["tie"] * 4
    assert summary["tie"] == 1.0 and summary["win"] == 0.0 and summary["loss"] == 0.0
    assert (summary["tie_low"], summary["tie_high"]) == (1.0, 1.0)
    assert summary["unparsed"] == 0 and summary["n"] == 4


def test_consistent_judge_counts_wins_and_losses():
    # prefers the tuned answer for q1-q3 and the base answer for q4, in either position
    def responder(msgs):
        p = msgs[-1]["content"]
        a = _answer_in_slot(p, "A")
        want_tuned = not a.endswith("4")
        return "[[A]]" if a.startswith("tuned") == want_tuned else "[[B]]"
    summary, rows = judge_pairwise(FakeBackend(responder), QS, TUNED, BASE, bootstrap=500)
    assert [r["outcome"] for r in rows] == ["win", "win", "win", "loss"]
    assert summary["win"] == 0.75 and summary["loss"] == 0.25 and summary["tie"] == 0.0
    assert 0.0 <= summary["win_low"] <= 0.75 <= summary["win_high"] <= 1.0


def test_unparseable_verdicts_are_counted_not_dropped():
    replies = iter(["[[A]]", "[[B]]",        # q1: tuned wins in both orders
                    "no idea", "[[A]]",      # q2: unparsed
                    "[[C]]", "[[C]]",        # q3: tie
                    "[[B]]", "I pick [[A]] hmm... final verdict: [[B]]"])  # q4: disagreement -> tie
    summary, rows = judge_pairwise(FakeBackend(lambda m: next(replies)), QS, TUNED, BASE, bootstrap=200)
    assert [r["outcome"] for r in rows] == ["win", "unparsed", "tie", "tie"]
    assert summary["unparsed"] == 1 and summary["n"] == 3 and summary["pairs"] == 4
    assert summary["win"] == pytest.approx(1 / 3) and summary["tie"] == pytest.approx(2 / 3)


def test_parsers_and_combine():
    assert parse_pairwise("reasoning... [[B]]") == "B"
    assert parse_pairwise("Final verdict: C") == "C"
    assert parse_pairwise("both fine") is None
    assert combine("A", "B") == "win" and combine("B", "A") == "loss"
    assert combine("A", "A") == "tie" and combine("C", "B") == "tie" and combine(None, "A") == "unparsed"
    assert parse_grade("Rating: [[7]]") == 7.0
    assert parse_grade("Rating: 8/10") == 8.0
    assert parse_grade("[[11]]") is None and parse_grade("great") is None


def test_single_grading_and_prompt_file(tmp_path):
    grades = {"tuned": "Rating: [[8]]", "base": "meh"}
    def responder(msgs):
        return grades["tuned"] if "tuned-" in msgs[-1]["content"] else grades["base"]
    summary, rows = judge_single(FakeBackend(responder), QS, {"base": BASE, "tuned": TUNED}, bootstrap=200)
    assert summary["tuned"]["mean"] == 8.0 and summary["tuned"]["n"] == 4
    assert summary["base"]["unparsed"] == 4 and summary["unparsed"] == 4
    custom = tmp_path / "p.txt"
    custom.write_text("Q: {question}\nA: {answer_a}\nB: {answer_b}\nSay [[A]] or [[B]] or [[C]].")
    seen = []
    judge_pairwise(FakeBackend(lambda m: seen.append(m[-1]["content"]) or "[[C]]"), ["what {x}?"],
                   ["t {json}"], ["b"], prompt=str(custom), bootstrap=100)
    assert seen[0].startswith("Q: what {x}?\nA: t {json}\nB: b")
    bad = tmp_path / "bad.txt"
    bad.write_text("no placeholders")
    with pytest.raises(ValueError, match="placeholder"):
        load_prompt(bad, "pairwise")


def test_likelihood_judge_always_gives_a_verdict(tiny_model_dir):
    from sftflow.evaluate.choice import grouped_loglikelihoods
    from sftflow.evaluate.likelihood_judge import LikelihoodJudge
    from sftflow.models import load_model, load_tokenizer
    model, tok = load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)
    judge = LikelihoodJudge("tiny", model_obj=model, tokenizer=tok, batch_size=3)
    summary, rows = judge_pairwise(judge, QS[:3], TUNED[:3], BASE[:3], bootstrap=100)
    assert summary["unparsed"] == 0 and summary["n"] == 3
    # the verdict is the most likely label after the prompt and "[[", as multiple-choice scoring does
    prompt = rows[0]["raw_tuned_as_a"]
    assert prompt.startswith("[[") and "log-likelihoods: A=" in prompt
    msgs = [{"role": "user", "content": "x"}]
    ctx = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False) + "[["
    ll = grouped_loglikelihoods(model, tok, [(ctx, ["A]]", "B]]", "C]]"])])[0]   # whole verdicts
    got = judge.generate([msgs], None)[0].text
    assert got.startswith(f"[[{'ABC'[max(range(3), key=lambda i: ll[i])]}]]")
    grader = LikelihoodJudge("tiny", mode="single", model_obj=model, tokenizer=tok)
    s2, _ = judge_single(grader, QS[:2], {"base": BASE[:2], "tuned": TUNED[:2]}, bootstrap=100)
    assert s2["unparsed"] == 0 and 1 <= s2["tuned"]["mean"] <= 10


def test_judge_verb_on_two_answer_files(tmp_path):
    import json

    from typer.testing import CliRunner

    from sftflow.cli import app as sftflow_app
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"question": q, "answer": x}) + "\n" for q, x in zip(QS, BASE)))
    b.write_text("".join(json.dumps({"prompt": [{"role": "user", "content": q}], "text": x}) + "\n"
                         for q, x in zip(QS, TUNED)))
    app = sftflow_app
    res = CliRunner().invoke(app, ["judge", "--a", str(a), "--b", str(b), "--backend", "fake",
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "judge.json").read_text())
    assert summary["pairs"] == 4 and summary["unparsed"] == 4       # the fake judge gives no verdicts
    assert len((tmp_path / "out" / "judgments.jsonl").read_text().splitlines()) == 4
    b.write_text(json.dumps({"question": "other", "answer": "x"}) + "\n")
    res = CliRunner().invoke(app, ["judge", "--a", str(a), "--b", str(b), "--backend", "fake"])
    assert res.exit_code != 0 and "same questions" in res.output


def test_judge_verb_counts_wins_and_losses_of_b_over_a(tmp_path, monkeypatch):
    """The verb's win/loss path: a judge that prefers B's answer on q1-q3, A's on q4, in both orders."""
    import json

    from typer.testing import CliRunner

    import sftflow.backends as backends
    from sftflow.cli import app

    def responder(msgs):
        p = msgs[-1]["content"]
        first = _answer_in_slot(p, "A")
        b_first = first.startswith("tuned")
        prefer_b = "q4" not in p
        return "[[A]]" if b_first == prefer_b else "[[B]]"

    fake = FakeBackend(responder)
    monkeypatch.setattr(backends, "get_backend", lambda kind, model=None, **o: fake)
    system = {"role": "system", "content": "Be terse."}
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"prompt": [system, {"role": "user", "content": q}], "text": x}) + "\n"
                         for q, x in zip(QS, BASE)))
    b.write_text("".join(json.dumps({"prompt": [system, {"role": "user", "content": q}], "text": x}) + "\n"
                         for q, x in zip(QS, TUNED)))
    res = CliRunner().invoke(app, ["judge", "--a", str(a), "--b", str(b), "--backend", "fake",
                                   "-o", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    summary = json.loads((tmp_path / "out" / "judge.json").read_text())
    assert (summary["win"], summary["loss"], summary["tie"]) == (0.75, 0.25, 0.0)
    assert summary["n"] == 4 and summary["unparsed"] == 0 and len(fake.calls) == 8
    rows = [json.loads(x) for x in (tmp_path / "out" / "judgments.jsonl").read_text().splitlines()]
    assert [r["outcome"] for r in rows] == ["win", "win", "win", "loss"]
    assert all("Be terse." in call[-1]["content"] for call in fake.calls)   # the system prompt was judged


def test_the_judge_reads_the_whole_conversation():
    from sftflow import Example
    conv = Example(messages=[{"role": "system", "content": "Answer in French."},
                             {"role": "user", "content": "Name a colour."},
                             {"role": "assistant", "content": "Rouge."},
                             {"role": "user", "content": "Another one."},
                             {"role": "assistant", "content": "Bleu."}])
    seen = []
    judge_pairwise(FakeBackend(lambda m: seen.append(m[-1]["content"]) or "[[C]]"), [conv.context],
                   ["Vert."], ["Green."], bootstrap=100)
    request = seen[0].split("[Answer A]")[0]
    for part in ("Answer in French.", "Name a colour.", "Rouge.", "Another one."):
        assert part in request
    assert request.index("Answer in French.") < request.index("Rouge.") < request.index("Another one.")
    seen.clear()
    judge_single(FakeBackend(lambda m: seen.append(m[-1]["content"]) or "[[5]]"), [conv.context],
                 {"tuned": ["Vert."]}, bootstrap=100)
    assert "Answer in French." in seen[0] and "Rouge." in seen[0]
    # a plain one-turn question reads exactly as before
    seen.clear()
    judge_single(FakeBackend(lambda m: seen.append(m[-1]["content"]) or "[[5]]"),
                 [[{"role": "user", "content": "q1"}]], {"tuned": ["a"]}, bootstrap=100)
    assert "[Request]\nq1\n" in seen[0]


def test_placeholders_are_filled_in_one_pass():
    from sftflow.judge import fill
    seen = []
    judge_pairwise(FakeBackend(lambda m: seen.append(m[-1]["content"]) or "[[C]]"), ["q {answer_a}"],
                   ["tuned says {answer_b} literally"], ["base"], bootstrap=100)
    assert _answer_in_slot(seen[0], "A") == "tuned says {answer_b} literally"
    assert _answer_in_slot(seen[0], "B") == "base"
    assert "q {answer_a}" in seen[0]
    assert fill("{a}|{b}", a="{b}", b="\\1 {a}") == "{b}|\\1 {a}"


def _char_lm_loglikelihoods(table):
    """A fake language model over characters: log P(continuation | '[[') by the chain rule."""
    import math

    def fake(model, tokenizer, groups, batch_size=8, progress=None):
        out = []
        for _ctx, conts in groups:
            row = []
            for c in conts:
                ll, prefix = 0.0, ""
                for ch in c:
                    ll += math.log(table.get(prefix, {}).get(ch, 1e-6))
                    prefix += ch
                row.append(ll)
            out.append(row)
        return out
    return fake


def test_likelihood_judge_can_give_a_multi_token_grade(monkeypatch):
    import sftflow.evaluate.likelihood_judge as likelihood_judge
    from sftflow.evaluate.likelihood_judge import LikelihoodJudge
    # The model writes "1" then "0" then "]]" most of the time: "10" is its likeliest grade
    # (0.54); "1]]" has 0.06 and each other grade 0.4 / 9. Summing the tokens of "10" without
    # its closing bracket compares P("1...") with P("10..."), and "10" can never win.
    rest = {str(d): 0.4 / 9 for d in range(2, 10)}
    table = {"": {"1": 0.6, **rest}, "1": {"0": 0.9, "]": 0.1}, "10": {"]": 1.0}, "10]": {"]": 1.0},
             "1]": {"]": 1.0}, **{str(d): {"]": 1.0} for d in range(2, 10)},
             **{f"{d}]": {"]": 1.0} for d in range(2, 10)}}
    monkeypatch.setattr(likelihood_judge, "grouped_loglikelihoods", _char_lm_loglikelihoods(table))

    class Tok:
        chat_template = None
    judge = LikelihoodJudge("fake", mode="single", model_obj=object(), tokenizer=Tok())
    got = judge.generate([[{"role": "user", "content": "grade this"}]], None)[0].text
    assert parse_grade(got) == 10.0
