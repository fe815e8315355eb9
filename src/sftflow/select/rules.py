"""Selection rules as small boolean expressions over stored scores.

    (ppl > 20 or option_prob_sum < 0.5) and quality > 0.7
    pct(ifd) >= 90 and not ifd > 1

Names are keys of ``metadata["scores"]``; ``pct(name)`` is a record's percentile rank
(0-100, the share of measured values <= it) so a threshold can be relative. Parsed
with Python's ``ast`` and evaluated by a walker that knows only comparisons, and/or/not,
numbers and ``pct``: a rule can never run code. A missing or flagged score is NaN, and
a comparison with NaN is *unknown* rather than false, so that its negation is unknown too
(``not ifd > 1`` and ``ppl != 5`` do not hold for a record nobody measured). and/or
follow three-valued logic, and a record is selected only when the rule is known true:
never by a value nobody measured.
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
            value, known = self._truth(self.tree.body, cols, len(examples))
        return np.asarray(value & known, dtype=bool)   # unknown never selects

    def explain(self, example) -> str:
        sc = example.metadata.get("scores", {})
        vals = ", ".join(f"{n}={_fmt(sc.get(n))}" for n in self.names)
        return f"{self.text} [{vals}]"

    def _truth(self, node, cols, n) -> tuple[np.ndarray, np.ndarray]:
        """(value, known) per record: SQL's three-valued (Kleene) logic.

        A comparison is unknown where an operand is missing; ``not`` keeps unknown
        unknown (so ``not ifd > 1`` does not select a record without an ifd); ``and`` is
        false as soon as one known part is false, ``or`` true as soon as one known part is
        true, and unknown otherwise.
        """
        if isinstance(node, ast.BoolOp):
            parts = [self._truth(v, cols, n) for v in node.values]
            if isinstance(node.op, ast.And):
                decided_false = np.logical_or.reduce([known & ~value for value, known in parts])
                all_true = np.logical_and.reduce([known & value for value, known in parts])
                return all_true, all_true | decided_false
            decided_true = np.logical_or.reduce([known & value for value, known in parts])
            all_false = np.logical_and.reduce([known & ~value for value, known in parts])
            return decided_true, decided_true | all_false
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            value, known = self._truth(node.operand, cols, n)
            return ~value, known
        left = self._number(node.left, cols, n)
        value, known = np.ones(n, dtype=bool), np.isfinite(left)
        for op, right_node in zip(node.ops, node.comparators):     # 1 < ifd < 3: each link must hold
            right = self._number(right_node, cols, n)
            value &= _CMP[type(op)](left, right)
            known &= np.isfinite(right)
            left = right
        return value, known

    def _number(self, node, cols, n) -> np.ndarray:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self._number(node.operand, cols, n)
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
