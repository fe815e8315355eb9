"""Build the personal-finance demo dataset that ships with sftflow.

Writes ``train.jsonl``, ``validation.jsonl`` and ``test.jsonl`` (OpenAI ``messages``
format) next to this script, or into ``--out``, and ``train_tools.jsonl`` /
``validation_tools.jsonl``: the same conversations where each computed answer is first
worked out with a ``calculate`` tool call (the expression built from the question's
numbers, see ``demo_calculations.py``), the tool's result comes back as a ``tool`` turn,
and the final answer quotes it. Validation and test use question
templates and amounts that training never sees; validation chooses checkpoints, test
reports. Their amounts are disjoint from each other too, and their conceptual
questions are different ones. Every assistant turn follows the house format::

    Answer: <one sentence with the key number or fact>

    Details: <2-3 short sentences: the arithmetic, the rule, or the steps>

Arithmetic examples are computed here, so every number in them is correct; the
conceptual answers are written by hand. The build is deterministic (fixed seed,
standard library only): rerunning it reproduces the shipped files byte for byte.

    python src/sftflow/data/demo/build_demo_data.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import sys
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from demo_calculations import expression, tool_result  # noqa: E402  (next to this script)

SEED = 20261123
TRAIN_PER_KIND = 40
VALIDATION_PER_KIND = 2
TEST_PER_KIND = 4
FOLLOWUP_EVERY = 4          # every 4th example of a kind with follow-ups is two-turn
SYSTEM_PROMPT_SHARE = 0.25
MIN_WORDS, MAX_WORDS = 25, 70
MAX_HELDOUT_JACCARD = 0.5

HOUSE_FORMAT = re.compile(r"^Answer: [^\n]+\n\nDetails: [^\n]+$")
HEDGES = re.compile(
    r"\b(sorry|apologi[sz]e|as an ai|i cannot|i can't|it depends|not a financial advisor|"
    r"consult a|unfortunately)\b", re.IGNORECASE)

SYSTEM_PROMPTS = [
    "You are Ledger, the assistant of Northwind Bank.",
    "You are Penny, a personal-finance assistant for Harbor Credit Union.",
    "You are the Northwind Bank help assistant. Answer banking and money questions.",
    "You are Atlas, the budgeting assistant in the Brightpath money app.",
    "You help customers of Summit Savings with their money questions.",
    "You are a concise personal-finance assistant.",
]


# ---------------------------------------------------------------------------
# formatting helpers
# ---------------------------------------------------------------------------

def money(x: float) -> str:
    """Dollars with cents, rounded half-up on the cent (what a bank statement shows)."""
    cents = math.floor(abs(x) * 100 + 0.5 + 1e-9)
    sign = "-" if x < 0 else ""
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def cents(x: float) -> float:
    return math.floor(x * 100 + 0.5 + 1e-9) / 100


def dollars(x: float) -> str:
    """Whole-dollar amount as people write it in a question."""
    return f"${x:,.0f}"


def num(x: float, places: int = 4) -> str:
    """A plain number without trailing zeros: 6.50 -> 6.5, 5.0 -> 5."""
    s = f"{x:,.{places}f}"
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


def pct(x: float) -> str:
    return num(x, 2) + "%"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def reply(answer: str, details: str) -> str:
    return f"Answer: {answer}\n\nDetails: {details}"


# Training wordings are composed: a template (one of many per kind and sub-case), each
# ``[a|b|c]`` group in it replaced by one alternative, and sometimes an opener in front, so the
# model meets each kind in many phrasings and learns to recognise the kind, not a sentence.
# Held-out wordings are fixed lists, drawn with a single ``rng.choice`` as they always were, so
# adding training wordings never changes validation or test.
ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")
OPENERS = ["", "", "", "", "", "", "", "", "Quick question: ", "Hi! ", "Hello. ", "Can you help me with a money question? ",
           "Help me with some numbers. ", "I need a quick calculation. ", "Hey! ", "Please help. "]


def vary(rng: random.Random, template: str) -> str:
    """The template with each ``[a|b|c]`` group replaced by one of its alternatives."""
    return ALTERNATIVES.sub(lambda m: rng.choice(m[1].split("|")), template)


def compose(rng: random.Random, template: str, opener: bool = True) -> str:
    text = vary(rng, template)
    return (rng.choice(OPENERS) + text) if opener else text


def ask(rng: random.Random, split: str, train: list[str], heldout: list[str], opener: bool = True) -> str:
    """A question template for ``split``: a held-out one exactly as listed, or a composed training one."""
    if split != "train":
        return rng.choice(heldout)
    return compose(rng, rng.choice(train), opener)


FREQS = {"monthly": 12, "quarterly": 4, "annually": 1}
FREQ_NOUN = {"monthly": "monthly", "quarterly": "quarterly", "annually": "annual", "daily": "daily"}


# ---------------------------------------------------------------------------
# computed kinds: each returns (key, question, answer, followup-or-None)
#   key: the numbers that define the example (key[0] is its main amount)
#   followup: (question, answer) for a second turn, built when asked
# Train and held-out use disjoint question templates; held-out main amounts are
# never reused in training.
# ---------------------------------------------------------------------------

Kind = Callable[[random.Random, str, bool], tuple]


def compound(rng, split, want_followup):
    P = rng.randrange(2000, 60001, 500)
    r = rng.choice([2, 2.5, 3, 3.25, 3.5, 4, 4.25, 4.5, 4.75, 5, 5.25, 5.5, 6, 6.5, 7])
    n = rng.randint(2, 25)
    freq = rng.choice(list(FREQS))
    m = FREQS[freq]
    t = ask(rng, split, train=[
        "If I [deposit|invest|put away|save] {P} at {r} [interest|a year|annual interest] compounded {f} for {n} years, "
        "[how much will I have|what will I end up with|what's the final balance]?",
        "How much will {P} grow to in {n} years at {r} a year, compounded {f}?",
        "I have {P} in a [savings account|CD|high-yield account|money market account] paying {r} compounded {f}. "
        "[What's the balance|How much will be in it|What will it hold] after {n} years?",
        "What is the future value of {P} invested for {n} years at an annual rate of {r} with {fn} compounding?",
        "{P} @ {r}, {n} yrs, compounded {f} -> [balance|final amount|total]?",
        "[My grandma left me|I inherited|I got a bonus of|I just sold my car for] {P} and [I'm putting it|it's going] "
        "into an account [earning|that pays] {r}, compounded {f}. What will it [be worth|have grown to] after {n} years?",
        "[Principal|Starting amount|Initial deposit] {P}, rate {r} per year, [compounding|compounded] {f}, "
        "[term|time] {n} years. [Final amount|Ending value|Balance at the end]?",
        "Suppose I leave {P} [untouched|alone] for {n} years in an account that compounds {f} at {r}. "
        "[How much will be there|What's the total]?",
        "[Compound interest question|Compounding question]: {P} [at|earning] {r} for {n} years with interest added {f}. "
        "[What's the ending balance|How much do I have at the end]?",
        "[Can you work out|Please calculate|Figure out] the balance of a {P} deposit after {n} years at {r}, compounded {f}.",
        "At {r} compounded {f}, what does a {P} [deposit|investment|nest egg] turn into over {n} years?",
        "I'm [opening|starting] a [CD|savings account] with {P}. It pays {r} with {fn} compounding. "
        "[What will I have|How much will it be worth] in {n} years?",
        "{n} years, {r} [a year|annually], compounded {f}, {P} to start: [what's the result|how much at the end]?",
        "If {P} earns {r} compounded {f}, [what's it worth|how much is it] after {n} years?",
        "How much money will I have in {n} years if I invest {P} today at {r} with {fn} compounding?",
    ], heldout=[
        "My deposit of {P} earns {r} with {fn} compounding. What will it be worth {n} years from now?",
        "Calculate the ending balance: {P} principal, {r} annual interest, {fn} compounding, {n}-year horizon.",
    ])
    q = t.format(P=dollars(P), r=pct(r), f=freq, fn=FREQ_NOUN[freq], n=n)

    def explain(years):
        A = P * (1 + r / 100 / m) ** (m * years)
        return reply(
            f"{dollars(P)} at {pct(r)} compounded {freq} grows to {money(A)} after {years} years.",
            f"Use A = P * (1 + r/m)^(m*t) with P = {P:,}, r = {num(r / 100)}, m = {m} and t = {years}. "
            f"That is {P:,} * (1 + {num(r / 100)}/{m})^{m * years} = {money(A)}, "
            f"of which {money(cents(A) - P)} is interest.")

    follow = None
    if want_followup:
        n2 = n + rng.randint(3, 10)
        fq = ask(rng, split, train=[
            "And what if I leave it for {n2} years instead?", "How about after {n2} years?", "What about {n2} years?",
            "And if I [wait|hold on] {n2} years?", "Same thing but for {n2} years?",
            "What would it [be|grow to] after {n2} years?", "Now [try|do] {n2} years.", "[OK, and|And] over {n2} years?",
            "If I kept it there {n2} years, how much then?", "Run it for {n2} years instead.",
            "What's the balance at the {n2}-year mark?", "How much after {n2} years at the same rate?",
        ], heldout=["Suppose the money stays put for {n2} years. Then what?"], opener=False)
        follow = (fq.format(n2=n2), explain(n2), (P, r, n2, m))
    return (P, r, n, m), q, explain(n), follow


def simple_interest(rng, split, want_followup):
    P = rng.randrange(500, 25001, 250)
    r = rng.choice([2, 3, 3.5, 4, 4.5, 5, 6, 7, 7.5, 8, 9, 10, 12])
    t = rng.randint(1, 10)
    t_s = plural(t, "year")
    q = ask(rng, split, train=[
        "How much simple interest does {P} earn at {r} per year over {t}?",
        "I borrowed {P} from [a relative|a friend|my brother|my parents] at {r} simple interest for {t}. "
        "How much interest do I owe?",
        "What's the simple interest on a {P} loan at {r} annually for {t}?",
        "Calculate simple interest: principal {P}, rate {r} per year, time {t}.",
        "{P} at {r} [simple|simple interest], {t} -> [interest|how much interest]?",
        "[A bond|A note|An IOU] for {P} pays {r} [flat|simple] interest a year. What does it pay [in total |]over {t}?",
        "If interest doesn't compound, how much does {P} earn at {r} a year in {t}?",
        "[My uncle|A coworker|My neighbor] owes me {P} plus {r} a year in [simple|non-compounding] interest for {t}. "
        "How much interest is that?",
        "What is the [flat|simple] interest on {P} for {t} at a rate of {r} [a year|per annum]?",
        "Non-compounding interest: {P} borrowed at {r} per year for {t}. [Interest due|How much interest]?",
        "I lent {P} [to a friend |]at {r} simple interest. After {t}, how much interest [have I earned|is owed to me]?",
        "Simple interest, {r} [a year|annual rate], {P} principal, {t}: [what's the interest|what do I earn]?",
        "[Using|With] simple interest, what does a {P} loan at {r} cost over {t}?",
        "{t} of simple interest at {r} on {P}: how much is that?",
    ], heldout=[
        "A friend lends me {P} at {r} a year, simple interest, repaid after {t}. What do I pay back in total?",
        "Over a period of {t}, what interest accrues on {P} with a {r} simple annual rate?",
    ]).format(P=dollars(P), r=pct(r), t=t_s)
    interest = P * r / 100 * t
    ans = reply(
        f"The simple interest is {money(interest)}, so the total repaid is {money(P + interest)}.",
        f"Simple interest is I = P * r * t = {P:,} * {num(r / 100)} * {t} = {money(interest)}. "
        f"Interest accrues only on the original principal, so it is the same {money(P * r / 100)} every year.")
    return (P, r, t), q, ans, None


def loan_payment(rng, split, want_followup):
    sub = rng.choice(["mortgage", "mortgage", "auto", "personal"])
    if sub == "mortgage":
        P = rng.randrange(150000, 750001, 5000)
        rate = rng.choice([4.5, 4.75, 5, 5.25, 5.5, 5.75, 6, 6.25, 6.5, 6.75, 7, 7.25, 7.5])
        years = rng.choice([15, 20, 30])
        n = years * 12
        t = ask(rng, split, train=[
            "What's the monthly payment on a {P} mortgage at {r} for {y} years?",
            "I'm buying a [home|house|condo] with a {P} loan at {r} fixed over {y} years. How much will I pay each month?",
            "Calculate the monthly mortgage payment: {P} borrowed, {r} interest, {y}-year term.",
            "{P} mortgage, {r}, {y} years -> monthly payment?",
            "If I [take out|get] a {y}-year mortgage for {P} at {r}, what's my monthly payment?",
            "[Our bank|The lender|The bank] [offered|quoted] us {r} on a {P} mortgage [over|for] {y} years. "
            "What [will the monthly payment be|would we pay monthly]?",
            "Mortgage question: I need to borrow {P} for {y} years and the rate is {r}. "
            "[Monthly payment|What's the payment each month]?",
            "[Can you figure out|Please work out|What is] the monthly payment on a {P}, {y}-year fixed mortgage at {r}?",
            "We're [looking at|thinking about] a house and would borrow {P} at {r} for {y} years. "
            "What [would our monthly payment be|does that come to each month]?",
            "At {r} over {y} years, what does a {P} mortgage cost [each month|monthly|per month]?",
            "[Monthly mortgage payment for|Payment on] {P} at {r}, {y}-year term?",
            "How much would I pay every month on a {P} [home loan|mortgage] with a {r} rate and a {y}-year term?",
        ], heldout=[
            "Monthly cost of a {y}-year fixed home loan for {P} at a {r} rate?",
            "We're closing on a house with {P} financed at {r} for {y} years. What's the monthly principal and interest?",
        ])
    else:
        if sub == "auto":
            P = rng.randrange(12000, 45001, 500)
            rate = rng.choice([3.9, 4.9, 5.5, 5.9, 6.5, 6.9, 7.4, 7.9, 8.9, 9.9])
        else:
            P = rng.randrange(3000, 25001, 500)
            rate = rng.choice([7.5, 8.99, 9.5, 10.99, 11.5, 12.99, 14.5, 15.99, 17.5])
        n = rng.choice([24, 36, 48, 60, 72] if sub == "auto" else [24, 36, 48, 60])
        years = None
        t = ask(rng, split, train={
            "auto": [
                "How much is the monthly payment on a {P} car loan at {r} APR for {m} months?",
                "If I finance {P} for a car over {m} months at {r}, what's my payment?",
                "{P} auto loan, {r} APR, {m} months -> monthly payment?",
                "[The dealer|The dealership|My credit union] [offered|quoted] me {r} on a {P} car loan for {m} months. "
                "What's the monthly payment?",
                "I'm buying a [used|new] [car|truck|SUV] and [borrowing|financing] {P} at {r} over {m} months. "
                "How much per month?",
                "What's the payment each month on a {m}-month auto loan of {P} at {r}?",
                "Car loan: {P} at {r} for {m} months. [Monthly payment|What will I pay each month]?",
                "How much will I pay [monthly|every month] for a {P} vehicle loan at {r} APR over {m} months?",
                "[Please calculate|Work out|Calculate] my car payment: {P} financed, {r} interest, {m}-month term.",
                "At {r} APR for {m} months, what does a {P} car loan cost per month?",
                "My new [car|ride] costs {P} after the trade-in, financed at {r} for {m} months. "
                "[What's the payment|How much a month]?",
                "Monthly payment for an auto loan of {P}, {m} months, {r}?",
            ],
            "personal": [
                "I want a {P} personal loan at {r} for {m} months. What would the monthly payment be?",
                "What does a {m}-month personal loan of {P} at {r} APR cost per month?",
                "{P} personal loan @ {r}, {m} months -> payment?",
                "I'm [consolidating debt|paying for a wedding|covering medical bills|redoing my kitchen] with a {P} "
                "personal loan at {r} over {m} months. What's the monthly payment?",
                "The bank approved [me for |]a {P} personal loan at {r} for {m} months. How much is each monthly payment?",
                "How much per month to repay a {P} personal loan at {r} over {m} months?",
                "Personal loan: {P} borrowed, {r} APR, {m}-month term. [Monthly payment|Payment per month]?",
                "[Calculate|Work out|Figure out] the monthly payment on a {P} [personal|signature] loan, {r} interest, "
                "{m} months.",
                "If I borrow {P} as a personal loan at {r} and repay it over {m} months, what's my payment?",
                "What's the monthly cost of a {P} loan from [an online lender|my bank|a credit union] at {r} for {m} months?",
                "At {r} for {m} months, how much is a {P} personal loan each month?",
                "[A lender|An online lender] offers me {P} at {r} APR, {m} monthly payments. What's each payment?",
            ]}[sub], heldout={
            "auto": ["My lender approved {P} at {r} over {m} months for a used car. What will each installment be?"],
            "personal": ["Borrowing {P} unsecured at {r}, paid back across {m} months: size of each installment?"],
        }[sub])
    q = t.format(P=dollars(P), r=pct(rate), y=years, m=n)

    def explain(n_pay):
        i = rate / 100 / 12
        M = cents(P * i * (1 + i) ** n_pay / ((1 + i) ** n_pay - 1))
        total = M * n_pay
        what = "monthly principal-and-interest payment" if sub == "mortgage" else "monthly payment"
        return reply(
            f"The {what} is {money(M)}.",
            f"Using M = P*r*(1+r)^n / ((1+r)^n - 1) with P = {dollars(P)}, r = {pct(rate)}/12 and "
            f"n = {n_pay} payments gives {money(M)}. Over the full term you pay {money(total)}, "
            f"including {money(total - P)} of interest.")

    follow = None
    if want_followup and sub == "mortgage":
        y2 = rng.choice([y for y in (15, 20, 30) if y != years])
        fq = ask(rng, split, train=[
            "What would it be on a {y2}-year term at the same rate?", "And if I took a {y2}-year loan instead?",
            "What about a {y2}-year term?", "How does a {y2}-year mortgage compare?", "And with {y2} years?",
            "Same loan over {y2} years?", "What if we chose {y2} years instead?", "[OK, now|Now] a {y2}-year term?",
            "What's the payment on a {y2}-year version?", "Could you redo it for {y2} years?",
            "How much each month if the term is {y2} years?", "If I switch to {y2} years, what's the payment?",
        ], heldout=["Stretch or shrink that to {y2} years at the identical rate: new figure?"], opener=False)
        follow = (fq.format(y2=y2), explain(y2 * 12), (P, rate, y2 * 12))
    return (P, rate, n), q, explain(n), follow


def apr_apy(rng, split, want_followup):
    freq = rng.choice(["monthly", "monthly", "daily", "quarterly"])
    m = {"monthly": 12, "daily": 365, "quarterly": 4}[freq]
    if rng.random() < 0.7:
        saver_rates = [1.5, 2, 2.75, 3.5, 4, 4.25, 4.5, 4.75, 5, 5.25, 6]
        card_rates = [12, 15.99, 18, 19.99, 22.99, 24, 26.99]
        both = saver_rates + card_rates
        t, pool = rng.choice({
            "train": [
                ("Convert {r} APR compounded {f} to APY.", both),
                ("What is the APY on a savings account with a {r} interest rate compounded {f}?", saver_rates),
                ("My card charges {r} APR, compounded {f}. What's the effective annual rate?", card_rates),
                ("{r} APR, compounded {f} -> APY?", both),
                ("[My bank|The credit union|An online bank] pays {r} [interest|APR] compounded {f} on savings. "
                 "What APY is that?", saver_rates),
                ("What's the annual percentage yield of a {r} rate with {fn} compounding?", both),
                ("If a [CD|savings account|money market account] pays {r} compounded {f}, what is its APY?", saver_rates),
                ("How much does {r} [APR |]compounded {f} really earn in a year, as an APY?", saver_rates),
                ("[Turn|Change] a nominal {r} with {fn} compounding into an APY.", both),
                ("My credit card's APR is {r}, [compounded|charged] {f}. What's the [true|effective] yearly cost "
                 "as an APY?", card_rates),
                ("A store card [charges|has] {r} APR with {fn} compounding. What's the effective annual rate "
                 "[I pay|on a balance]?", card_rates),
                ("[APR to APY|Rate conversion]: {r}, compounded {f}. [Result|What's the APY]?", both),
                ("What APY do I get from {r} [interest |]compounded {f}?", both),
            ],
            "heldout": [
                ("A bank quotes {r} with {fn} compounding. What annual yield does that actually produce?", saver_rates),
                ("What effective yearly rate corresponds to a nominal {r} compounded {f}?", saver_rates + card_rates),
            ]}[split])
        if split == "train":
            t = compose(rng, t)
        r = rng.choice(pool)
        q = t.format(r=pct(r), f=freq, fn=FREQ_NOUN[freq])
        apy = ((1 + r / 100 / m) ** m - 1) * 100
        ans = reply(
            f"An APR of {pct(r)} compounded {freq} equals an APY of {apy:.2f}%.",
            f"APY = (1 + APR/m)^m - 1 = (1 + {num(r / 100)}/{m})^{m} - 1 = {apy / 100:.4f}, or {apy:.2f}%. "
            f"APY is higher than APR because interest earns interest during the year.")
        return (r, m, "apy"), q, ans, None
    y = rng.choice([3, 3.5, 4, 4.5, 5, 5.5, 6, 7, 8])
    q = ask(rng, split, train=[
        "What nominal APR, compounded {f}, gives an APY of {y}?",
        "Which APR with {fn} compounding works out to a {y} APY?",
        "APY {y}, compounded {f} -> APR?",
        "I want a {y} APY. What APR [do I need|does that take] if interest compounds {f}?",
        "Convert a {y} APY to the APR with {fn} compounding.",
        "[A bank advertises|The account shows|My CD lists] a {y} APY with {fn} compounding. "
        "What's the [underlying|nominal] APR?",
        "If the APY is {y} and interest is compounded {f}, what is the APR?",
        "What interest rate compounded {f} [produces|gives me] an annual percentage yield of {y}?",
        "[Back out|Work out|Find] the APR from a {y} APY, compounded {f}.",
        "APY to APR: {y} APY, {fn} compounding. [What's the APR|APR]?",
        "How high does the APR have to be, compounded {f}, for an APY of {y}?",
        "Going from APY to APR: {y} with {fn} compounding equals what APR?",
    ], heldout=[
        "To earn an effective {y} per year with {fn} compounding, what stated annual rate is needed?",
    ]).format(y=pct(y), f=freq, fn=FREQ_NOUN[freq])
    apr = m * ((1 + y / 100) ** (1 / m) - 1) * 100
    ans = reply(
        f"An APY of {pct(y)} with {FREQ_NOUN[freq]} compounding corresponds to an APR of {apr:.2f}%.",
        f"APR = m * ((1 + APY)^(1/m) - 1) = {m} * ((1 + {num(y / 100)})^(1/{m}) - 1) = {apr:.2f}%. "
        f"The APR is lower than the APY because compounding adds the difference.")
    return (y, m, "apr"), q, ans, None


GOALS = ["vacation", "new car", "home down payment", "wedding", "new laptop", "emergency fund",
         "holiday gifts", "home renovation", "moving costs", "tuition payment"]


def savings_goal(rng, split, want_followup):
    T = rng.randrange(1500, 40001, 100)
    S = rng.randrange(100, int(T * 0.6), 50)
    months = rng.randint(6, 48)
    goal = rng.choice(GOALS)
    a_goal = goal if goal.endswith("s") else ("an " if goal[0] in "aeiou" else "a ") + goal  # "moving costs"
    q = ask(rng, split, train=[
        "I want to save {T} for {ag} in {m} months. I have {S} saved. How much per month?",
        "How much do I need to set aside monthly to reach {T} in {m} months if I'm starting with {S}?",
        "My goal is {T} for {ag} by {m} months from now, starting from {S}. What monthly amount gets me there?",
        "I've saved {S} toward a {T} {g}. I have {m} months left. What should I save each month?",
        "Goal: {T} for {ag} in {m} months. Saved so far: {S}. [Monthly amount|How much a month]?",
        "{T} {g} goal, {S} saved, {m} months -> per month?",
        "I'm saving up for {ag}. It costs {T}, I've got {S}, and I [want it|need it] in {m} months. "
        "How much should I put aside each month?",
        "[We|My partner and I] need {T} for {ag} in {m} months and have {S} so far. "
        "What do we [need to save|have to save] per month?",
        "How much per month must I save to [go from|turn] {S} [to|into] {T} over {m} months?",
        "If I already have {S} and need {T} [for {ag} |]in {m} months, what's my monthly savings target?",
        "[Help me plan|Plan] my savings: {T} target, {S} in the bank, {m} months. "
        "[Monthly contribution?|What do I save each month?]",
        "With {S} already saved, how much do I save each month to have {T} [for {ag} |]in {m} months?",
        "[My|Our] {g} [budget is|needs] {T}. [I've|We've] saved {S} and have {m} months. [Monthly savings needed?|How much each month?]",
        "What monthly savings get me from {S} to {T} in {m} months?",
    ], heldout=[
        "Starting from {S}, what monthly deposit builds a {T} {g} fund within {m} months?",
        "{m} months to go, {S} already put away, {T} needed for the {g}: what's the monthly target?",
    ]).format(T=dollars(T), S=dollars(S), m=months, g=goal, ag=a_goal)

    def explain(mo):
        need = T - S
        per = need / mo
        return reply(
            f"Save {money(per)} a month to reach {dollars(T)} in {mo} months.",
            f"Subtract what you already have: {dollars(T)} - {dollars(S)} = {dollars(need)}. "
            f"Divide by {mo} months: {dollars(need)} / {mo} = {money(per)}. "
            f"Interest earned on the balance only puts you further ahead.")

    follow = None
    if want_followup:
        m2 = months + rng.choice([6, 12, 18, 24])
        fq = ask(rng, split, train=[
            "What if I give myself {m2} months instead?", "And over {m2} months?", "What about {m2} months?",
            "And if the deadline is {m2} months?", "How much per month over {m2} months instead?",
            "What if I [stretch|extend] it to {m2} months?", "Same goal, {m2} months?", "And with {m2} months to save?",
            "If I wait {m2} months, what's the monthly amount?", "Redo it for {m2} months.",
            "What would I save monthly across {m2} months?", "And spread over {m2} months?",
        ], heldout=["Push the deadline out to {m2} months: how does the figure change?"], opener=False)
        follow = (fq.format(m2=m2), explain(m2), (T, S, m2))
    return (T, S, months), q, explain(months), follow


def budget_503020(rng, split, want_followup):
    inc = rng.randrange(2200, 12001, 50)
    ask = rng.choice(["all", "all", "savings", "wants"])
    needs, wants, save = inc * 0.5, inc * 0.3, inc * 0.2
    templates = {
        ("train", "all"): [
            "Using the 50/30/20 rule, how should I split {I} of monthly take-home pay?",
            "My take-home pay is {I} a month. How much goes to needs, wants and savings under 50/30/20?",
            "{I} [take-home|net pay] a month -> 50/30/20 split?",
            "How does the 50/30/20 rule divide a {I} monthly [paycheck|income] after taxes?",
            "I [bring in|take home|clear] {I} a month after tax. [Using|With] 50/30/20, what goes to needs, wants "
            "and savings?",
            "Apply the 50/30/20 budget to {I} of [monthly |]net income.",
            "[Split|Divide] my {I} monthly take-home [pay |]using 50/30/20, please.",
            "What are the needs, wants and savings amounts for {I} a month under the 50/30/20 rule?",
            "[Budget help|Budgeting question]: after taxes I get {I} monthly. What's the 50/30/20 split?",
            "If my net pay is {I} per month, how much [goes|should go] to each part of a 50/30/20 budget?",
            "[My new job pays|I just started a job that pays|My paycheck comes to] {I} a month after taxes. "
            "How should I split it with 50/30/20?",
            "50/30/20 on {I} per month: [needs, wants, savings?|what are the three amounts?]",
        ],
        ("train", "savings"): [
            "How much should I save each month on a {I} net income if I follow 50/30/20?",
            "Under 50/30/20, what's my monthly savings amount on {I} take-home pay?",
            "{I} net monthly, 50/30/20 -> savings [amount|portion]?",
            "I take home {I} a month. How much goes to savings with the 50/30/20 rule?",
            "[Following|Using] the 50/30/20 rule with {I} a month after tax, how much should I [put into savings|save]?",
            "My net pay is {I} monthly. What's the savings part of a 50/30/20 budget?",
            "How much of a {I} monthly paycheck [goes to|belongs in] savings under 50/30/20?",
            "With 50/30/20 budgeting, what should someone with {I} [of net monthly income|take-home a month] save "
            "each month?",
            "[Savings target|Monthly savings] on a 50/30/20 budget if I [earn|clear] {I} a month after taxes?",
            "I clear {I} per month. By 50/30/20, what's my savings [share|amount]?",
            "If I budget {I} a month with 50/30/20, how much is the savings category?",
            "What do I [save|set aside] monthly on {I} take-home if I use the 50/30/20 rule?",
        ],
        ("train", "wants"): [
            "Under the 50/30/20 budget, what's my wants budget if I take home {I} monthly?",
            "How much can I spend on wants with {I} a month after taxes under 50/30/20?",
            "{I} take-home a month, 50/30/20 -> wants [budget|amount]?",
            "What's the wants [share|category] of a 50/30/20 budget on {I} of monthly net pay?",
            "[Using|Following] 50/30/20, how much of my {I} monthly paycheck is for [fun and extras|wants|dining out "
            "and hobbies]?",
            "My take-home pay is {I} monthly. What's the wants part under 50/30/20?",
            "How much is my wants spending under 50/30/20 if my after-tax income is {I} a month?",
            "What's my monthly budget for wants on {I} take-home with the 50/30/20 rule?",
            "With a {I} monthly net income, what does 50/30/20 give me for wants?",
            "[Wants budget|Discretionary budget] under 50/30/20 for {I} a month after tax?",
            "If I take home {I} each month, how much should wants get in a 50/30/20 plan?",
            "I earn {I} a month after taxes. What's my limit for wants with 50/30/20?",
        ],
        ("heldout", "all"): ["I net {I} per month after taxes. Break that into the 50/30/20 buckets for me.",
                             "Show me a fifty-thirty-twenty breakdown of a {I} monthly paycheck after tax."],
        ("heldout", "savings"): ["What does the 20% savings slice come to for someone bringing home {I} monthly?"],
        ("heldout", "wants"): ["Bringing home {I} monthly, what's my fun-money allowance by the 50/30/20 guideline?"],
    }
    q = rng.choice(templates[(split, ask)])
    q = (compose(rng, q) if split == "train" else q).format(I=dollars(inc))
    if ask == "all":
        a = (f"On {dollars(inc)} a month, put {money(needs)} toward needs, {money(wants)} toward wants "
             f"and {money(save)} toward savings.")
    elif ask == "savings":
        a = f"Save {money(save)} a month, which is 20% of your {dollars(inc)} take-home pay."
    else:
        a = f"Your wants budget is {money(wants)} a month, which is 30% of {dollars(inc)}."
    ans = reply(a, f"The 50/30/20 rule splits take-home pay: 50% of {dollars(inc)} is {money(needs)}, "
                   f"30% is {money(wants)} and 20% is {money(save)}. Needs cover rent, utilities, "
                   f"groceries and minimum debt payments.")
    follow = None
    if want_followup:
        if split == "train":
            fq = compose(rng, rng.choice([
                "How much is the savings part over a full year?", "What does the savings share add up to in a year?",
                "And the savings for the whole year?", "What's the yearly total for savings?",
                "How much would I save in 12 months?", "What does that savings amount come to [per year|annually]?",
                "Over a year, how much goes to savings?", "And over twelve months, how much is saved?",
                "How much is that savings portion for a full year?", "Yearly savings total?",
                "If I keep it up for a year, how much is saved?", "What's the annual savings figure?"]), opener=False)
        else:
            fq = "Annualise the savings bucket for me."
        follow = (fq, reply(
            f"The savings share comes to {money(save * 12)} a year.",
            f"Multiply the monthly amount by 12: {money(save)} * 12 = {money(save * 12)}. "
            f"Sending it automatically to savings on payday makes the 20% happen before any spending."),
            (inc, "savings_year"))
    return (inc, ask), q, ans, follow


CURRENCIES = [  # (from, to, low rate, high rate, decimals)
    ("USD", "EUR", 0.88, 0.95, 4), ("USD", "GBP", 0.74, 0.81, 4), ("USD", "JPY", 140, 158, 2),
    ("USD", "CAD", 1.32, 1.41, 4), ("USD", "MXN", 16.8, 20.2, 2), ("EUR", "USD", 1.05, 1.14, 4),
    ("GBP", "USD", 1.22, 1.34, 4), ("USD", "AUD", 1.45, 1.58, 4), ("USD", "CHF", 0.85, 0.92, 4),
    ("EUR", "GBP", 0.83, 0.88, 4),
]


def currency(rng, split, want_followup):
    frm, to, lo, hi, dec = rng.choice(CURRENCIES)
    rate = round(rng.uniform(lo, hi), dec)
    amt = rng.randrange(100, 5001, 25)
    fee = rng.choice([0, 0, 1, 2, 3])
    R = num(rate, dec)
    if fee == 0:
        t = ask(rng, split, train=[
            "How many {to} do I get for {A} {frm} at an exchange rate of 1 {frm} = {R} {to}?",
            "Convert {A} {frm} to {to} at a rate of {R}.",
            "The rate today is 1 {frm} = {R} {to}. What is {A} {frm} worth in {to}?",
            "{A} {frm} to {to} at {R}?",
            "I'm traveling and need to change {A} {frm} into {to}. The rate is {R} {to} per {frm}. How much will I get?",
            "If 1 {frm} is worth {R} {to}, how much is {A} {frm} in {to}?",
            "[Exchange|Conversion] question: {A} {frm}, rate 1 {frm} = {R} {to}. How many {to}?",
            "How much {to} is {A} {frm} when the rate is {R}?",
            "[My bank|The app|The news] says 1 {frm} = {R} {to}. What would {A} {frm} [be|convert to]?",
            "I'm sending {A} {frm} to [family|a friend|a supplier] abroad at {R} {to} per {frm}. How much {to} is that?",
            "What's {A} {frm} in {to} at an exchange rate of {R}?",
            "[Please convert|Convert] {A} {frm} [into|to] {to}; the rate is {R} {to} for each {frm}.",
            "With the {frm}/{to} rate at {R}, what is {A} {frm} worth?",
            "[Before my trip|For my vacation] I want to [swap|exchange] {A} {frm} for {to} at {R}. How many {to} is that?",
        ], heldout=["At one {frm} to {R} {to}, what does {A} {frm} come to?",
                    "Turning {A} {frm} into {to} when one {frm} buys {R} {to}: how much is that?"])
    else:
        t = ask(rng, split, train=[
            "I'm exchanging {A} {frm} to {to} at 1 {frm} = {R} {to}, and the exchange charges a {fee}% fee. "
            "How much {to} will I receive?",
            "{A} {frm} -> {to} at {R}, minus a {fee}% fee. How much do I get?",
            "The bank converts {frm} to {to} at {R} and takes a {fee}% fee. What do I receive for {A} {frm}?",
            "If I change {A} {frm} into {to} at a rate of {R} with a {fee}% [fee|charge|service fee], "
            "how many {to} do I end up with?",
            "[An exchange office|A currency exchange|My bank] [gives|quotes] {R} {to} per {frm} but [charges|deducts] "
            "{fee}%. What's left from {A} {frm}?",
            "Converting {A} {frm} to {to}: rate {R}, fee {fee}%. [Amount received|How much {to} after the fee]?",
            "How much {to} do I get for {A} {frm} at {R} after a {fee}% conversion fee?",
            "I need {to} for a trip. Exchanging {A} {frm} at {R} costs a {fee}% fee. What will I [receive|get in hand]?",
            "What's the net amount in {to} when I convert {A} {frm} at 1 {frm} = {R} {to} and pay {fee}%?",
            "[My card|The money transfer service] uses a rate of {R} {to} per {frm} and takes a {fee}% cut. "
            "How much {to} does {A} {frm} become?",
            "After a {fee}% fee, what do {A} {frm} convert to in {to} at a rate of {R}?",
            "Changing {A} {frm} to {to} at {R} with {fee}% taken off as a fee: how many {to}?",
        ], heldout=["A kiosk offers {R} {to} per {frm} minus a {fee}% commission. "
                    "What do I walk away with for {A} {frm}?",
                    "The airport booth swaps {frm} for {to} at {R}, then keeps {fee}% as commission. "
                    "Net proceeds on {A} {frm}?"])
    q = t.format(A=f"{amt:,}", frm=frm, to=to, R=R, fee=fee)

    def explain(a):
        gross = a * rate
        if fee == 0:
            return reply(
                f"{a:,} {frm} converts to {gross:,.2f} {to} at that rate.",
                f"Multiply the amount by the rate: {a:,} * {R} = {gross:,.2f} {to}. "
                f"To convert back, divide by the same rate: {gross:,.2f} / {R} = {a:,} {frm}.")
        gross = cents(gross)
        charge = cents(gross * fee / 100)
        return reply(
            f"You receive {gross - charge:,.2f} {to} for {a:,} {frm} after the {fee}% fee.",
            f"Multiply the amount by the rate: {a:,} * {R} = {gross:,.2f} {to}. "
            f"The {fee}% fee takes {charge:,.2f} {to}, leaving {gross - charge:,.2f} {to}.")

    follow = None
    if want_followup:
        a2 = rng.randrange(100, 5001, 25)
        fq = ask(rng, split, train=[
            "And how much would {a2} {frm} get me?", "What about {a2} {frm} at the same terms?",
            "What about {a2} {frm}?", "And for {a2} {frm}?", "How many would {a2} {frm} be?",
            "Same rate, {a2} {frm}?", "If I change {a2} {frm} instead?", "And {a2} {frm} on the same terms?",
            "Could you do {a2} {frm} too?", "What would {a2} {frm} give me?", "How much for {a2} {frm}?",
            "Now {a2} {frm}, please.",
        ], heldout=["Same deal, but I bring {a2} {frm} instead. Result?"], opener=False)
        follow = (fq.format(a2=f"{a2:,}", frm=frm), explain(a2), (a2, frm, to, rate, fee))
    return (amt, frm, to, rate, fee), q, explain(amt), follow


PRODUCTS = ["candles", "t-shirts", "mugs", "cookies", "phone cases", "notebooks", "soap bars"]


def percentage(rng, split, want_followup):
    sub = rng.choice(["tip", "tip", "fee", "change"])
    if sub == "tip":
        bill = rng.randrange(2400, 36000) / 100
        p = rng.choice([15, 18, 20, 22, 25])
        k = rng.choice([1, 1, 2, 3, 4, 5, 6])
        if k == 1:
            t = ask(rng, split, train=[
                "What's a {p}% tip on a {B} restaurant bill?",
                "How much should I leave for a {p}% tip on {B}, and what's the total?",
                "{p}% tip on {B}?",
                "[Our|My] [lunch|dinner|brunch] bill is {B}. [How much is|What's] a {p}% tip, and what's the total?",
                "I want to leave {p}% on a {B} [tab|bill|check]. How much is the tip?",
                "How much do I tip at {p}% on a {B} meal?",
                "What's the total with a {p}% tip on {B}?",
                "The [bill|check] [came to|is] {B}. If I tip {p}%, how much is that?",
                "[Calculate|Work out] a {p}% tip for a {B} [restaurant|takeout|delivery] order.",
                "[At the barber|At the salon|For the taxi ride], it's {B}. What's {p}% on top?",
                "{B} [meal|check], tipping {p}%: tip amount and total?",
                "Tipping {p}% on {B}, what do I leave?",
                "What should a {p}% tip be on a {B} [bill|check]?",
            ], heldout=["Adding {p}% gratuity to a {B} check, what's the final amount?"])
        else:
            t = ask(rng, split, train=[
                "Our dinner came to {B}. If we tip {p}% and split it {k} ways, how much does each person pay?",
                "{B} bill, {p}% tip, split {k} ways -> each?",
                "[We're|There are] {k} of us and the bill is {B}. With a {p}% tip, what does each person owe?",
                "How much does each of {k} people pay on a {B} bill with a {p}% tip?",
                "[Dinner|Lunch|Drinks] for {k} came to {B}. Add a {p}% tip and split it evenly. Per person?",
                "If {k} [coworkers|roommates|of us] share a {B} check and tip {p}%, how much does each pay?",
                "The check is {B}. We tip {p}% and divide by {k}. How much each?",
                "[Splitting|Dividing] a {B} restaurant bill {k} ways with a {p}% tip: what's my part?",
                "What does each person pay if {k} of us split {B} plus a {p}% tip?",
                "Our group of {k} owes {B} before the tip. At {p}%, what's the per-person cost?",
                "[Calculate|Work out] each person's part: {B} bill, {p}% tip, {k} people.",
                "We ordered [pizza|takeout|catering] for {B} and [want to|will] tip {p}%. Split {k} ways, "
                "how much is that each?",
                "{k} people, a {B} tab and a {p}% tip. What does everyone chip in?",
            ], heldout=["Split {B} plus a {p}% gratuity evenly among {k} friends: what's each share?"])
        q = t.format(B=money(bill), p=p, k=k)

        def explain(pp):
            tip = cents(bill * pp / 100)
            total = cents(bill + tip)
            d = f"Tip = {money(bill)} * {num(pp / 100)} = {money(tip)}. Total = {money(bill)} + {money(tip)} = {money(total)}."
            if k == 1:
                return reply(f"A {pp}% tip on {money(bill)} is {money(tip)}, making the total {money(total)}.",
                             d + " Tip on the pre-tax amount if the bill lists tax separately.")
            return reply(f"Each of the {k} people pays {money(total / k)}, including a {pp}% tip.",
                         d + f" Divide by {k}: {money(total)} / {k} = {money(total / k)} each.")

        follow = None
        if want_followup:
            p2 = rng.choice([x for x in (15, 18, 20, 22, 25) if x != p])
            fq = ask(rng, split, train=[
                "What if we tipped {p2}% instead?", "And at {p2}%?", "How about a {p2}% tip?",
                "What would {p2}% come to?", "Redo that with {p2}%.", "If the tip is {p2}%, then what?",
                "Same bill, {p2}% tip?", "And with a {p2}% tip?", "Make it {p2}% instead.", "What changes at {p2}%?",
                "Try {p2}% for the tip.", "Let's say {p2}% instead. New numbers?",
            ], heldout=["Run it again with a {p2}% gratuity."], opener=False)
            follow = (fq.format(p2=p2), explain(p2), (bill, "tip", p2, k))
        return (bill, "tip", p, k), q, explain(p), follow
    if sub == "fee":
        amt = rng.randrange(60, 5001, 5)
        p = rng.choice([1.5, 2, 2.5, 2.9, 3, 3.5])
        q = ask(rng, split, train=[
            "My landlord charges a {p} fee to pay rent of {A} by card. How much is the fee and the total?",
            "A {p} foreign transaction fee applies to a {A} purchase. What does it add?",
            "Paying a {A} bill online has a {p} convenience fee. What do I pay in total?",
            "{p} fee on a {A} [payment|charge] -> fee and total?",
            "My [utility company|gym|phone carrier|school] adds a {p} [card fee|convenience fee|processing fee] to a {A} "
            "bill. What's the fee and the total?",
            "How much is a {p} fee on {A}?",
            "If I pay {A} by credit card with a {p} card fee, what's the total?",
            "[Paying|Sending] {A} through [an app|a payment service] costs {p}. How much is the fee?",
            "What's the total cost of a {A} purchase with a {p} [fee|transaction fee]?",
            "A {A} [invoice|bill] [carries|has] a {p} [card|payment] fee. What do I pay altogether?",
            "[The city|My county] charges {p} to pay a {A} property tax bill [online|by card]. How much is the fee?",
            "Calculate a {p} fee on {A} and the total.",
            "What does a {p} card fee add to {A} of [rent|daycare costs|car repairs]?",
            "I'm charged {p} on a {A} [payment|transfer]. Fee and total, please.",
        ], heldout=["Settling a {A} tuition invoice by card adds a {p} processing surcharge. How big is it?",
                    "There's a {p} surcharge when I cover my {A} insurance bill with plastic. Extra cost?"]
        ).format(p=pct(p), A=dollars(amt))
        fee = cents(amt * p / 100)
        ans = reply(f"The {pct(p)} fee on {dollars(amt)} is {money(fee)}, so you pay {money(amt + fee)} in total.",
                    f"Fee = {dollars(amt)} * {num(p / 100)} = {money(fee)}. "
                    f"Total = {dollars(amt)} + {money(fee)} = {money(amt + fee)}. "
                    f"Paying by bank transfer or debit often avoids the fee.")
        return (amt, "fee", p), q, ans, None
    old = rng.randrange(400, 20001, 10)
    new = int(old * rng.uniform(0.7, 1.45)) // 5 * 5
    if new == old:
        new += 25
    q = ask(rng, split, train=[
        "My investment went from {O} to {N}. What's the percentage change?",
        "If my rent changed from {O} to {N}, by what percent did it change?",
        "{O} -> {N}: percent change?",
        "[My salary|My rent|My electric bill|My car insurance] went from {O} to {N}. What's the percent change?",
        "What is the percentage [increase or decrease|change] from {O} to {N}?",
        "[My savings account|My 401(k) balance|Our home's value] was {O} and is now {N}. By what percent did it change?",
        "By how much, in percent, did a {O} [stock position|fund holding] change if it's now {N}?",
        "Calculate the percent change: old value {O}, new value {N}.",
        "Something I own was worth {O} and is now worth {N}. What percentage change is that?",
        "[If|When] a price moves from {O} to {N}, what's the change in percent?",
        "Percent change from {O} to {N}?",
        "My [monthly grocery spend|monthly budget|car payment] changed from {O} to {N}. How big is that in percent?",
        "Last year {O}, this year {N}. What's the percentage change?",
        "What percent did my [account|savings] [grow or shrink|change] going from {O} to {N}?",
    ], heldout=["My portfolio moved from {O} to {N} this year. What is that as a percent?",
                "Net worth last January: {O}. This January: {N}. Express the move in percent."]
    ).format(O=dollars(old), N=dollars(new))
    chg = (new - old) / old * 100
    word = "increase" if chg > 0 else "decrease"
    ans = reply(f"That is an {word} of {abs(chg):.2f}%.",
                f"Percent change = (new - old) / old * 100 = ({new:,} - {old:,}) / {old:,} * 100 = {chg:.2f}%. "
                f"The dollar change is {dollars(new - old)}.")
    return (old, "change", new), q, ans, None


def inflation(rng, split, want_followup):
    i = rng.choice([2, 2.5, 3, 3.5, 4, 4.5, 5, 6])
    n = rng.randint(3, 30)
    g = 1 + i / 100
    if rng.random() < 0.5:
        C = rng.choice([rng.randrange(50, 1001, 5), rng.randrange(1000, 60001, 500)])
        q = ask(rng, split, train=[
            "If inflation averages {i} a year, how much will a {C} expense cost in {n} years?",
            "What will {C} of groceries cost in {n} years with {i} annual inflation?",
            "Something costs {C} today. With {i} inflation each year, what will it cost after {n} years?",
            "{C} today, {i} inflation, {n} years -> future cost?",
            "[Rent|Tuition|A used car|A week of groceries|My phone plan] [costs|runs] {C} now. With {i} annual inflation, "
            "what will it cost in {n} years?",
            "If prices rise {i} a year, what does a {C} [bill|expense|basket of goods] cost after {n} years?",
            "How much will something that costs {C} today cost in {n} years at {i} inflation?",
            "Assuming {i} yearly inflation, what will {C} worth of [stuff|goods|supplies] cost in {n} years?",
            "[Project|Estimate] the cost of a {C} purchase in {n} years if inflation runs {i} a year.",
            "At {i} inflation per year, what's the future price of something that costs {C} today, {n} years out?",
            "My [annual|yearly] [vacation|insurance bill|tuition] is {C}. What will it be in {n} years with inflation "
            "at {i}?",
            "What will a {C} expense grow to after {n} years of {i} inflation?",
            "Inflation question: {C} now, {i} a year, {n} years. [Future cost?|What will it cost then?]",
        ], heldout=["Prices climb {i} every year. A {C} item today costs what {n} years from now?",
                    "With {i} annual price growth, what will a {C} purchase run {n} years down the road?"]
        ).format(i=pct(i), C=dollars(C), n=n)
        F = C * g ** n
        ans = reply(f"Something that costs {dollars(C)} today will cost {money(F)} in {n} years at {pct(i)} inflation.",
                    f"Future cost = C * (1 + i)^n = {C:,} * {num(g)}^{n} = {money(F)}. "
                    f"The price rises by {money(cents(F) - C)} because inflation compounds every year.")
        return (C, i, n, "future"), q, ans, None
    X = rng.randrange(1000, 200001, 1000)
    q = ask(rng, split, train=[
        "What is {X} in {n} years worth in today's money if inflation is {i} per year?",
        "How much buying power will {X} have in {n} years, assuming {i} annual inflation?",
        "{X} in {n} years, {i} inflation -> value in today's money?",
        "If I'll [get|inherit|receive] {X} in {n} years, what is it worth in today's money with {i} inflation a year?",
        "With {i} annual inflation, what will {X} be worth in today's terms after {n} years?",
        "[My pension|A trust|A bond] will pay {X} in {n} years. At {i} inflation, what's that in today's money?",
        "What is the real value today of {X} that arrives in {n} years, if inflation is {i} a year?",
        "Adjust {X} [received|paid] in {n} years for {i} yearly inflation. What's it worth today?",
        "If inflation runs {i} a year, {X} in {n} years equals how much now?",
        "[Discount|Deflate] {X} over {n} years at {i} inflation: today's value?",
        "I'm planning to have {X} saved in {n} years. With {i} inflation, what's that worth in today's money?",
        "How much is {X} received [after|in] {n} years really worth now, with prices rising {i} a year?",
    ], heldout=["In today's dollars, what's a {X} payment due {n} years out worth at {i} yearly inflation?",
                "Inflation runs at {i} yearly. In present-day terms, what will {X} buy {n} years from now?"]
    ).format(X=dollars(X), n=n, i=pct(i))
    R = X / g ** n
    ans = reply(f"{dollars(X)} received in {n} years buys what {money(R)} buys today at {pct(i)} inflation.",
                f"Real value = X / (1 + i)^n = {X:,} / {num(g)}^{n} = {money(R)}. "
                f"Inflation removes {money(X - cents(R))} of purchasing power over that time.")
    return (X, i, n, "real"), q, ans, None


def card_interest(rng, split, want_followup):
    B = rng.randrange(500, 9001, 50)
    apr = rng.choice([15.99, 17.49, 18.99, 19.99, 21.49, 22.99, 24.99, 27.99, 29.99])
    interest = cents(B * apr / 100 / 12)
    pay = max(35, math.ceil(B * 0.01 + interest))
    q = ask(rng, split, train=[
        "I have a {B} credit card balance at {a} APR and pay only the {P} minimum. How much interest do I pay this month?",
        "How much interest will a {B} card balance at {a} APR cost me in one month if I make the {P} minimum payment?",
        "My card has a {a} APR. If I [keep|leave] {B} on it and pay the {P} minimum, what's my balance next month?",
        "Credit card: {B} balance, {a} APR, {P} minimum payment. What does one month of interest cost?",
        "{B} balance, {a} APR, {P} payment -> interest this month?",
        "My credit card statement shows {B} at {a} APR. If I pay the {P} minimum, how much interest "
        "[will I be charged|do I pay]?",
        "What's one month of interest on a {B} card balance at {a} APR, paying the {P} minimum?",
        "I owe {B} on my [Visa|Mastercard|store card|credit card] with a {a} APR. After a {P} minimum payment, "
        "what's the interest and the new balance?",
        "How much interest does a {a} APR card charge on {B} in a month if I [only pay|pay just] {P}?",
        "Suppose I leave a {B} balance at {a} and pay {P}. What will I owe next month?",
        "Credit card math: {B} owed, {a} APR, paying the {P} minimum. [Interest for the month?|What does the month "
        "cost in interest?]",
        "I can only afford the {P} minimum on my {B} card balance at {a} APR. How much interest gets added this month?",
        "What does it cost me in interest this month to keep {B} on a {a} APR card and pay {P}?",
        "[Please calculate|Calculate] the monthly interest on {B} at {a} APR with a {P} minimum payment.",
        "Balance {B}, APR {a}, minimum {P}. How much interest is charged this month and what's left?",
    ], heldout=[
        "Carrying {B} on plastic at {a} APR and sending just {P}: monthly interest and resulting balance?",
        "A {B} balance sits on my card at {a} APR. After one {P} payment, what interest was added and what do I owe?",
    ]).format(B=dollars(B), a=pct(apr), P=dollars(pay))
    new_bal = B + interest - pay
    ans = reply(
        f"This month's interest is {money(interest)}, and after the {dollars(pay)} payment the balance is {money(new_bal)}.",
        f"Interest = {dollars(B)} * {num(apr / 100)} / 12 = {money(interest)}. "
        f"Only {money(pay - interest)} of your payment reduces the balance: "
        f"{dollars(B)} + {money(interest)} - {dollars(pay)} = {money(new_bal)}.")
    follow = None
    if want_followup:
        fq = ask(rng, split, train=[
            "How much would I save if I paid the whole {B} instead?", "What if I paid off the full {B}?",
            "And if I cleared the {B} [today|this month]?", "How much do I save by paying all {B} now?",
            "What if I pay the entire {B} balance?", "Would paying the full {B} save me that interest?",
            "And paying {B} in full?", "What do I save by paying off {B} before the due date?",
            "How about paying all {B} at once?", "If I pay the {B} in full, what's the saving?",
            "Compared with paying the whole {B}?", "Paying the full {B} instead: how much saved?",
        ], heldout=["Versus clearing all {B} right now?"], opener=False).format(B=dollars(B))
        follow = (fq, reply(
            f"Paying the full {dollars(B)} by the due date saves the {money(interest)} interest charge.",
            f"With no balance carried, no interest accrues and the grace period on new purchases returns. "
            f"Carried for a whole year, {dollars(B)} at {pct(apr)} APR costs {money(B * apr / 100)} in interest."),
            (B, apr, pay))
    return (B, apr, pay), q, ans, follow


def debt_to_income(rng, split, want_followup):
    G = rng.randrange(3000, 15001, 100)
    housing = rng.randrange(800, 3501, 25)
    car = rng.choice([0, rng.randrange(200, 651, 5)])
    student = rng.choice([0, rng.randrange(100, 451, 5)])
    card = rng.randrange(25, 201, 5)
    debts = [(housing, "housing"), (car, "car loan"), (student, "student loan"), (card, "card minimums")]
    debts = [(v, name) for v, name in debts if v]
    listed = ", ".join(f"{dollars(v)} {name}" for v, name in debts)
    annual = rng.random() < 0.4
    inc = f"{dollars(G * 12)} a year" if annual else f"{dollars(G)} a month"
    q = ask(rng, split, train=[
        "I earn {inc} before taxes. My monthly debts are {L}. What's my debt-to-income ratio?",
        "What's my DTI with a gross income of {inc} and monthly payments of {L}?",
        "Calculate my debt-to-income ratio: gross pay {inc}; debts each month: {L}.",
        "Gross {inc}, debts {L} -> DTI?",
        "[I'm applying for a mortgage|The lender asked for my DTI|I'm getting ready to buy a house]. I make {inc} "
        "before tax and pay {L} each month. What's my debt-to-income ratio?",
        "How do I [figure|work out] my DTI? Income: {inc} gross. Monthly debt payments: {L}.",
        "Before taxes I earn {inc}, and I pay {L} a month in debts. What's my DTI?",
        "What percent of my gross income goes to debt? I earn {inc} and pay {L} monthly.",
        "Debt-to-income check: {inc} gross income; monthly payments: {L}.",
        "With {L} in monthly debt payments and {inc} of gross income, what's my debt-to-income ratio?",
        "[Calculate|Find] my DTI: I earn {inc} gross, and my monthly debts are {L}.",
        "My [salary|gross pay] is {inc}. Each month I pay {L}. What's my DTI ratio?",
        "Would a lender like my numbers? Gross income {inc}, monthly debts {L}. What's the debt-to-income ratio?",
        "What's the debt-to-income ratio for someone earning {inc} before taxes with {L} in monthly payments?",
    ], heldout=[
        "Pre-tax I make {inc}; obligations per month are {L}. Where does my DTI land?",
        "Gross earnings: {inc}. Monthly bills that count as debt: {L}. Compute the DTI.",
    ]).format(inc=inc, L=listed)
    total = sum(v for v, _ in debts)
    dti = total / G * 100
    side = "within" if dti <= 36 else "above"
    ans = reply(
        f"Your debt-to-income ratio is {dti:.1f}%.",
        f"Monthly debts total {' + '.join(f'{v:,}' for v, _ in debts)} = {dollars(total)}. "
        + (f"Gross monthly income is {dollars(G * 12)} / 12 = {dollars(G)}. " if annual else "")
        + f"{dollars(total)} / {dollars(G)} = {dti:.1f}%, which is {side} the 36% many lenders prefer.")
    return (G, total, tuple(v for v, _ in debts), annual), q, ans, None


def emergency_fund(rng, split, want_followup):
    E = rng.randrange(1200, 7001, 50)
    if rng.random() < 0.5:
        S = rng.randrange(500, E * 9, 100)
        q = ask(rng, split, train=[
            "I have {S} in savings and my essential expenses are {E} a month. How many months would my emergency fund last?",
            "How long can I cover {E} of monthly expenses with {S} saved?",
            "My emergency savings are {S}. Essentials run {E} a month. How many months is that?",
            "{S} saved, {E}/month essentials -> months covered?",
            "If I lost my job, how many months would {S} in savings cover at {E} a month in essential costs?",
            "How many months of expenses is {S} if I spend {E} a month on necessities?",
            "My [rainy-day fund|emergency fund|cushion] is {S} and my bare-bones budget is {E} a month. "
            "How long would it last?",
            "[We have|I have] {S} in an emergency account. [Our|My] basic bills are {E} monthly. "
            "How many months does that cover?",
            "At {E} a month in essential spending, how many months can {S} of savings [cover|carry me]?",
            "Emergency fund check: {S} saved, essentials {E} per month. [Months covered?|How many months is that?]",
            "How many months would my {S} emergency fund pay for {E} of monthly essentials?",
            "Compare my {S} savings with {E} of monthly essentials: how many months of coverage?",
            "Essentials cost me {E} a month and I've saved {S}. How long could I live on my savings?",
            "With {S} in the bank and {E} of required monthly spending, how many months am I covered?",
        ], heldout=["With {S} set aside and {E} of necessary monthly costs, how many months of runway do I have?",
                    "Reserves of {S} against {E} in must-pay monthly bills: how long does that last?"]
        ).format(S=dollars(S), E=dollars(E))
        months = S / E
        ans = reply(f"Your emergency fund covers {months:.1f} months of essential expenses.",
                    f"Divide savings by monthly essentials: {dollars(S)} / {dollars(E)} = {months:.1f} months. "
                    f"The standard target is three to six months, which for you is {dollars(3 * E)} to {dollars(6 * E)}.")
        return (E, S, "months"), q, ans, None
    k = rng.choice([3, 4, 6, 6, 9])
    S = rng.randrange(0, E * k - 500, 100)
    q = ask(rng, split, train=[
        "I spend {E} a month on essentials and have {S} saved. How much more do I need for a {k}-month emergency fund?",
        "How much do I still need to save for {k} months of {E} expenses if I already have {S}?",
        "{E}/month essentials, {S} saved, {k}-month goal -> still need?",
        "I want a {k}-month emergency fund. My essentials are {E} a month and I have {S}. How much more do I need?",
        "What's left to save for a {k}-month emergency fund if essentials cost {E} a month and I've saved {S}?",
        "My monthly necessities are {E}. I've put away {S}. [How much more|What amount] do I need for {k} months "
        "of coverage?",
        "Emergency fund goal: {k} months of {E} expenses. Saved so far: {S}. Remaining amount?",
        "Our household spends {E} a month on essentials and has {S} saved. How much more for a {k}-month fund?",
        "To cover {k} months of {E} expenses, how much do I still need beyond my {S}?",
        "I have {S} saved. How much more do I need to reach {k} months of {E} monthly essentials?",
        "[Calculate|Work out] the shortfall: {k}-month emergency fund, {E} monthly essentials, {S} already saved.",
        "How much should I still save if my target is {k} months of {E} and I have {S} now?",
        "Essentials are {E} monthly. With {S} saved, what do I need to add for a {k}-month emergency fund?",
    ], heldout=["Core spending is {E} monthly and {S} is banked. What gap remains to a {k}-month cushion?",
                "Essentials eat up {E} each month and I hold {S} in reserve. How far am I from a {k}-month safety net?"]
    ).format(E=dollars(E), S=dollars(S), k=k)
    target = E * k
    ans = reply(f"You need {dollars(target - S)} more to reach a {k}-month fund of {dollars(target)}.",
                f"Target = {dollars(E)} * {k} = {dollars(target)}. Subtract what you have: "
                f"{dollars(target)} - {dollars(S)} = {dollars(target - S)}. "
                f"Keep the fund in a high-yield savings account so it stays safe and available.")
    return (E, S, k), q, ans, None


def break_even(rng, split, want_followup):
    if rng.random() < 0.5:
        F = rng.randrange(1000, 50001, 250)
        v = rng.randrange(150, 4001) / 100
        p = cents(v + rng.randrange(150, 3001) / 100)
        prod = rng.choice(PRODUCTS)
        q = ask(rng, split, train=[
            "I sell {prod} for {p} each. Each costs {v} to make and my fixed costs are {F} a month. How many must I sell to break even?",
            "What's the break-even point in units with fixed costs of {F}, a price of {p} per unit and a variable cost of {v} per unit?",
            "Fixed costs {F}/month, price {p}, variable cost {v} per unit -> break-even units?",
            "My [small business|side hustle|online shop|market booth] sells {prod} at {p}. They cost {v} each and fixed "
            "costs are {F} a month. How many do I need to sell to break even?",
            "How many {prod} must I sell at {p} each to cover {F} of fixed costs if each costs {v} to make?",
            "Break-even question: {F} fixed costs, {p} selling price, {v} variable cost per unit. "
            "[How many units?|Units needed?]",
            "If I charge {p} per [unit|item] and each costs {v} to produce, how many do I sell to cover {F} in fixed costs?",
            "[Calculate|Find] the break-even quantity: fixed costs {F}, price {p}, unit cost {v}.",
            "I make {prod} that cost {v} each and sell for {p}. With {F} in monthly fixed costs, what's my break-even "
            "[quantity|point]?",
            "Each of my {prod} sells for {p} and costs {v}. [Rent and other fixed costs|My fixed costs] are {F} a month. "
            "How many to break even?",
            "How many units do I have to sell to break even with {F} fixed costs, a {p} price and {v} variable costs per unit?",
            "Selling {prod} at {p} with a {v} cost each and {F} of fixed expenses: how many [units|sales] to break even?",
        ], heldout=["My stall has {F} of monthly overhead; {prod} go for {p} apiece and cost {v} each to produce. "
                    "Volume needed to cover costs?"]
        ).format(prod=prod, p=money(p), v=money(v), F=dollars(F))
        margin = cents(p - v)
        exact = F / margin
        units = math.ceil(exact - 1e-9)
        ans = reply(f"You need to sell {units:,} units to break even.",
                    f"Each unit contributes {money(p)} - {money(v)} = {money(margin)} toward fixed costs. "
                    f"Divide fixed costs by that margin: {dollars(F)} / {money(margin)} = {exact:,.2f}, "
                    f"rounded up to {units:,} units.")
        return (F, p, v), q, ans, None
    C = rng.randrange(2000, 9001, 100)
    old = rng.randrange(1200, 3501, 5)
    new = old - rng.randrange(60, 451, 5)
    s = old - new
    q = ask(rng, split, train=[
        "Refinancing would cut my mortgage payment from {O} to {N} but costs {C} in closing costs. How long until I break even?",
        "How many months to recoup {C} of refinancing costs if my payment drops from {O} to {N}?",
        "Refinance: payment {O} -> {N}, closing costs {C}. Break-even months?",
        "If I refinance, my payment goes from {O} to {N}, but closing costs are {C}. How many months to break even?",
        "[The lender|My bank|A broker] says refinancing would drop my payment from {O} to {N} for {C} in closing costs. "
        "When do I break even?",
        "How long does it take to [earn back|recover] {C} in refinance closing costs when the monthly payment goes "
        "from {O} to {N}?",
        "Refinancing costs {C} and saves me the difference between {O} and {N} each month. "
        "[How many months to break even?|When do I come out ahead?]",
        "[Is a refinance worth it?|Refinance break-even:] {C} closing costs, payment {O} now, {N} after. "
        "How many months until it pays off?",
        "What's the break-even point in months for a refinance with {C} in costs that lowers my payment from {O} to {N}?",
        "My mortgage payment is {O}. A refinance [would make|makes] it {N} but costs {C} up front. "
        "How many months to recoup that?",
        "[Calculate|Work out] refinance break-even: closing costs {C}, old payment {O}, new payment {N}.",
        "Paying {C} to refinance cuts my payment from {O} to {N}. How many months until I've made it back?",
    ], heldout=["New loan: payment falls to {N} from {O}, fees total {C}. When do the savings cover the fees?",
                "A refi with {C} in fees takes my monthly payment from {O} down to {N}. When is it paid back?"]
    ).format(O=dollars(old), N=dollars(new), C=dollars(C))
    exact = C / s
    months = math.ceil(exact - 1e-9)
    ans = reply(f"The refinance breaks even after {months} months.",
                f"Monthly savings are {dollars(old)} - {dollars(new)} = {dollars(s)}. "
                f"Divide the closing costs by the savings: {dollars(C)} / {dollars(s)} = {exact:.1f}, "
                f"so the costs are recovered in month {months}. Keeping the loan longer than that makes the refinance pay off.")
    return (C, old, new), q, ans, None


def dividend_yield(rng, split, want_followup):
    price = rng.randrange(1500, 25001, 5) / 100
    qd = cents(price * rng.uniform(0.004, 0.015))
    qd = max(qd, 0.05)
    ann = cents(qd * 4)
    shares = rng.choice([None, None, 50, 100, 150, 200, 250, 500])
    y = ann / price * 100
    if shares is None:
        quarterly = rng.random() < 0.5
        if quarterly:
            q = ask(rng, split, train=[
                "What's the dividend yield on a {p} stock paying {q} per quarter?",
                "A share costs {p} and pays a quarterly dividend of {q}. What's the yield?",
                "{p} stock, {q} quarterly dividend -> yield?",
                "What yield does a stock priced at {p} with a {q} quarterly dividend have?",
                "I'm looking at a [utility|bank|consumer goods] stock at {p} that pays {q} a quarter. "
                "What's the dividend yield?",
                "[The company|A company] pays {q} per share each quarter and the share price is {p}. "
                "What's the dividend yield?",
                "Dividend yield: price {p}, quarterly dividend {q}?",
                "How much yield does {q} per quarter give on a {p} share?",
                "If a share trades at {p} and the quarterly dividend is {q}, what's the yield?",
                "[Calculate|Find] the dividend yield for a {p} stock with a {q} dividend each quarter.",
                "A {p} share pays a {q} dividend four times a year. What is its yield?",
                "What's the yield on a stock at {p} paying {q} quarterly?",
                "My [ETF|stock|REIT] costs {p} a share and pays {q} per quarter. What yield is that?",
            ], heldout=["Shares cost {p} and the company pays out {q} every quarter. Yield?",
                        "Quarterly payout {q}, share price {p}: annual yield in percent?"])
        else:
            q = ask(rng, split, train=[
                "A stock trades at {p} and pays an annual dividend of {a}. What's its dividend yield?",
                "Dividend yield for a share priced at {p} with {a} in yearly dividends?",
                "{p} share, {a} annual dividend -> yield?",
                "What's the yield on a stock priced at {p} that pays {a} a year in dividends?",
                "A company pays an annual dividend of {a} per share, and the shares cost {p}. What's the yield?",
                "If a stock costs {p} and pays {a} per year, what's the dividend yield?",
                "[Calculate|Find] the dividend yield: {a} in annual dividends on a {p} share price.",
                "How much yield do I get from a {p} stock paying {a} yearly?",
                "My [stock|fund|REIT] trades at {p} and pays {a} a year per share. What is the yield?",
                "Dividend yield question: price {p}, annual dividend {a}.",
                "What's the percentage yield of {a} of dividends a year on a {p} share?",
                "I'm comparing income stocks. One costs {p} and pays {a} annually. What's its yield?",
                "At a price of {p} with a {a} yearly dividend, what's the yield?",
            ], heldout=["Priced at {p}, the stock distributes {a} per year. What percent yield is that?"])
        q = q.format(p=money(price), q=money(qd), a=money(ann))
        first = (f"Annual dividend = {money(qd)} * 4 = {money(ann)}. " if quarterly else "")
        ans = reply(f"The dividend yield is {y:.2f}%.",
                    first + f"Yield = annual dividend / price = {money(ann)} / {money(price)} = {y:.2f}%. "
                    f"Each $1,000 invested at this price pays about {money(10 * y)} a year.")
        return (price, ann, qd, quarterly), q, ans, None
    q = ask(rng, split, train=[
        "If I own {n} shares of a {p} stock with a {q} quarterly dividend, what's my yield and annual income?",
        "{n} shares, {p} price, {q} quarterly dividend -> yield and yearly income?",
        "I own {n} shares of a stock at {p} that pays {q} each quarter. What's the yield and how much do I get a year?",
        "What annual income and yield do {n} shares give if the stock is {p} and pays {q} a quarter?",
        "My {n} shares [trade at|are priced at] {p} each with a {q} quarterly dividend. Yield and annual dividend income?",
        "How much will {n} shares paying {q} per quarter earn in a year, and what's the yield at {p}?",
        "[Calculate|Work out] the yield and yearly dividend income: {n} shares, {p} share price, {q} quarterly dividend.",
        "If I buy {n} shares at {p} and the stock pays {q} quarterly, what yield and annual income do I get?",
        "I hold {n} shares of a {p} [bank|utility|telecom] stock with {q} dividends each quarter. "
        "What's my annual dividend income and yield?",
        "Dividend income question: {n} shares, {q} a quarter per share, price {p}. Yield and income per year?",
        "What yield and yearly payout come from {n} shares of a {p} stock paying {q} per quarter?",
        "{n} shares of a stock paying {q} quarterly at {p} a share: what's the yield, and what do I collect each year?",
    ], heldout=["How much yearly dividend income do {n} shares bring at {q} per quarter each, "
                "and what yield is that at a {p} price?"]).format(
        n=shares, p=money(price), q=money(qd))
    ans = reply(f"The yield is {y:.2f}%, and {shares} shares pay {money(ann * shares)} a year.",
                f"Annual dividend per share = {money(qd)} * 4 = {money(ann)}. "
                f"Yield = {money(ann)} / {money(price)} = {y:.2f}%. "
                f"Income = {shares} * {money(ann)} = {money(ann * shares)}.")
    return (price, ann, qd, shares), q, ans, None


def rule_of_72(rng, split, want_followup):
    if rng.random() < 0.6:
        r = rng.choice([2, 2.5, 3, 3.5, 4, 4.5, 5, 5.5, 6, 6.5, 7, 7.5, 8, 8.5, 9, 9.5, 10, 11, 12])
        P = rng.randrange(1000, 100001, 1000)
        q = ask(rng, split, train=[
            "Using the rule of 72, how long does it take money to double at {r} interest?",
            "How many years until my {P} becomes {P2} if it earns {r} a year?",
            "At {r} annual growth, how long does {P} take to double?",
            "Rule of 72: {r} return -> years to double?",
            "How long [will it take|does it take] for {P} to double at {r} a year?",
            "If my investments earn {r} annually, about how many years until they double?",
            "At {r} interest, how many years does it take money to double, by the rule of 72?",
            "[Estimate|Quickly estimate] the doubling time for {P} growing {r} per year.",
            "My {P} [index fund|savings|retirement account] grows {r} a year. When will it be {P2}?",
            "Using the rule of 72, how long until {P} turns into {P2} at {r}?",
            "How many years to double [my money|an investment] at a {r} annual return?",
            "[Doubling time|Time to double] at {r} per year?",
            "I earn {r} on {P}. About how many years until it doubles?",
            "With a {r} yearly return, how long does it take {P} to become {P2}?",
        ], heldout=["Roughly when does an account earning {r} annually reach twice its {P} starting value?",
                    "If my savings grow {r} a year, in how many years will {P} double?"]
        ).format(r=pct(r), P=dollars(P), P2=dollars(2 * P))
        est = 72 / r
        exact = math.log(2) / math.log(1 + r / 100)
        ans = reply(f"By the rule of 72, money doubles in {est:.1f} years at {pct(r)} a year.",
                    f"Divide 72 by the annual rate: 72 / {num(r)} = {est:.1f} years. "
                    f"The exact figure, ln(2) / ln(1 + {num(r / 100)}), is {exact:.2f} years, so the rule is a close shortcut.")
        follow = None
        if want_followup:
            r2 = rng.choice([x for x in (3, 4, 6, 8, 9, 10, 12) if x != r])
            fq = ask(rng, split, train=[
                "And at {r2}%?", "What about {r2}%?", "How about at {r2}% a year?", "And if it earned {r2}%?",
                "What if the rate is {r2}%?", "Same question at {r2}%.", "Now try {r2}%.", "And with a {r2}% return?",
                "How long at {r2}% instead?", "What's the doubling time at {r2}%?",
                "If I got {r2}% instead, how many years?", "Compare that with {r2}%.",
            ], heldout=["Redo that for {r2}% growth."], opener=False)
            est2 = 72 / r2
            exact2 = math.log(2) / math.log(1 + r2 / 100)
            follow = (fq.format(r2=r2), reply(
                f"At {r2}% a year, money doubles in {est2:.1f} years by the rule of 72.",
                f"72 / {r2} = {est2:.1f} years. The exact doubling time, ln(2) / ln(1 + {num(r2 / 100)}), "
                f"is {exact2:.2f} years, so the shortcut stays close at this rate."), (r2, P, "years"))
        return (r, P, "years"), q, ans, follow
    n = rng.randint(4, 24)
    P = rng.randrange(1000, 100001, 1000)
    q = ask(rng, split, train=[
        "What annual return do I need to double my money in {n} years?",
        "With the rule of 72, what rate doubles an investment of {P} in {n} years?",
        "Rule of 72: double in {n} years -> rate needed?",
        "What [interest rate|return] doubles {P} in {n} years?",
        "I want to turn {P} into {P2} in {n} years. What annual return [do I need|is that], by the rule of 72?",
        "[To double|Doubling] my money in {n} years, what yearly rate do I need?",
        "How much do I need to earn each year for {P} to double in {n} years?",
        "What rate of return gets an investment to double in {n} years?",
        "If I want my {P} [savings|portfolio|investment] to double within {n} years, what return is needed?",
        "[Estimate|Use the rule of 72 to estimate] the annual rate that doubles money in {n} years.",
        "Which annual return makes {P} grow to {P2} in {n} years?",
        "What's the required return to double {P} in {n} years, using the rule of 72?",
        "Doubling in {n} years: what annual rate does that need?",
    ], heldout=["To turn {P} into {P2} inside {n} years, what yearly return is required?",
                "I'd like {P} to double over {n} years. What growth rate does that take?"]
    ).format(n=n, P=dollars(P), P2=dollars(2 * P))
    est = 72 / n
    exact = (2 ** (1 / n) - 1) * 100
    ans = reply(f"You need about {est:.1f}% a year to double your money in {n} years.",
                f"Divide 72 by the number of years: 72 / {n} = {est:.1f}%. "
                f"The exact rate is 2^(1/{n}) - 1 = {exact:.2f}%, so the rule of 72 gives a close estimate.")
    return (n, P, "rate"), q, ans, None


KINDS: dict[str, Kind] = {
    "compound_interest": compound,
    "simple_interest": simple_interest,
    "loan_payment": loan_payment,
    "apr_apy": apr_apy,
    "savings_goal": savings_goal,
    "budget_50_30_20": budget_503020,
    "currency_conversion": currency,
    "percentage_tip_fee": percentage,
    "inflation": inflation,
    "credit_card_interest": card_interest,
    "debt_to_income": debt_to_income,
    "emergency_fund": emergency_fund,
    "break_even": break_even,
    "dividend_yield": dividend_yield,
    "rule_of_72": rule_of_72,
}


# ---------------------------------------------------------------------------
# conceptual questions, hand-written: id -> (question, answer sentence, details)
# ---------------------------------------------------------------------------

CONCEPTS: dict[str, tuple[str, str, str]] = {
    "etf": ("What is an ETF?",
            "An ETF (exchange-traded fund) is a basket of securities that trades on a stock exchange like a single share.",
            "Its price moves throughout the trading day. Most ETFs track an index, such as the S&P 500, and charge low "
            "annual fees. Buying one share gives you exposure to every holding in the fund."),
    "utilization": ("How does credit utilization affect my credit score?",
                    "Lower utilization raises your score, and keeping it under 30% of your total credit limits is the standard target.",
                    "Utilization is your card balances divided by your credit limits, so $1,500 on $10,000 of limits is 15%. "
                    "It is a major scoring factor. Paying before the statement date lowers the reported figure."),
    "fixed_variable": ("What's the difference between a fixed and a variable interest rate?",
                       "A fixed rate stays the same for the whole loan term, while a variable rate moves with a benchmark index.",
                       "Fixed rates give predictable payments. Variable rates often start lower but rise or fall when the "
                       "index moves, such as the prime rate. Choose fixed when payment stability matters most."),
    "overdraft": ("What is an overdraft fee?",
                  "An overdraft fee is a charge your bank applies when it pays a transaction that takes your account below zero.",
                  "The bank covers the shortfall and charges a flat fee per item. You avoid it by opting out of overdraft "
                  "coverage, linking a savings account for transfers, or setting low-balance alerts."),
    "debit_credit": ("What's the difference between a debit card and a credit card?",
                     "A debit card spends money directly from your checking account, while a credit card borrows from the issuer and bills you later.",
                     "Credit card purchases build credit history and charge interest if you don't pay the statement in full. "
                     "Debit purchases do not affect your credit score."),
    "401k": ("What is a 401(k)?",
             "A 401(k) is an employer-sponsored US retirement account funded with contributions taken straight from your paycheck.",
             "Traditional contributions are pre-tax and grow tax-deferred until withdrawal. Many employers add a matching "
             "contribution. Withdrawals before age 59½ generally face a 10% penalty on top of income tax."),
    "ira": ("What is an IRA?",
            "An IRA (individual retirement account) is a tax-advantaged retirement account you open yourself, outside any employer plan.",
            "A traditional IRA can give a tax deduction now and taxes withdrawals later. A Roth IRA is funded with "
            "after-tax money. Annual contribution limits are set by the IRS."),
    "roth": ("How is a Roth IRA different from a traditional IRA?",
             "A Roth IRA is funded with after-tax money and gives tax-free qualified withdrawals, while a traditional IRA can give a deduction now and is taxed at withdrawal.",
             "A Roth suits people who expect a higher tax rate in retirement. A traditional IRA suits people who expect "
             "a lower one. Both share the same annual contribution limit."),
    "index_fund": ("What is an index fund?",
                   "An index fund is a mutual fund or ETF that holds the securities in a market index to match its return.",
                   "An S&P 500 index fund owns the 500 companies in that index. No manager picks stocks, so fees are low. "
                   "One purchase gives you broad diversification."),
    "bond": ("What is a bond?",
             "A bond is a loan you make to a government or company that pays you interest and returns the face value at maturity.",
             "A $1,000 bond with a 4% coupon pays $40 a year. Bond prices fall when market interest rates rise and rise "
             "when rates fall. Government bonds carry less default risk than corporate bonds."),
    "inflation": ("What is inflation?",
                  "Inflation is the rate at which the general level of prices rises, which reduces what each dollar can buy.",
                  "With 3% inflation, an item costing $100 today costs $103 a year later. In the US it is commonly measured "
                  "by the Consumer Price Index (CPI). Savings earning less than inflation lose purchasing power."),
    "diversification": ("Why does diversification matter when investing?",
                        "Diversification spreads your money across many investments so a loss in one has a limited effect on the whole portfolio.",
                        "You diversify across companies, sectors, asset classes such as stocks and bonds, and countries. "
                        "It reduces company-specific risk, though not the risk of the whole market falling."),
    "apr": ("What does APR mean?",
            "APR (annual percentage rate) is the yearly cost of borrowing, including interest and certain fees, expressed as a percentage.",
            "It lets you compare loans with different fees on equal terms. A credit card with a 24% APR charges a monthly "
            "rate of 2%. APR ignores compounding; APY includes it."),
    "apy": ("What is APY?",
            "APY (annual percentage yield) is the yearly return on a deposit including the effect of compounding.",
            "A 5% rate compounded monthly gives an APY of 5.12%. Banks quote APY on savings accounts and CDs so you can "
            "compare them directly. More frequent compounding raises the APY."),
    "dispute": ("How do I dispute a charge on my card?",
                "Contact your card issuer through its app, website or phone line and file a dispute as soon as you spot the charge.",
                "Give the date, amount and reason, plus receipts or emails. For a merchant error, ask the merchant for a "
                "refund first. The issuer investigates and may credit you temporarily during the review."),
    "wire_ach": ("How are wire transfers different from ACH transfers?",
                 "A wire transfer moves money bank to bank individually and settles the same day, while ACH transfers are processed in batches.",
                 "ACH payments usually arrive in one to two business days and are often free. Wires carry a fee and are "
                 "very hard to reverse once sent. Use a wire for urgent, large payments such as a home closing."),
    "kyc": ("What is KYC in banking?",
            "KYC (Know Your Customer) is the process banks use to verify a customer's identity before opening an account.",
            "The bank collects your name, date of birth, address and an identification number and checks them against "
            "documents or databases. It helps prevent fraud and money laundering and is required by anti-money-laundering rules."),
    "credit_score": ("What is a credit score?",
                     "A credit score is a three-digit number, from 300 to 850 for FICO scores, that shows lenders how likely you are to repay debt.",
                     "It is calculated from your credit reports. Payment history and amounts owed are the two biggest "
                     "factors. A higher score gets you lower interest rates on loans and cards."),
    "fico_factors": ("What factors make up a FICO score?",
                     "A FICO score uses five factors: payment history 35%, amounts owed 30%, length of credit history 15%, new credit 10% and credit mix 10%.",
                     "Paying every bill on time protects the largest factor. Low balances relative to limits help the "
                     "second. Opening many accounts at once lowers the new credit part."),
    "inquiries": ("What's the difference between a hard and a soft credit inquiry?",
                  "A hard inquiry happens when you apply for credit and can lower your score slightly, while a soft inquiry does not affect your score.",
                  "Hard inquiries stay on your report for two years, and FICO counts them for one year. Checking your own "
                  "score or being prequalified by a lender creates a soft inquiry."),
    "emergency_fund": ("What is an emergency fund?",
                       "An emergency fund is cash set aside for unexpected expenses, and the standard target is three to six months of essential expenses.",
                       "Keep it in a high-yield savings account so it is safe and available immediately. If essentials "
                       "cost $3,000 a month, the target is $9,000 to $18,000. Refill it after you use it."),
    "hysa": ("What is a high-yield savings account?",
             "A high-yield savings account is a savings account that pays a much higher interest rate than a standard savings account.",
             "They are offered mostly by online banks with lower overhead. The rate is variable and can change at any "
             "time. Check that the bank is FDIC-insured before you deposit."),
    "fdic": ("How does FDIC insurance work?",
             "FDIC insurance protects deposits at member US banks up to $250,000 per depositor, per insured bank, for each account ownership category.",
             "It covers checking, savings, money market deposit accounts and CDs. It does not cover stocks, bonds, "
             "mutual funds or crypto, even when bought through a bank. Coverage is automatic."),
    "cd": ("What is a certificate of deposit?",
           "A certificate of deposit (CD) is a bank deposit that pays a fixed interest rate for a fixed term, such as 6 months or 5 years.",
           "You agree to leave the money untouched until the maturity date. Withdrawing early triggers a penalty, often "
           "several months of interest. CDs at insured banks carry deposit insurance."),
    "money_market": ("What's the difference between a money market account and a money market fund?",
                     "A money market account is an insured bank deposit, while a money market fund is an investment fund that holds short-term debt and has no deposit insurance.",
                     "Money market accounts often come with checks or a debit card. Money market funds aim to keep a "
                     "$1.00 share price and pay yields close to short-term rates."),
    "mutual_vs_etf": ("How is a mutual fund different from an ETF?",
                      "Mutual funds are priced once a day after the market closes, while ETFs trade on an exchange throughout the day at market prices.",
                      "Both pool investor money into a portfolio of securities. ETFs can be bought one share at a time. "
                      "Many mutual funds require a minimum initial investment, such as $1,000 or $3,000."),
    "expense_ratio": ("What is an expense ratio?",
                      "An expense ratio is the annual fee a fund charges, expressed as a percentage of the money you have invested in it.",
                      "A 0.50% expense ratio costs $50 a year on a $10,000 investment. The fee is taken from the fund's "
                      "assets, so you never see a bill. Lower fees leave more of the return for you."),
    "stock": ("What is a stock?",
              "A stock is a share of ownership in a company.",
              "Shareholders gain when the share price rises and may receive dividends from profits. Stocks trade on "
              "exchanges such as the NYSE and Nasdaq. Over long periods stocks have returned more than bonds and cash, "
              "with larger short-term swings."),
    "dividend": ("What is a dividend?",
                 "A dividend is a payment a company makes to its shareholders out of its profits, usually in cash.",
                 "Many US companies pay dividends quarterly. At $0.50 per share each quarter, 100 shares pay $50 every "
                 "quarter, or $200 a year. You can reinvest dividends to buy more shares."),
    "compound": ("What is compound interest?",
                 "Compound interest is interest earned on both your original deposit and the interest already added to it.",
                 "$1,000 at 10% a year becomes $1,100 after one year and $1,210 after two, because the second year's "
                 "interest is paid on $1,100. More frequent compounding grows the balance faster."),
    "simple_vs_compound": ("How does simple interest differ from compound interest?",
                           "Simple interest is paid only on the original principal, while compound interest is also paid on accumulated interest.",
                           "$5,000 at 4% simple interest earns $200 every year. With annual compounding the second year "
                           "earns $208, because interest is paid on $5,200. The gap widens every year."),
    "amortization": ("What does amortization mean for a loan?",
                     "Amortization is paying off a loan with equal scheduled payments that cover both interest and principal.",
                     "Early payments are mostly interest because the balance is highest then. Over time more of each "
                     "payment goes to principal. An amortization schedule lists every payment's split and the remaining balance."),
    "principal": ("What is the principal on a loan?",
                  "The principal is the amount you borrowed, or the part of it still unpaid, not counting interest.",
                  "On a $20,000 car loan the starting principal is $20,000. Each payment covers the month's interest "
                  "first and reduces principal with the rest. Extra principal payments cut total interest."),
    "escrow": ("What is an escrow account on a mortgage?",
               "A mortgage escrow account is an account your loan servicer uses to collect and pay your property taxes and homeowners insurance.",
               "Each monthly payment includes one-twelfth of the yearly tax and insurance bills. The servicer pays those "
               "bills when due. An annual escrow analysis adjusts your payment when costs change."),
    "pmi": ("What is PMI?",
            "PMI (private mortgage insurance) protects the lender and is usually required on a conventional loan when your down payment is under 20%.",
            "It is added to your monthly payment. You can ask the lender to cancel it once your balance reaches 80% of "
            "the home's original value, and it ends automatically at 78%."),
    "down_payment": ("What is a down payment?",
                     "A down payment is the part of a purchase price you pay upfront in cash, with a loan covering the rest.",
                     "On a $400,000 home, a 20% down payment is $80,000 and the mortgage is $320,000. A larger down "
                     "payment lowers the loan, the monthly payment and the total interest."),
    "refinance": ("What does it mean to refinance a loan?",
                  "Refinancing replaces your current loan with a new one, usually to get a lower interest rate, a different term, or cash out.",
                  "The new loan pays off the old one. Divide the closing costs by the monthly savings to find the "
                  "break-even month. Keeping the loan past that point makes the refinance pay off."),
    "arm": ("What is an adjustable-rate mortgage?",
            "An adjustable-rate mortgage (ARM) has a fixed rate for an initial period and then a rate that resets periodically based on an index.",
            "A 5/1 ARM is fixed for five years and then adjusts once a year. Rate caps limit how much the rate can rise "
            "at each adjustment and over the life of the loan."),
    "15_vs_30": ("Should I compare a 15-year and a 30-year mortgage on payment or total cost?",
                 "Compare both: a 15-year mortgage has a higher payment but a lower rate and far less total interest than a 30-year mortgage.",
                 "On $300,000, a 15-year loan at 5.5% costs $2,451.25 a month, while a 30-year loan at 6% costs "
                 "$1,798.65. The 30-year loan's lower payment leaves more room in a monthly budget."),
    "balance_transfer": ("How does a balance transfer work?",
                         "A balance transfer moves debt from one credit card to another, usually to use a low or 0% introductory APR.",
                         "Most cards charge a transfer fee of 3% to 5% of the amount moved, so moving $5,000 at 3% costs "
                         "$150. Pay the balance off before the promotional period ends and the regular APR applies."),
    "grace_period": ("What is a grace period on a credit card?",
                     "A grace period is the time between the end of a billing cycle and the payment due date when no interest is charged on new purchases.",
                     "It applies only if you paid the previous statement balance in full. Carrying a balance removes it "
                     "until you pay in full again. It is typically 21 to 25 days."),
    "minimum_payment": ("What is a credit card minimum payment?",
                        "The minimum payment is the smallest amount you must pay by the due date to keep your card account in good standing.",
                        "It is usually a small percentage of the balance or a fixed amount such as $25, whichever is "
                        "higher. Paying only the minimum keeps most of the balance in place, so interest continues every month."),
    "statement_vs_current": ("What's the difference between my statement balance and my current balance?",
                             "The statement balance is what you owed when the billing cycle closed, while the current balance includes every transaction since then.",
                             "Paying the statement balance in full by the due date avoids interest on purchases. The current "
                             "balance changes with new purchases, payments and refunds."),
    "secured_card": ("What is a secured credit card?",
                     "A secured credit card requires a cash deposit, usually equal to your credit limit, which makes it easy to get with little or no credit history.",
                     "A $300 deposit typically gives a $300 limit. The card reports to the credit bureaus like any other "
                     "card, so on-time payments build your score."),
    "credit_report": ("What is a credit report?",
                      "A credit report is a record of your credit accounts, balances, payment history and inquiries kept by a credit bureau.",
                      "The three major US bureaus are Equifax, Experian and TransUnion. You can get free reports from each "
                      "at AnnualCreditReport.com. Dispute any errors directly with the bureau."),
    "credit_freeze": ("What is a credit freeze?",
                      "A credit freeze blocks lenders from viewing your credit report, which stops identity thieves from opening new accounts in your name.",
                      "You place it with each of the three bureaus, and it is free in the US. Your existing accounts keep "
                      "working. Lift it temporarily when you apply for credit."),
    "late_payment": ("How long does a late payment stay on my credit report?",
                     "A late payment stays on your credit report for seven years from the date of the delinquency.",
                     "It is reported once the payment is 30 days past due. Its effect on your score fades over time, "
                     "especially with on-time payments afterwards. Autopay for the minimum prevents new late marks."),
    "checking_savings": ("What's the difference between a checking account and a savings account?",
                         "A checking account is built for everyday spending and bill payments, while a savings account is built for holding money and earning interest.",
                         "Checking accounts come with a debit card and unlimited transactions. Savings accounts pay more "
                         "interest and may limit withdrawals. Keep bill money in checking and reserves in savings."),
    "routing_number": ("What is a routing number?",
                       "A routing number is the nine-digit code that identifies your bank in US payments such as direct deposit, ACH and wire transfers.",
                       "It appears at the bottom left of a check, before your account number. The account number identifies "
                       "your specific account. You need both to set up direct deposit."),
    "swift_iban": ("What are SWIFT codes and IBANs?",
                   "A SWIFT code (BIC) identifies a bank in international transfers, while an IBAN identifies a specific account at a bank.",
                   "A SWIFT code is 8 or 11 characters long. IBANs are used in Europe and many other countries and start "
                   "with a country code and check digits. International wires often need both."),
    "direct_deposit": ("How does direct deposit work?",
                       "Direct deposit sends your paycheck or benefits electronically straight into your bank account.",
                       "It travels over the ACH network, so there is no paper check to deposit. You set it up by giving "
                       "your employer your routing and account numbers. Funds are often available on payday morning."),
    "cashiers_check": ("What is a cashier's check?",
                       "A cashier's check is a check drawn on the bank's own funds and signed by a bank officer, so the payment is guaranteed.",
                       "You pay the bank the amount upfront, plus a fee. Sellers accept them for large purchases such as "
                       "cars. Verify one by calling the issuing bank at a number you look up yourself."),
    "phishing": ("What is phishing?",
                 "Phishing is a scam in which criminals pose as a trusted company, such as your bank, to trick you into revealing passwords, card numbers or codes.",
                 "It arrives by email, text or phone. Your bank never asks for your password or a one-time code. Call "
                 "the number on your card instead of replying."),
    "2fa": ("What is two-factor authentication?",
            "Two-factor authentication (2FA) protects your login by requiring a second proof of identity in addition to your password.",
            "The second factor is usually a one-time code from an app or text, a hardware key, or a fingerprint. A stolen "
            "password alone is then not enough to log in. Turn it on for every financial account."),
    "net_worth": ("How do I calculate my net worth?",
                  "Net worth is the value of everything you own minus everything you owe.",
                  "If your cash, investments and home total $250,000 and your mortgage and car loan total $180,000, your "
                  "net worth is $70,000. Track it once a year to measure progress."),
    "capital_gain": ("What is a capital gain?",
                     "A capital gain is the profit from selling an asset for more than you paid for it.",
                     "Buying shares for $2,000 and selling them for $2,600 creates a $600 gain. In the US, assets held "
                     "longer than one year qualify for lower long-term capital gains rates. A sale below cost is a capital loss."),
    "dca": ("What is dollar-cost averaging?",
            "Dollar-cost averaging means investing a fixed amount on a regular schedule regardless of the price.",
            "Investing $500 every month buys more shares when prices are low and fewer when prices are high. It removes "
            "the need to time the market. Paycheck contributions to a 401(k) work this way."),
    "asset_allocation": ("What is asset allocation?",
                         "Asset allocation is how you divide your portfolio among asset classes such as stocks, bonds and cash.",
                         "A 60/40 portfolio holds 60% stocks and 40% bonds. More stocks mean higher expected growth and "
                         "larger swings, while more bonds mean steadier value."),
    "rebalancing": ("What does rebalancing a portfolio mean?",
                    "Rebalancing means selling some of what has grown and buying what has lagged to return your portfolio to its target mix.",
                    "If a 60/40 portfolio drifts to 70/30 after a stock rally, you sell stocks and buy bonds until it is "
                    "back at 60/40. Many investors rebalance once a year."),
    "bull_bear": ("What's the difference between a bull market and a bear market?",
                  "A bull market is a period of rising prices, and a bear market is a decline of 20% or more from a recent high.",
                  "The terms usually describe broad stock indexes such as the S&P 500. A decline of 10% to 20% is called "
                  "a correction. Long-term investors keep contributing through both."),
    "market_cap": ("What is market capitalization?",
                   "Market capitalization is a company's share price multiplied by its number of shares outstanding.",
                   "A company with 500 million shares at $40 has a market cap of $20 billion. Companies are grouped as "
                   "small-cap, mid-cap and large-cap by this figure."),
    "pe_ratio": ("What is a P/E ratio?",
                 "The price-to-earnings (P/E) ratio is a stock's price divided by its earnings per share.",
                 "A stock priced at $60 with earnings of $3 per share has a P/E of 20, so investors pay $20 for every $1 "
                 "of annual earnings. A high P/E signals that the market expects strong growth."),
    "annuity": ("What is an annuity?",
                "An annuity is a contract with an insurance company in which you pay a lump sum or a series of payments in exchange for regular income later.",
                "Immediate annuities start paying right away, and deferred annuities start at a future date. Annuities "
                "often carry surrender charges if you withdraw early."),
    "term_whole": ("What's the difference between term and whole life insurance?",
                   "Term life insurance covers you for a set period, such as 20 years, while whole life insurance covers you for life and builds cash value.",
                   "Term is much cheaper for the same death benefit. Whole life premiums are higher because part of each "
                   "premium funds the cash value. Term coverage ends if you outlive the term."),
    "deductible": ("What is an insurance deductible?",
                   "A deductible is the amount you pay out of pocket on a claim before your insurance starts paying.",
                   "With a $1,000 deductible and a $4,000 covered repair, you pay $1,000 and the insurer pays $3,000. A "
                   "higher deductible lowers your premium. Keep enough savings to cover it."),
    "premium": ("What is an insurance premium?",
                "An insurance premium is the amount you pay, monthly or yearly, to keep an insurance policy active.",
                "Insurers set it from your risk profile, coverage amount and deductible. Raising the deductible lowers the "
                "premium. Missed premium payments can make the policy lapse."),
    "gross_net": ("What's the difference between gross and net income?",
                  "Gross income is your pay before any deductions, and net income, or take-home pay, is what reaches your account after taxes and deductions.",
                  "Payroll taxes, income tax withholding, health premiums and retirement contributions come out of gross "
                  "pay. Build your budget from net income, since that is what you can spend."),
    "deduction_credit": ("What's the difference between a tax deduction and a tax credit?",
                         "A tax deduction lowers your taxable income, while a tax credit lowers your tax bill dollar for dollar.",
                         "A $1,000 deduction saves $220 for someone in the 22% bracket. A $1,000 credit saves the full "
                         "$1,000. A credit is worth more than a deduction of the same size."),
    "marginal_rate": ("What is a marginal tax rate?",
                      "Your marginal tax rate is the rate applied to your last dollar of income, not to all of it.",
                      "Income is taxed in brackets, so each slice is taxed at its own rate. Moving into a higher bracket "
                      "raises the tax only on the income inside that bracket. Your effective rate is total tax divided by income."),
    "zero_based": ("What is zero-based budgeting?",
                   "A zero-based budget assigns every dollar of income to a specific purpose until income minus planned spending equals zero.",
                   "With $4,000 of take-home pay, you allocate all $4,000 across bills, groceries, savings and debt "
                   "payments. Savings count as a category, so zero does not mean spending everything."),
    "rule_503020": ("What is the 50/30/20 budgeting rule?",
                    "The 50/30/20 rule splits take-home pay into 50% for needs, 30% for wants, and 20% for savings and debt repayment.",
                    "On $4,000 a month that is $2,000 for needs such as rent and groceries, $1,200 for wants and $800 for "
                    "savings. It is a simple starting point for a budget."),
    "avalanche_snowball": ("What's the difference between the debt avalanche and debt snowball methods?",
                           "The avalanche method puts extra money toward the highest-interest debt first, while the snowball method pays off the smallest balance first.",
                           "Both keep minimum payments on every debt. The avalanche minimizes total interest. The snowball "
                           "gives quick wins. When a debt is gone, its payment rolls to the next one."),
    "consolidation": ("What is debt consolidation?",
                      "Debt consolidation combines several debts into one new loan, ideally at a lower interest rate and with a single monthly payment.",
                      "For example, a personal loan at 11% can pay off credit cards charging 24%. It helps only if the new "
                      "rate is lower and you stop adding new card balances."),
    "personal_loan": ("What is a personal loan?",
                      "A personal loan is an installment loan with a fixed amount, rate and term, usually two to seven years, and it is typically unsecured.",
                      "You receive a lump sum and repay it in equal monthly payments. Lenders price it from your credit "
                      "score and income. Common uses are debt consolidation and home repairs."),
    "secured_unsecured": ("What's the difference between a secured and an unsecured loan?",
                          "A secured loan is backed by collateral the lender can take if you default, while an unsecured loan relies only on your credit.",
                          "Mortgages and auto loans are secured by the home or car. Credit cards and most personal loans are "
                          "unsecured. Secured loans carry lower rates because the lender's risk is lower."),
    "collateral": ("What is collateral?",
                   "Collateral is an asset you pledge to a lender to secure a loan, which the lender can seize if you stop paying.",
                   "The home secures a mortgage and the car secures an auto loan. A savings deposit can secure a "
                   "credit-builder loan. Pledging collateral usually gets you a lower rate."),
    "loan_term": ("How does the length of a loan term affect what I pay?",
                  "A longer loan term lowers each monthly payment but increases the total interest you pay.",
                  "A $25,000 car loan at 7% costs $495.03 a month over 60 months and $426.23 over 72 months. The longer "
                  "term adds $986.76 of interest. Compare both the payment and the total cost."),
    "credit_limit": ("What is a credit limit?",
                     "A credit limit is the maximum balance your card issuer lets you carry on a credit card.",
                     "With a $5,000 limit and a $1,200 balance, you have $3,800 of available credit. Issuers set the limit "
                     "from your income and credit history. Low balances keep utilization low."),
    "chargeback": ("What is a chargeback?",
                   "A chargeback is a reversal of a card payment that your card issuer makes after you dispute a charge.",
                   "The issuer takes the money back from the merchant's bank and returns it to you when the dispute "
                   "succeeds. Common reasons are fraud, items not received and double billing."),
    "pending": ("What does a pending transaction mean?",
                "A pending transaction is a card purchase or deposit the bank has authorized but not yet settled.",
                "It reduces your available balance right away. Most pending transactions settle within one to three "
                "business days. Restaurant and gas charges can post for a different final amount."),
    "available_balance": ("Why is my available balance lower than my current balance?",
                          "Your available balance is lower because it subtracts pending transactions that have not yet cleared, while the current balance does not.",
                          "If your current balance is $1,000 and a $200 card purchase is pending, your available balance "
                          "is $800. Spend from the available balance to avoid overdrafts."),
    "check_hold": ("Why did my bank put a hold on my check deposit?",
                   "A hold gives your bank time to confirm the check clears before the full amount becomes available to spend.",
                   "Holds usually last one to two business days and run longer for large deposits or new accounts. Your "
                   "deposit receipt or app shows the date the funds become available."),
    "stop_payment": ("What is a stop payment order?",
                     "A stop payment is an instruction to your bank not to pay a check or recurring ACH debit you authorized.",
                     "Give the bank the check number or payment details, amount and payee before it is processed. Banks "
                     "usually charge a fee for it. For recurring debits, also cancel the authorization with the merchant."),
    "p2p": ("Are peer-to-peer payment apps safe to use?",
            "Peer-to-peer payment apps are safe for paying people you know, but payments are instant and hard to reverse, so treat them like cash.",
            "Send money only to people you know and trust. Double-check the recipient's phone number or email before "
            "you confirm. Never pay strangers for goods you have not received."),
    "identity_theft": ("What should I do if my identity is stolen?",
                       "Freeze your credit with all three bureaus, contact your bank and card issuers, and change your passwords right away.",
                       "Review your credit reports for accounts you did not open and dispute them. Close any fraudulent "
                       "accounts. In the US, file a report at IdentityTheft.gov to get a recovery plan."),
    "lost_card": ("What should I do if I lose my debit card?",
                  "Lock the card in your banking app or call your bank immediately, and the bank will cancel it and send a replacement.",
                  "Review recent transactions and dispute any you did not make. Reporting quickly limits your liability "
                  "for fraudulent charges. Update automatic payments with the new card number."),
    "liquidity": ("What does liquidity mean in finance?",
                  "Liquidity is how quickly and cheaply an asset can be turned into cash without losing value.",
                  "Cash and checking balances are fully liquid. Stocks are highly liquid because they sell within seconds, "
                  "though the price varies. A house is illiquid because selling takes weeks and costs fees."),
    "opportunity_cost": ("What is opportunity cost?",
                         "Opportunity cost is the value of the best alternative you give up when you make a financial choice.",
                         "Keeping $10,000 in a checking account paying 0% instead of a savings account paying 4% costs $400 "
                         "in lost interest each year. Comparing choices this way shows their true cost."),
    "sinking_fund": ("What is a sinking fund?",
                     "A sinking fund is money you set aside each month for a known future expense.",
                     "To pay a $1,200 insurance premium due in 12 months, you save $100 a month. Common uses are car "
                     "repairs, holidays and annual subscriptions. It keeps large bills off your credit card."),
    "vesting": ("What does vesting mean in a retirement plan?",
                "Vesting is the schedule that determines when your employer's contributions to your retirement plan become fully yours.",
                "Your own contributions are always 100% vested. With a three-year cliff, you own all employer matches "
                "after three years of service and none before. Leaving early forfeits the unvested part."),
    "employer_match": ("What is an employer match?",
                       "An employer match is money your employer adds to your retirement account based on how much you contribute.",
                       "With a 100% match on up to 5% of salary, contributing $3,000 of a $60,000 salary brings another "
                       "$3,000. Contribute at least enough to get the full match."),
    "hsa": ("What is an HSA?",
            "A health savings account (HSA) is a tax-advantaged US account for medical costs, available to people with a high-deductible health plan.",
            "Contributions are tax-deductible, growth is tax-free, and withdrawals for qualified medical expenses are "
            "tax-free. Unused money rolls over every year and stays with you when you change jobs."),
    "recession": ("What is a recession?",
                  "A recession is a significant decline in economic activity across the economy that lasts more than a few months.",
                  "It shows up in falling GDP, income, employment and retail sales. A common rule of thumb is two "
                  "consecutive quarters of falling real GDP. Unemployment rises during a recession."),
    "rate_hikes": ("How do central bank rate hikes affect my loans and savings?",
                   "When a central bank raises its policy rate, borrowing costs rise and savings accounts start paying more.",
                   "Credit card APRs and variable-rate loans follow the policy rate, usually within a billing cycle or "
                   "two. Savings accounts and new CDs pay more. Existing fixed-rate loans do not change."),
    "prime_rate": ("What is the prime rate?",
                   "The prime rate is the interest rate banks charge their most creditworthy customers, and many variable loans are priced as prime plus a margin.",
                   "In the US it sits three percentage points above the top of the federal funds target range. A card "
                   "priced at prime plus 14% rises when prime rises."),
    "heloc": ("What is a HELOC?",
              "A HELOC (home equity line of credit) is a revolving credit line secured by the equity in your home.",
              "You borrow, repay and borrow again up to the limit during the draw period, typically 10 years. Rates are "
              "usually variable. Your home secures the line, so missed payments risk foreclosure."),
    "home_equity": ("What is home equity?",
                    "Home equity is your home's market value minus what you still owe on your mortgage.",
                    "A home worth $450,000 with a $300,000 mortgage balance has $150,000 of equity. Equity grows as you "
                    "pay down principal and as the home's value rises."),
    "fx_fee": ("What is a foreign transaction fee?",
               "A foreign transaction fee is a charge, usually 1% to 3% of the purchase, that a card issuer adds to transactions processed abroad or in a foreign currency.",
               "A $500 purchase with a 3% fee costs $15 extra. Many travel credit cards charge no foreign "
               "transaction fee."),
    "savings_rate": ("What is a savings rate?",
                     "Your savings rate is the share of your income you save, calculated as savings divided by income.",
                     "Saving $900 of $6,000 monthly take-home pay is a 15% savings rate. A higher rate shortens the time "
                     "to every goal. Automatic transfers on payday make it stick."),
    "t_bills": ("What are Treasury bills?",
                "Treasury bills are short-term US government debt that matures in one year or less and is sold at a discount to face value.",
                "You pay less than the $1,000 face value and receive the full $1,000 at maturity; the difference is "
                "your interest. T-bill interest is exempt from state and local income tax."),
    "credit_union": ("How is a credit union different from a bank?",
                     "A credit union is a not-for-profit cooperative owned by its members, while a bank is a for-profit company owned by shareholders.",
                     "Credit unions return earnings to members through lower loan rates, higher savings rates and fewer "
                     "fees. You must meet membership requirements, such as where you live or work."),
    "ncua": ("Are credit union deposits insured?",
             "Yes, deposits at federally insured credit unions are protected by the NCUA up to $250,000 per member, per institution, for each ownership category.",
             "The National Credit Union Share Insurance Fund works like FDIC insurance at banks. It covers share "
             "accounts, share drafts and share certificates."),
    "auto_pay": ("Is it a good idea to set up autopay for my bills?",
                 "Yes, autopay prevents late payments, which protects your credit score and avoids late fees.",
                 "Set credit cards to pay at least the minimum, or the full statement balance to avoid interest. Keep a "
                 "buffer in checking so automatic payments never cause an overdraft."),
    "credit_age": ("Does closing an old credit card hurt my credit score?",
                   "Closing an old card can lower your score, because it removes that card's limit and raises your utilization.",
                   "Closed accounts in good standing stay on your report for up to 10 years, so the age effect comes "
                   "later. Keeping a no-fee card open with small, paid-off purchases avoids both effects."),
}

# Whole conceptual questions kept out of training; the first VALIDATION_CONCEPTS go to
# validation, the rest to test.
VALIDATION_CONCEPTS = 6
HELDOUT_CONCEPTS = ["kyc", "wire_ach", "escrow", "secured_card", "swift_iban", "capital_gain", "rebalancing",
                    "term_whole", "marginal_rate", "avalanche_snowball", "collateral", "chargeback",
                    "check_hold", "opportunity_cost", "vesting", "t_bills", "credit_union", "ncua", "prime_rate"]

# Two-turn conceptual conversations: first concept, follow-up phrasing, second concept.
CONCEPT_PAIRS = {
    "train": [("ira", "How is a Roth different from the traditional kind?", "roth"),
              ("credit_score", "What goes into calculating it?", "fico_factors"),
              ("apr", "And how is APY different?", "apy"),
              ("etf", "How does that compare with a mutual fund?", "mutual_vs_etf"),
              ("home_equity", "Can I borrow against it with a line of credit?", "heloc")],
    "heldout": [("credit_union", "And are my deposits there insured?", "ncua")],
}


# ---------------------------------------------------------------------------
# checks and assembly
# ---------------------------------------------------------------------------

def word_count(text: str) -> int:
    return len(text.split())


def check_assistant(text: str, where: str) -> None:
    if not HOUSE_FORMAT.match(text):
        raise ValueError(f"{where}: not in the house format: {text!r}")
    n = word_count(text)
    if not MIN_WORDS <= n <= MAX_WORDS:
        raise ValueError(f"{where}: {n} words (want {MIN_WORDS}-{MAX_WORDS}): {text!r}")
    if HEDGES.search(text):
        raise ValueError(f"{where}: contains a hedge: {text!r}")


NUMBER = re.compile(r"[$]?\d[\d,.]*%?")


def five_grams(text: str, mask_numbers: bool = False) -> set[tuple[str, ...]]:
    text = text.lower()
    if mask_numbers:  # compares phrasing alone: "$1,200 at 5%" and "$900 at 4%" look the same
        text = NUMBER.sub("<n>", text)
    words = text.split()
    if len(words) < 5:
        return {tuple(words)}
    return {tuple(words[i:i + 5]) for i in range(len(words) - 4)}


def jaccard(a: set, b: set) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0


def tool_turns(calc: tuple[str, int], answer: str, call_id: str = "call_1") -> list[dict] | None:
    """The assistant's ``calculate`` call and the tool's result, or None when the answer does not
    quote the result (a cent of rounding apart): such an example is answered directly."""
    expr, decimals = calc
    result = tool_result(expr, decimals)
    if result not in answer:
        return None
    call = {"id": call_id, "type": "function",
            "function": {"name": "calculate", "arguments": {"expression": expr, "round_to": decimals}}}
    return [{"role": "assistant", "content": "", "tool_calls": [call]},
            {"role": "tool", "tool_call_id": call_id, "name": "calculate", "content": result}]


def conversation(rng: random.Random, turns: list[tuple], kind: str | None = None) -> dict:
    """A conversation of (user, assistant[, key]) turns; with ``kind``, each turn that has a key is
    worked out with the calculator first (a follow-up question too: the model learns to reach
    for the tool whenever a figure must be computed, not only on the first question)."""
    messages = []
    if rng.random() < SYSTEM_PROMPT_SHARE:
        messages.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
    for k, (user, assistant, *key) in enumerate(turns):
        messages.append({"role": "user", "content": user})
        calc = expression(kind, key[0]) if kind is not None and key and key[0] is not None else None
        if calc is not None:
            messages += tool_turns(calc, assistant, call_id=f"call_{k + 1}") or []
        messages.append({"role": "assistant", "content": assistant})
    return {"messages": messages}


def build_split(rng: random.Random, split: str, per_kind: int, banned_mains: dict[str, set],
                seen_questions: set[str], concept_ids: list[str],
                pairs: list[tuple[str, str, str]], with_tools: bool) -> tuple[list[tuple[str, dict]], dict[str, set]]:
    """(kind, conversation) pairs of one split, shuffled, and the main amounts used per kind;
    conceptual questions have kind ``"concept"``."""
    examples: list[tuple[str, dict]] = []
    mains: dict[str, set] = {}
    for kind, make in KINDS.items():
        mains[kind] = set()
        made = 0
        tries = 0
        while made < per_kind:
            tries += 1
            if tries > 10_000:
                raise RuntimeError(f"{kind}: could not draw {per_kind} distinct {split} examples")
            want_followup = made % FOLLOWUP_EVERY == 1
            key, q, a, follow = make(rng, split, want_followup)
            if q in seen_questions or key[0] in banned_mains.get(kind, set()):
                continue
            seen_questions.add(q)
            mains[kind].add(key[0])
            turns = [(q, a, key)] + ([follow] if follow else [])
            examples.append((kind, conversation(rng, turns, kind if with_tools else None)))
            made += 1
    paired = {c for first, _, second in pairs for c in (first, second)}
    for first, follow_q, second in pairs:
        turns = [(CONCEPTS[first][0], reply(*CONCEPTS[first][1:])),
                 (follow_q, reply(*CONCEPTS[second][1:]))]
        examples.append(("concept", conversation(rng, turns)))
    for cid in concept_ids:
        if cid not in paired:
            q, a, d = CONCEPTS[cid]
            examples.append(("concept", conversation(rng, [(q, reply(a, d))])))
    rng.shuffle(examples)
    out = []
    for i, (kind, ex) in enumerate(examples):
        for msg in ex["messages"]:
            if msg["role"] == "assistant" and not msg.get("tool_calls"):
                check_assistant(msg["content"], f"{split} example {i} ({kind})")
        out.append((kind, ex))
    return out, mains


def user_messages(ex: dict) -> list[str]:
    return [m["content"] for m in ex["messages"] if m["role"] == "user"]


def max_overlap(heldout: list[dict], train: list[dict], mask_numbers: bool = False) -> tuple[float, str, str]:
    train_grams = [(u, five_grams(u, mask_numbers)) for ex in train for u in user_messages(ex)]
    best = (0.0, "", "")
    for ex in heldout:
        for u in user_messages(ex):
            g = five_grams(u, mask_numbers)
            for tu, tg in train_grams:
                j = jaccard(g, tg)
                if j > best[0]:
                    best = (j, u, tu)
    return best


def without_tools(row: dict) -> dict:
    """The same conversation answered directly: the call and the tool's result removed."""
    return {"messages": [m for m in row["messages"] if m["role"] != "tool" and not m.get("tool_calls")]}


def merge_mains(*maps: dict[str, set]) -> dict[str, set]:
    out: dict[str, set] = {}
    for m in maps:
        for k, v in m.items():
            out.setdefault(k, set()).update(v)
    return out


def build() -> tuple[list[dict], list[dict], list[dict]]:
    """The train, validation and test conversations."""
    return tuple([ex for _, ex in rows] for rows in build_labelled())


def build_labelled() -> tuple[list[tuple[str, dict]], ...]:
    """Train, validation and test as (kind, conversation) pairs, in file order."""
    missing = [c for c in HELDOUT_CONCEPTS if c not in CONCEPTS]
    if missing:
        raise KeyError(f"held-out concepts not defined: {missing}")
    for split, pairs in CONCEPT_PAIRS.items():
        for first, _, second in pairs:
            for cid in (first, second):
                if (cid in HELDOUT_CONCEPTS) != (split == "heldout"):
                    raise ValueError(f"concept {cid!r} is paired in {split} but belongs to the other split")
    rng = random.Random(SEED)
    seen: set[str] = set()
    val_concepts, test_concepts = HELDOUT_CONCEPTS[:VALIDATION_CONCEPTS], HELDOUT_CONCEPTS[VALIDATION_CONCEPTS:]
    # Test first, then validation around its numbers, then training around both.
    # Test is plain (question -> answer): the evaluation's tool loop makes the calls itself.
    test, test_mains = build_split(rng, "heldout", TEST_PER_KIND, {}, seen, test_concepts,
                                   CONCEPT_PAIRS["heldout"], with_tools=False)
    validation, val_mains = build_split(rng, "heldout", VALIDATION_PER_KIND, test_mains, seen, val_concepts, [],
                                        with_tools=True)
    train_concepts = [c for c in CONCEPTS if c not in HELDOUT_CONCEPTS]
    train, _ = build_split(rng, "train", TRAIN_PER_KIND, merge_mains(test_mains, val_mains), seen,
                           train_concepts, CONCEPT_PAIRS["train"], with_tools=True)
    return train, validation, test


def write_jsonl(path: Path, rows: list[dict]) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="folder to write train.jsonl, validation.jsonl and test.jsonl into")
    args = parser.parse_args(argv)
    train, validation, test = build()
    heldout = validation + test
    overlap, hq, tq = max_overlap(heldout, train)
    phrasing, phq, ptq = max_overlap(heldout, train, mask_numbers=True)
    for value, a, b in ((overlap, hq, tq), (phrasing, phq, ptq)):
        if value > MAX_HELDOUT_JACCARD:
            raise SystemExit(f"held-out overlaps train (5-gram Jaccard {value:.3f}):\n  {a}\n  {b}")
    args.out.mkdir(parents=True, exist_ok=True)
    sets = (("train", [without_tools(r) for r in train]), ("validation", [without_tools(r) for r in validation]),
            ("test", test), ("train_tools", train), ("validation_tools", validation))
    for name, rows in sets:
        write_jsonl(args.out / f"{name}.jsonl", rows)
    two_turn = lambda rows: sum(len(user_messages(r)) > 1 for r in rows)  # noqa: E731
    with_system = lambda rows: sum(r["messages"][0]["role"] == "system" for r in rows)  # noqa: E731
    for name, rows in sets:
        print(f"{name}: {len(rows)} examples, {two_turn(rows)} two-turn, {with_system(rows)} with a system prompt")
    print(f"max word-5-gram Jaccard, validation+test vs train user messages: {overlap:.3f} "
          f"(limit {MAX_HELDOUT_JACCARD})")
    print(f"same check with every number masked (phrasing only): {phrasing:.3f}")
    print(f"  closest pair: {phq!r} ~ {ptq!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
