"""``calculate``: arithmetic for the model, evaluated safely.

A 135M model cannot multiply six-digit numbers, but it can write ``20000 * (1 + 0.05) ** 6``
and copy the result. The expression comes from model output, so it is parsed with
``ast`` and walked node by node: numbers, ``+ - * / **``, unary minus and parentheses
are allowed, and nothing else (no names, attributes, calls, subscripts, comparisons),
so there is nothing to escape into. ``eval`` is never used. All arithmetic is in
floats, so ``10 ** 10 ** 10`` cannot build a giant integer: exponents are capped and an
overflow is an error, as is division by zero.

Written by hand because the well-kept options are either ``eval`` with a filtered
namespace (escapable) or a full symbolic library (sympy parses via ``eval``).
"""

from __future__ import annotations

import ast
import math
import operator

MAX_CHARS = 300
MAX_NODES = 120
MAX_EXPONENT = 1000

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}


class CalculatorError(ValueError):
    """The expression is not plain arithmetic, or its value is not a finite number."""


def _eval(node: ast.AST) -> float:
    if isinstance(node, ast.Expression):
        return _eval(node.body)
    if isinstance(node, ast.Constant):
        if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
            raise CalculatorError(f"only numbers are allowed, got {node.value!r}")
        return float(node.value)
    if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        return _UNARY[type(node.op)](_eval(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        left, right = _eval(node.left), _eval(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT:
            raise CalculatorError(f"exponent {right:g} is too large (limit {MAX_EXPONENT})")
        if isinstance(node.op, ast.Div) and right == 0:
            raise CalculatorError("division by zero")
        try:
            value = _BINARY[type(node.op)](left, right)
        except OverflowError:
            raise CalculatorError("the result is too large") from None
        if isinstance(value, complex):
            raise CalculatorError("the result is not a real number")
        return value
    what = type(node).__name__
    if isinstance(node, ast.Name):
        what = f"the name {node.id!r}"
    elif isinstance(node, ast.Attribute):
        what = f"the attribute {node.attr!r}"
    elif isinstance(node, (ast.BinOp, ast.UnaryOp)):
        what = f"the operator {type(node.op).__name__}"
    raise CalculatorError(f"{what} is not allowed: use numbers, + - * / ** and parentheses")


def safe_eval(expression: str) -> float:
    """The value of an arithmetic expression, or ``CalculatorError`` saying what is wrong."""
    if not isinstance(expression, str) or not expression.strip():
        raise CalculatorError("the expression is empty")
    if len(expression) > MAX_CHARS:
        raise CalculatorError(f"the expression is longer than {MAX_CHARS} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError as e:
        raise CalculatorError(f"not an arithmetic expression: {e.msg}") from None
    if sum(1 for _ in ast.walk(tree)) > MAX_NODES:
        raise CalculatorError(f"the expression has more than {MAX_NODES} parts")
    value = _eval(tree)
    if not math.isfinite(value):
        raise CalculatorError("the result is not a finite number")
    return value


def format_result(value: float, round_to: int | None = None) -> str:
    """``round_to`` decimals with thousands separators (what the answer quotes), else 10 digits."""
    if round_to is not None:
        return f"{value:,.{round_to}f}"
    return f"{value:.10g}"


def calculate(expression: str, round_to: int | None = None) -> str:
    if round_to is not None and (not isinstance(round_to, int) or isinstance(round_to, bool)
                                 or not 0 <= round_to <= 10):
        raise CalculatorError(f"round_to must be a whole number from 0 to 10, got {round_to!r}")
    return format_result(safe_eval(expression), round_to)


CALCULATE_SCHEMA = {
    "type": "object",
    "properties": {
        "expression": {"type": "string",
                       "description": "arithmetic with numbers, + - * / ** and parentheses, e.g. 20000 * 1.05 ** 6"},
        "round_to": {"type": "integer", "description": "decimals to round the result to (optional)"},
    },
    "required": ["expression"],
}
