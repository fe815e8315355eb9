"""Selection rules as small boolean expressions over stored scores.

    (ppl > 20 or option_prob_sum < 0.5) and quality > 0.7
    pct(ifd) >= 90 and not ifd > 1

Names are keys of ``metadata["scores"]``; ``pct(name)`` is a record's percentile rank
(0-100, the share of measured values <= it) so a threshold can be relative. Parsed
with Python's ``ast`` and evaluated by a walker that knows only comparisons, and/or/not,
numbers and ``pct``: a rule can never run code. A missing or flagged score is NaN, and
every comparison with NaN is false, so a record is never selected by a value nobody
measured.
"""

from __future__ import annotations

import ast
import operator
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

_CMP: dict[type, Callable[[Any, Any], Any]] = {
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Eq: operator.eq, ast.NotEq: operator.ne,
}


class RuleError(ValueError):
    pass


def score_column(examples, name: str) -> np.ndarray:
    """Values of one score for every record, NaN where missing or not a number."""
    out = np.full(len(examples), np.nan, dtype=np.float64)
    for i, ex in enumerate(examples):
        v = ex.metadata.get("scores", {}).get(name)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[i] = float(v)
    return out


def percentile_rank(values: np.ndarray) -> np.ndarray:
    """100 * (share of measured values <= v); NaN stays NaN."""
    from scipy.stats import rankdata
    out = np.full(values.shape, np.nan)
    ok = np.isfinite(values)
    if ok.any():
        out[ok] = 100.0 * rankdata(values[ok], method="max") / ok.sum()
    return out


@dataclass
class Rule:
    text: str
    tree: ast.Expression
    names: list[str] = field(default_factory=list)

    def evaluate(self, examples) -> np.ndarray:
        cols = {n: score_column(examples, n) for n in self.names}
        with np.errstate(invalid="ignore"):
            return np.asarray(self._eval(self.tree.body, cols, len(examples)), dtype=bool)

    def explain(self, example) -> str:
        sc = example.metadata.get("scores", {})
        vals = ", ".join(f"{n}={_fmt(sc.get(n))}" for n in self.names)
        return f"{self.text} [{vals}]"

    def _eval(self, node, cols, n):
        if isinstance(node, ast.BoolOp):
            parts = [self._eval(v, cols, n) for v in node.values]
            fn = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
            acc = parts[0]
            for p in parts[1:]:
                acc = fn(acc, p)
            return acc
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return np.logical_not(self._eval(node.operand, cols, n))
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self._eval(node.operand, cols, n)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, cols, n)
            acc = np.ones(n, dtype=bool)
            for op, right_node in zip(node.ops, node.comparators):
                right = self._eval(right_node, cols, n)
                acc = acc & _CMP[type(op)](left, right)
                left = right
            return acc
        if isinstance(node, ast.Name):
            return cols[node.id]
        if isinstance(node, ast.Constant):
            return np.full(n, float(node.value))
        if isinstance(node, ast.Call):
            return percentile_rank(cols[node.args[0].id])
        raise RuleError(f"cannot evaluate {ast.dump(node)}")   # unreachable after parse_rule


def _fmt(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def parse_rule(text: str) -> Rule:
    """Parse and check a rule; errors say which part is not allowed."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as e:
        raise RuleError(f"rule {text!r} is not a valid expression: {e.msg}") from None
    names: list[str] = []

    def check(node, top=False):
        if isinstance(node, ast.BoolOp):
            for v in node.values:
                check(v, True)
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            check(node.operand, True)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _CMP:
                    raise RuleError(f"rule {text!r}: operator {type(op).__name__} is not allowed")
            for v in [node.left, *node.comparators]:
                check(v)
        elif top:
            raise RuleError(f"rule {text!r}: '{ast.unparse(node)}' is not a comparison "
                            "(write e.g. 'ppl > 20')")
        elif isinstance(node, ast.Name):
            if node.id not in names:
                names.append(node.id)
        elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) \
                and not isinstance(node.value, bool):
            pass
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            check(node.operand)
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "pct"
              and len(node.args) == 1 and not node.keywords and isinstance(node.args[0], ast.Name)):
            check(node.args[0])
        else:
            raise RuleError(f"rule {text!r}: '{ast.unparse(node)}' is not allowed (use score names, "
                            "numbers, pct(name), comparisons, and/or/not)")

    check(tree.body, True)
    return Rule(text=text.strip(), tree=tree, names=names)
