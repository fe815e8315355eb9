"""The figure metric on hand-made answers: formats, near misses, targets the question already states."""

from __future__ import annotations

import pytest

from sftflow.backends import FakeBackend
from sftflow.evaluate.correctness import grade_answers, parse_verdict, summarize_grades
from sftflow.evaluate.reference import (Figure, extract_figures, figure_rows, states_figure,
                                        summarize_figures, target_figure)
from sftflow.schema import Example


def fig(text: str) -> Figure:
    (f,) = extract_figures(text)
    return f


@pytest.mark.parametrize("text,value,kind", [
    ("$1,234.50", 1234.5, "money"), ("1234.5", 1234.5, "number"), ("12%", 12.0, "percent"),
    ("12 percent", 12.0, "percent"), ("-$12.50", -12.5, "money"), ("$1.2 million", 1.2e6, "money"),
    ("18 months", 18.0, "number"), ("0.12", 0.12, "number"), ("73,495.59", 73495.59, "number"),
])
def test_formats_are_read(text, value, kind):
    f = fig(text)
    assert (f.value, f.kind) == (pytest.approx(value), kind)


def test_names_are_not_figures():
    assert extract_figures("By the rule of 72 and the 50/30/20 rule, fund your 401(k)") == []


@pytest.mark.parametrize("answer,target,ok", [
    ("The total is $1,234.50.", "$1,234.50", True),
    ("The total is 1234.5 dollars.", "$1,234.50", True),
    ("The total is $1,234.5.", "$1,234.50", True),
    ("The total is $1,234.504.", "$1,234.50", True),        # rounds to the cent
    ("The total is $1,240.00.", "$1,234.50", True),          # within 0.5%
    ("The total is $1,241.00.", "$1,234.50", False),         # 0.53% off: a near miss
    ("The total is $1,324.50.", "$1,234.50", False),         # transposed digits
    ("The rate is 12%.", "12%", True),
    ("The rate is 0.12.", "12%", True),                      # the unambiguous share
    ("The rate is 12.", "12%", False),                       # a bare 12 could be anything
    ("The rate is 12.1%.", "12%", False),
    ("It pays $12.", "12%", False),
    ("The yield is 6.14%.", "6.14%", True),
    ("The yield is 6.1%.", "6.14%", False),
    ("It takes 10 months.", "10 months", True),
    ("It takes 11 months.", "10 months", False),
    ("It costs 12%.", "$12.00", False),
])
def test_matching_with_near_misses(answer, target, ok):
    assert states_figure(answer, fig(target)) is ok


def test_target_skips_figures_the_question_states():
    q = "If I deposit $20,000 at 5% compounded annually, what will I have after 6 years?"
    ref = "Answer: $20,000 at 5% compounded annually grows to $26,801.91 after 6 years.\n\nDetails: ..."
    t = target_figure(q, ref)
    assert (t.kind, t.value) == ("money", 26801.91)
    assert target_figure("What is APR?", "Answer: APR is the yearly cost of borrowing.\n\nDetails: 12%") is None
    # the Details line is not searched, and a bare percentage restated as 0.05 still counts as stated
    assert target_figure("At 0.05 a year", "Answer: At 5% it doubles in 14.4 years.").value == 14.4


def test_rows_and_summary_are_paired_with_wilson_intervals():
    exs = [Example.single(f"What is {a} plus {b}?", f"Answer: {a} plus {b} is {a + b}.") for a, b in
           [(2, 3), (10, 20), (7, 8), (1, 1)]] + [Example.single("Hi", "Answer: Hello.")]
    base = [{"text": t} for t in ("It is 5.", "It is 31.", "It is 14.", "It is 3.", "Hi")]
    tuned = [{"text": t} for t in ("It is 5.", "It is 30.", "It is 15.", "It is 2.", "Hi")]
    rb, rt = figure_rows(exs, base), figure_rows(exs, tuned)
    assert [r["stated"] for r in rb] == [True, False, False, False, None]
    assert [r["stated"] for r in rt] == [True, True, True, True, None]
    s = summarize_figures({"base": rb, "tuned": rt})
    assert s["base"]["count"] == 1 and s["base"]["n"] == 4 and s["base"]["without_target"] == 1
    assert s["tuned"]["rate"] == 1.0 and 0 < s["tuned"]["low"] < 1
    assert s["paired"]["after_only"] == 3 and s["paired"]["before_only"] == 0
    assert s["paired"]["p_value"] == pytest.approx(0.25)


def test_judge_grades_through_any_backend_and_counts_unparsed():
    assert parse_verdict("reasoning... [[INCORRECT]]") is False
    assert parse_verdict("[[CORRECT]]") is True and parse_verdict("no idea") is None
    exs = [Example.single(f"q{i}", f"ref {i}") for i in range(3)]
    replies = iter(["[[CORRECT]]", "[[INCORRECT]]", "hmm"])
    backend = FakeBackend(lambda msgs: next(replies))
    rows = grade_answers(backend, exs, [{"text": "a"}] * 3, "Q {question} R {reference} A {answer}")
    assert [r["correct"] for r in rows] == [True, False, None]
    assert "R ref 0" in backend.calls[0][0]["content"]
    s = summarize_grades({"base": rows, "tuned": rows})
    assert s["base"]["n"] == 2 and s["base"]["unparsed"] == 1 and s["paired"]["n"] == 2
