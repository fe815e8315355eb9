"""The shipped personal-finance demo data: format, size, separation, reproducibility, arithmetic."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import sftflow

DEMO = Path(sftflow.__file__).resolve().parent / "data" / "demo"
SCRIPT = DEMO / "build_demo_data.py"

HOUSE = re.compile(r"^Answer: .+\n\nDetails: .+", re.DOTALL)
HOUSE_STRICT = re.compile(r"^Answer: [^\n]+\n\nDetails: [^\n]+$")
HEDGE_START = re.compile(
    r"^(Answer: )?(I'?m sorry|I am sorry|Sorry|I apologi[sz]e|As an AI|I cannot|I can't|I'm unable|"
    r"It depends|I'm not a financial advisor|I am not a financial advisor|Unfortunately)", re.IGNORECASE)
HEDGE_ANYWHERE = re.compile(r"\b(sorry|apologi[sz]e|as an ai|it depends|not a financial advisor)\b", re.IGNORECASE)


def load(name: str) -> list[dict]:
    path = DEMO / name
    rows = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        row = json.loads(line)
        assert set(row) == {"messages"}, f"{name}:{i}: keys {sorted(row)}"
        rows.append(row)
    return rows


@pytest.fixture(scope="module")
def train() -> list[dict]:
    return load("train.jsonl")


@pytest.fixture(scope="module")
def validation() -> list[dict]:
    return load("validation.jsonl")


@pytest.fixture(scope="module")
def test_set() -> list[dict]:
    return load("test.jsonl")


@pytest.fixture(scope="module")
def train_tools() -> list[dict]:
    return load("train_tools.jsonl")


@pytest.fixture(scope="module")
def validation_tools() -> list[dict]:
    return load("validation_tools.jsonl")


@pytest.fixture(scope="module")
def heldout(validation, test_set) -> list[dict]:
    return validation + test_set


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_demo_data", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def users(row: dict) -> list[str]:
    return [m["content"] for m in row["messages"] if m["role"] == "user"]


def answers(row: dict) -> list[dict]:
    """The assistant turns that answer in words (not the ones that only call a tool)."""
    return [m for m in row["messages"] if m["role"] == "assistant" and not m.get("tool_calls")]


def assistants(rows: list[dict]) -> list[str]:
    return [m["content"] for r in rows for m in answers(r)]


def exchanges(rows: list[dict]) -> list[tuple[str, str]]:
    """(user, final answer) pairs, every exchange of every conversation; tool turns skipped."""
    out = []
    for r in rows:
        msgs = [m for m in r["messages"] if m["role"] in ("user", "assistant") and not m.get("tool_calls")]
        out += [(msgs[i]["content"], msgs[i + 1]["content"]) for i in range(0, len(msgs), 2)]
    return out


def money(text: str) -> float:
    return float(text.replace("$", "").replace(",", ""))


# --- size and shape ---------------------------------------------------------------

def test_validation_and_test_share_no_question(validation, test_set):
    assert len(validation) >= 30 and len(test_set) >= 60
    # First questions are distinct; a short follow-up ("How about after 12 years?") may recur.
    assert not {users(r)[0] for r in validation} & {users(r)[0] for r in test_set}


def test_counts_two_turn_share_and_system_prompts(train, heldout):
    assert len(train) >= 320
    assert len(heldout) >= 60
    for rows in (train, heldout):
        two_turn = sum(len(users(r)) == 2 for r in rows)
        assert 0.07 <= two_turn / len(rows) <= 0.15
        assert all(len(users(r)) in (1, 2) for r in rows)
        with_system = sum(r["messages"][0]["role"] == "system" for r in rows)
        assert 0 < with_system < len(rows)


def test_roles_alternate_and_end_with_assistant(train, heldout):
    for rows in (train, heldout):
        for r in rows:
            roles = [m["role"] for m in r["messages"] if m["role"] != "tool" and not m.get("tool_calls")]
            if roles[0] == "system":
                roles = roles[1:]
            assert roles == ["user", "assistant"] * (len(roles) // 2) and roles, roles
            assert all(isinstance(m["content"], str) and m["content"].strip() for m in r["messages"]
                       if not m.get("tool_calls"))


def test_every_assistant_turn_is_house_format_and_short(train, heldout):
    texts = assistants(train) + assistants(heldout)
    assert len(texts) > 400
    for t in texts:
        assert HOUSE.match(t), t
        assert HOUSE_STRICT.match(t), t
        assert 25 <= len(t.split()) <= 70, (len(t.split()), t)


def test_no_assistant_turn_opens_with_or_contains_a_hedge(train, heldout):
    for t in assistants(train) + assistants(heldout):
        body = t.removeprefix("Answer: ")
        assert not HEDGE_START.match(t) and not HEDGE_START.match(body), t
        assert not HEDGE_ANYWHERE.search(t), t


def test_hedge_patterns_do_catch_hedges():
    assert HEDGE_START.match("Answer: I'm sorry, I can't help with that.")
    assert HEDGE_START.match("As an AI, I cannot give advice.")
    assert HEDGE_ANYWHERE.search("Answer: It depends on your situation.")
    assert not HOUSE.match("Answer: yes.\nDetails: no blank line")


# --- tool use ----------------------------------------------------------------------

def tool_uses(row: dict):
    """(call arguments, tool result, final answer) for each calculate call in a conversation."""
    msgs = row["messages"]
    for i, m in enumerate(msgs):
        if m.get("tool_calls"):
            (call,) = m["tool_calls"]
            result, final = msgs[i + 1], msgs[i + 2]
            assert call["function"]["name"] == "calculate" and m["content"] == ""
            assert result["role"] == "tool" and result["tool_call_id"] == call["id"]
            assert final["role"] == "assistant" and not final.get("tool_calls")
            yield call["function"]["arguments"], result["content"], final["content"]


def test_computed_answers_call_the_calculator_and_quote_its_result(train_tools, validation_tools, train,
                                                                   validation, test_set):
    from sftflow.tools import calculate
    uses = [u for r in train_tools for u in tool_uses(r)]
    assert len(uses) >= 240                      # nearly every computed training answer
    assert sum(1 for r in validation_tools for _ in tool_uses(r)) >= 25
    for plain in (train, validation, test_set):  # the plain files are asked and answered directly
        assert not any(True for r in plain for _ in tool_uses(r))
    # the tool files are the plain conversations with the tool turns added
    strip = [{"messages": [m for m in r["messages"] if m["role"] != "tool" and not m.get("tool_calls")]}
             for r in train_tools]
    assert strip == train
    for args, result, final in uses:
        assert set(args) == {"expression", "round_to"}
        assert calculate(args["expression"], round_to=args["round_to"]) == result
        assert result in final, (result, final)
        assert HOUSE_STRICT.match(final)


# Numbers a calculation may use without the conversation stating them: percent, months per
# year, compounding periods per year, the 50/30/20 shares, the rule of 72, and ones.
CONSTANTS = {"1", "2", "4", "12", "52", "100", "365", "72", "0.5", "0.3", "0.2"}


def test_expressions_copy_the_numbers_the_conversation_states(train_tools):
    """Every figure in a call is copied as the user wrote it (5.25% is ``5.25 / 100``, 15 years
    ``15 * 12``): the model never converts or works out a number before calling the tool."""
    checked = follow_ups = 0
    for r in train_tools:
        msgs = r["messages"]
        for i, m in enumerate(msgs):
            if not m.get("tool_calls"):
                continue
            users = [x["content"] for x in msgs[:i] if x["role"] == "user"]
            stated = {float(x.replace(",", "")) for u in users for x in re.findall(r"\d[\d,]*(?:\.\d+)?", u)}
            expr = m["tool_calls"][0]["function"]["arguments"]["expression"]
            numbers = re.findall(r"\d+(?:\.\d+)?", expr)
            assert all(float(n) in stated or n in CONSTANTS for n in numbers), (users, expr)
            checked += 1
            follow_ups += len(users) > 1
    assert checked >= 280 and follow_ups >= 20


# --- duplicates and held-out separation -------------------------------------------

def test_no_duplicates(train, heldout):
    for rows in (train, heldout):
        lines = [json.dumps(r, sort_keys=True) for r in rows]
        assert len(set(lines)) == len(lines)
    first_questions = [users(r)[0] for r in train + heldout]
    assert len(set(first_questions)) == len(first_questions)
    assert not {u for r in heldout for u in users(r)} & {u for r in train for u in users(r)}


def _grams(text: str, mask: bool = False) -> set[tuple[str, ...]]:
    text = text.lower()
    if mask:
        text = re.sub(r"\$?\d[\d,.]*%?", "<n>", text)
    w = text.split()
    return {tuple(w[i:i + 5]) for i in range(max(1, len(w) - 4))}


def _max_jaccard(heldout, train, mask=False) -> float:
    tr = [_grams(u, mask) for r in train for u in users(r)]
    best = 0.0
    for r in heldout:
        for u in users(r):
            g = _grams(u, mask)
            best = max([best] + [len(g & t) / len(g | t) for t in tr])
    return best


def test_heldout_user_messages_do_not_overlap_train(train, heldout):
    # Phrasing differs even with every number masked, so this also guards the wording.
    assert _max_jaccard(heldout, train) <= 0.5
    assert _max_jaccard(heldout, train, mask=True) <= 0.5


def test_overlap_check_detects_a_near_copy(train):
    long_question = next(u for r in train for u in users(r) if len(u.split()) >= 12)
    copy = {"messages": [{"role": "user", "content": long_question + " Thanks!"},
                         {"role": "assistant", "content": "x"}]}
    assert _max_jaccard([copy], train) > 0.5


def test_conceptual_questions_are_distinct_and_whole_ones_are_held_out(train, heldout, builder):
    assert len(builder.CONCEPTS) >= 80
    # Each concept is answered exactly once, in its own split (the second concept of a
    # two-turn pair is asked with follow-up wording, so match on the answer).
    train_answers, held_answers = assistants(train), assistants(heldout)
    held_ids = set(builder.HELDOUT_CONCEPTS)
    assert len(held_ids) >= 10
    answers = set()
    for cid, (_, answer, details) in builder.CONCEPTS.items():
        text = f"Answer: {answer}\n\nDetails: {details}"
        answers.add(text)
        where = held_answers if cid in held_ids else train_answers
        other = train_answers if cid in held_ids else held_answers
        assert where.count(text) == 1, cid
        assert text not in other, cid
    assert len(answers) == len(builder.CONCEPTS)
    first_questions = {users(r)[0] for r in train + heldout}
    assert sum(q in first_questions for q, _, _ in builder.CONCEPTS.values()) >= 80


# --- training wordings --------------------------------------------------------------

# sha256 of json.dumps([every user message, in file order]): the held-out questions are fixed,
# so results on them stay comparable however the training wordings change.
TEST_PROMPTS_SHA256 = "491b5ccf70659c344f400f43ce29493eeafcb74fb443f13ca968e6e1a411a8dc"
VALIDATION_PROMPTS_SHA256 = "65d9466457cc080d2e5e7e7370adcecc7782fecbe139e1ad2d4800aafe561afa"


def _prompts_sha(rows: list[dict]) -> str:
    import hashlib
    return hashlib.sha256(json.dumps([u for r in rows for u in users(r)]).encode()).hexdigest()


def test_heldout_prompts_are_pinned(test_set, validation):
    assert _prompts_sha(test_set) == TEST_PROMPTS_SHA256
    assert _prompts_sha(validation) == VALIDATION_PROMPTS_SHA256
    altered = [dict(test_set[0], messages=[dict(m, content=m["content"] + " ") for m in test_set[0]["messages"]])]
    assert _prompts_sha(altered + test_set[1:]) != TEST_PROMPTS_SHA256


def _wording(builder):
    """A question reduced to its phrasing: opener dropped, numbers and slot words (compounding
    frequency, goal, product, currency) masked, so only a different sentence counts as new."""
    slots = {*builder.FREQS, *builder.FREQ_NOUN.values(), *builder.GOALS, *builder.PRODUCTS,
             *(c for row in builder.CURRENCIES for c in row[:2])}
    slot = re.compile(r"\b(" + "|".join(map(re.escape, sorted(slots, key=len, reverse=True))) + r")\b")
    openers = sorted(filter(None, builder.OPENERS), key=len, reverse=True)

    def wording(question: str) -> str:
        for o in openers:
            if question.startswith(o):
                question = question[len(o):]
                break
        question = re.sub(r"\b(an?) <w>", "a <w>", slot.sub("<w>", question))
        return builder.NUMBER.sub("<n>", question)
    return wording


def test_every_computed_kind_is_trained_in_many_wordings(builder, train_tools):
    labelled, _, _ = builder.build_labelled()
    assert [ex for _, ex in labelled] == train_tools          # the kinds belong to the shipped rows
    wording = _wording(builder)
    per_kind: dict[str, set[str]] = {}
    for kind, ex in labelled:
        per_kind.setdefault(kind, set()).add(wording(users(ex)[0]))
    for kind in builder.KINDS:
        assert len(per_kind[kind]) >= 12, (kind, sorted(per_kind[kind]))
    # the reduction does merge questions that differ only in numbers, slot words or opener
    assert wording("Hi! $1,000 at 5%, compounded monthly?") == wording("$2,500 at 4.5%, compounded quarterly?")


AUTO_RATES = {3.9, 4.9, 5.5, 5.9, 6.5, 6.9, 7.4, 7.9, 8.9, 9.9}


def _sub_case(kind: str, key: tuple) -> str:
    """The sub-case of a computed example, read from its key (what demo_calculations reads)."""
    if kind == "loan_payment":
        return "mortgage" if key[2] >= 180 else "auto" if key[1] in AUTO_RATES else "personal"
    if kind in ("apr_apy", "rule_of_72"):
        return key[2]
    if kind == "budget_50_30_20":
        return key[1]
    if kind == "currency_conversion":
        return "fee" if key[4] else "no fee"
    if kind == "percentage_tip_fee":
        return key[1] if key[1] != "tip" else "tip alone" if key[3] == 1 else "tip split"
    if kind == "inflation":
        return key[3]
    if kind == "emergency_fund":
        return "months" if key[2] == "months" else "gap"
    if kind == "break_even":
        return "units" if isinstance(key[1], float) else "refinance"
    if kind == "dividend_yield":
        return {True: "quarterly", False: "annual"}[key[3]] if isinstance(key[3], bool) else "shares"
    return ""


def test_every_sub_case_and_follow_up_has_many_training_wordings(builder):
    import random
    wording = _wording(builder)
    rng = random.Random(7)
    firsts: dict[tuple[str, str], set[str]] = {}
    follows: dict[str, set[str]] = {}
    for kind, make in builder.KINDS.items():
        for _ in range(2000):
            key, question, _, follow = make(rng, "train", True)
            firsts.setdefault((kind, _sub_case(kind, key)), set()).add(wording(question))
            if follow:
                follows.setdefault(kind, set()).add(wording(follow[0]))
    assert len(firsts) == 30 and len(follows) == 8
    for case, seen in {**firsts, **follows}.items():
        assert len(seen) >= 12, (case, sorted(seen))
    # held-out wordings stay the few fixed ones
    held = {wording(builder.KINDS["compound_interest"](rng, "heldout", False)[1]) for _ in range(200)}
    assert len(held) == 2


# --- reproducibility --------------------------------------------------------------

def test_files_are_exactly_what_the_script_generates(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                          capture_output=True, text=True, check=True)
    assert "5-gram Jaccard" in proc.stdout
    for name in ("train.jsonl", "validation.jsonl", "test.jsonl", "train_tools.jsonl", "validation_tools.jsonl"):
        assert (tmp_path / name).read_bytes() == (DEMO / name).read_bytes(), name


# --- arithmetic, recomputed here ----------------------------------------------------

def test_loan_payments_follow_the_amortisation_formula(train, heldout):
    pat = re.compile(r"P = (\$[\d,]+), r = ([\d.]+)%/12 and n = (\d+) payments gives (\$[\d,.]+)\. "
                     r"Over the full term you pay (\$[\d,.]+), including (\$[\d,.]+) of interest")
    checked = 0
    for q, a in exchanges(train + heldout):
        m = pat.search(a)
        if not m:
            continue
        P, rate, n = money(m[1]), float(m[2]) / 1200, int(m[3])
        payment = P * rate * (1 + rate) ** n / ((1 + rate) ** n - 1)
        assert money(m[4]) == pytest.approx(payment, abs=0.006), a
        assert money(m[5]) == pytest.approx(money(m[4]) * n, abs=0.01), a
        assert money(m[6]) == pytest.approx(money(m[5]) - P, abs=0.01), a
        assert "Answer: The monthly" in a and m[4] + "." in a.split("\n")[0]
        checked += 1
    assert checked >= 15


def test_a_known_mortgage_payment():
    # $300,000 at 6% over 30 years is $1,798.65 a month (published amortisation tables).
    rate = 0.06 / 12
    assert round(300000 * rate * (1 + rate) ** 360 / ((1 + rate) ** 360 - 1), 2) == 1798.65


def test_compound_interest_balances(train, heldout):
    pat = re.compile(r"with P = ([\d,]+), r = ([\d.]+), m = (\d+) and t = (\d+)\. .* = (\$[\d,.]+), "
                     r"of which (\$[\d,.]+) is interest")
    checked = 0
    for q, a in exchanges(train + heldout):
        m = pat.search(a)
        if not m:
            continue
        P, r, k, t = money(m[1]), float(m[2]), int(m[3]), int(m[4])
        A = P * (1 + r / k) ** (k * t)
        assert money(m[5]) == pytest.approx(A, abs=0.006), a
        assert money(m[6]) == pytest.approx(money(m[5]) - P, abs=0.001), a
        checked += 1
    assert checked >= 15


def test_credit_card_month(train, heldout):
    pat = re.compile(r"Interest = (\$[\d,]+) \* ([\d.]+) / 12 = (\$[\d,.]+)\. .*: "
                     r"\$[\d,]+ \+ \$[\d,.]+ - (\$[\d,]+) = (\$[\d,.]+)\.")
    checked = 0
    for q, a in exchanges(train + heldout):
        m = pat.search(a)
        if not m:
            continue
        B, apr, interest, pay, new = money(m[1]), float(m[2]), money(m[3]), money(m[4]), money(m[5])
        assert interest == pytest.approx(B * apr / 12, abs=0.006), a
        assert new == pytest.approx(B + interest - pay, abs=0.001), a
        assert m[1] in q and m[4] in q
        checked += 1
    assert checked >= 15


def test_debt_to_income_and_rule_of_72(train, heldout):
    dti = re.compile(r"Monthly debts total ([\d, +]+) = (\$[\d,]+)\. .*?(\$[\d,]+) / (\$[\d,]+) = ([\d.]+)%")
    r72 = re.compile(r"72 / ([\d.]+) = ([\d.]+) years")
    n_dti = n_72 = 0
    for q, a in exchanges(train + heldout):
        if m := dti.search(a):
            parts = [float(x.replace(",", "")) for x in m[1].split(" + ")]
            assert sum(parts) == money(m[2]) == money(m[3]), a
            assert float(m[5]) == pytest.approx(money(m[3]) / money(m[4]) * 100, abs=0.051), a
            n_dti += 1
        if m := r72.search(a):
            assert float(m[2]) == pytest.approx(72 / float(m[1]), abs=0.051), a
            n_72 += 1
    assert n_dti >= 15 and n_72 >= 10


def test_apy_and_currency_conversions(train, heldout):
    apy = re.compile(r"APY = \(1 \+ APR/m\)\^m - 1 = \(1 \+ ([\d.]+)/(\d+)\)\^\d+ - 1 = [\d.]+, or ([\d.]+)%")
    fx = re.compile(r"Multiply the amount by the rate: ([\d,]+) \* ([\d.]+) = ([\d,.]+) ([A-Z]{3})")
    n_apy = n_fx = 0
    for q, a in exchanges(train + heldout):
        if m := apy.search(a):
            r, k = float(m[1]), int(m[2])
            assert float(m[3]) == pytest.approx(((1 + r / k) ** k - 1) * 100, abs=0.0051), a
            n_apy += 1
        if m := fx.search(a):
            amount, rate = float(m[1].replace(",", "")), float(m[2])
            assert float(m[3].replace(",", "")) == pytest.approx(amount * rate, abs=0.006), a
            assert m[2] in q or m[2] in a
            n_fx += 1
    assert n_apy >= 5 and n_fx >= 15
