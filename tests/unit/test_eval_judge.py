import pytest

from sftflow.backends import FakeBackend
from sftflow.evaluate.judge import combine, judge_pairwise, judge_single, load_prompt, parse_grade, parse_pairwise

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
    from sftflow.evaluate.judge import LikelihoodJudge
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
    ll = grouped_loglikelihoods(model, tok, [(ctx, ["A", "B", "C"])])[0]
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
