"""The ``calculate`` call behind each computed demo answer: an expression from the question's numbers.

For every computed kind, ``expression(kind, key)`` writes the arithmetic that produces
the figure the answer leads with, using the numbers as the question states them (a
rate of 5.25% is written ``5.25 / 100`` and a term of 15 years ``15 * 12``: copying the
question's figures is all the model has to do, never converting them), and the decimals
the answer shows. The builder runs it
through sftflow's own calculator (``sftflow/tools/calculator.py``, loaded by path so
the builder stays standard-library only), so the tool result in the data is exactly
what the evaluation's tool loop will return, and checks that the answer quotes it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def _load_calculator():
    path = Path(__file__).resolve().parents[2] / "tools" / "calculator.py"
    spec = importlib.util.spec_from_file_location("sftflow_demo_calculator", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


calculator = _load_calculator()


def plain(x: float) -> str:
    """A number as typed into a calculator: no thousands separators, no trailing zeros."""
    s = f"{x:.6f}".rstrip("0").rstrip(".")
    return s if s not in ("-0", "") else "0"


def _loan(P, rate, n):
    i = f"{plain(rate)} / 100 / 12"
    # Mortgages are asked in years (180/240/360 payments), car and personal loans in months.
    n = f"({n // 12} * 12)" if n >= 180 else f"{n}"
    return f"{P} * ({i}) * (1 + {i}) ** {n} / ((1 + {i}) ** {n} - 1)", 2


def expression(kind: str, key: tuple) -> tuple[str, int] | None:
    """(expression, decimals) for the answer's leading figure, or None when a kind has none."""
    if kind == "compound_interest":
        P, r, n, m = key
        return f"{P} * (1 + {plain(r)} / 100 / {m}) ** ({m} * {n})", 2
    if kind == "simple_interest":
        P, r, t = key
        return f"{P} * {plain(r)} / 100 * {t}", 2
    if kind == "loan_payment":
        return _loan(*key)
    if kind == "apr_apy":
        r, m, what = key
        if what == "apy":
            return f"((1 + {plain(r)} / 100 / {m}) ** {m} - 1) * 100", 2
        return f"{m} * ((1 + {plain(r)} / 100) ** (1 / {m}) - 1) * 100", 2
    if kind == "savings_goal":
        T, S, months = key
        return f"({T} - {S}) / {months}", 2
    if kind == "budget_50_30_20":
        inc, ask = key
        if ask == "savings_year":
            return f"{inc} * 0.2 * 12", 2
        return f"{inc} * {dict(all=0.5, savings=0.2, wants=0.3)[ask]}", 2
    if kind == "currency_conversion":
        amt, _frm, _to, rate, fee = key
        return (f"{amt} * {plain(rate)}" + (f" * (1 - {plain(fee)} / 100)" if fee else "")), 2
    if kind == "percentage_tip_fee":
        if key[1] == "tip":
            bill, _, p, k = key
            if k == 1:
                return f"{plain(bill)} * {plain(p)} / 100", 2
            return f"{plain(bill)} * (1 + {plain(p)} / 100) / {k}", 2
        if key[1] == "fee":
            amt, _, p = key
            return f"{amt} * {plain(p)} / 100", 2
        old, _, new = key
        return (f"({new} - {old}) / {old} * 100" if new > old else f"({old} - {new}) / {old} * 100"), 2
    if kind == "inflation":
        C, i, n, what = key
        g = f"(1 + {plain(i)} / 100)"
        return (f"{C} * {g} ** {n}" if what == "future" else f"{C} / {g} ** {n}"), 2
    if kind == "credit_card_interest":
        B, apr, _pay = key
        return f"{B} * {plain(apr)} / 100 / 12", 2
    if kind == "debt_to_income":
        G, _total, debts, annual = key
        income = f"({G * 12} / 12)" if annual else f"{G}"
        return f"({' + '.join(str(d) for d in debts)}) / {income} * 100", 1
    if kind == "emergency_fund":
        E, S, k = key
        return (f"{S} / {E}", 1) if k == "months" else (f"{E} * {k} - {S}", 0)
    if kind == "break_even":
        if len(key) == 3 and isinstance(key[1], float):
            F, p, v = key
            return f"{F} / ({plain(p)} - {plain(v)})", 2
        C, old, new = key
        return f"{C} / ({old} - {new})", 1
    if kind == "dividend_yield":
        price, ann, qd, how = key
        if how is False:                      # the question states the annual dividend
            return f"{plain(ann)} / {plain(price)} * 100", 2
        return f"{plain(qd)} * 4 / {plain(price)} * 100", 2
    if kind == "rule_of_72":
        x, _P, what = key
        return f"72 / {plain(x)}", 1
    return None


def tool_result(expr: str, decimals: int) -> str:
    return calculator.calculate(expr, round_to=decimals)
