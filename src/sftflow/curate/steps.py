"""The Step protocol: measure, write the measurement into metadata, then decide.

Two shapes cover every curation step:

- ``Filter``: judges one record at a time. ``measure(ex)`` returns a dict of numbers
  that goes into ``ex.metadata["curate"][name]``; ``decide(ex, measured)`` returns
  ``True`` or ``(False, reason)`` (optionally ``(False, reason, value)``).
- ``Step``: needs the whole set (dedup, diversity, leakage). ``run(examples)`` returns
  a ``StepResult`` of kept examples and ``Rejected`` entries.

Either way a dropped record leaves as a ``Rejected`` with the step's name, a reason a
person can read and the measured value, so ``kept + rejected == input`` holds per step.

Groups are never split. Records that share ``metadata["group"]`` come from one source
(upsampled copies, paraphrases, the turns of one expanded conversation, the instances
of one task); splits are made by group, so a filter must not keep half of one. A
per-record filter therefore rejects the whole group when it rejects any member: the
defect is evidence about the source (a truncated turn makes the later turns that quote
it wrong too). The other members leave with the reason ``group <g>: member <id>
rejected: <reason>``, so every removal is still explained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from ..io import Rejected
from ..schema import Example

Decision = bool | tuple[bool, str] | tuple[bool, str, Any]


@dataclass
class StepResult:
    kept: list[Example]
    rejected: list[Rejected] = field(default_factory=list)
    flagged: int = 0  # records marked in metadata but kept (e.g. refusals by default)


def measurements(ex: Example, step: str) -> dict[str, Any]:
    """The dict where ``step`` writes what it measured on ``ex`` (created on first use)."""
    cur = ex.metadata.setdefault("curate", {})
    return cur.setdefault(step, {})


def reject(ex: Example, step: str, reason: str, value: Any = None) -> Rejected:
    return Rejected(record=ex.to_dict(), step=step, reason=reason, value=value)


class Step:
    """A curation step over the whole set. Subclasses set ``name`` and implement ``run``."""

    name: ClassVar[str] = "step"
    needs_all: ClassVar[bool] = True

    def run(self, examples: list[Example]) -> StepResult:  # pragma: no cover - interface
        raise NotImplementedError


class Filter(Step):
    """A step that judges each record on its own."""

    needs_all = False

    def measure(self, ex: Example) -> dict[str, Any]:  # pragma: no cover - interface
        raise NotImplementedError

    def decide(self, ex: Example, measured: dict[str, Any]) -> Decision:  # pragma: no cover
        raise NotImplementedError

    def measure_many(self, examples: list[Example]) -> list[dict[str, Any]]:
        """Batch hook: filters that call a tokenizer override this to batch the calls."""
        return [self.measure(ex) for ex in examples]

    def run(self, examples: list[Example]) -> StepResult:
        result = StepResult(kept=[])
        kept: list[tuple[Example, dict[str, Any]]] = []
        failed: dict[Any, str] = {}   # group -> why its first rejected member went
        for ex, m in zip(examples, self.measure_many(examples)):
            measurements(ex, self.name).update(m)
            decision = self.decide(ex, m)
            if decision is True:
                kept.append((ex, m))
                continue
            if decision is False or not isinstance(decision, tuple) or decision[0] is not False:
                raise TypeError(f"{type(self).__name__}.decide must return True or (False, reason), "
                                f"got {decision!r}")
            reason = decision[1]
            value = decision[2] if len(decision) > 2 else m
            result.rejected.append(reject(ex, self.name, reason, value))
            group = group_of(ex)
            if group is not None and group not in failed:
                failed[group] = f"member {ex.id} rejected: {reason}"
        for ex, m in kept:
            group = group_of(ex)
            if group in failed:
                result.rejected.append(reject(ex, self.name, f"group {group!r}: {failed[group]}",
                                              {"group": group}))
                continue
            result.kept.append(ex)
            if m.get("flagged"):
                result.flagged += 1
        return result


def group_of(ex: Example) -> Any:
    """The record's group (None when it has none); lists and dicts are keyed by their text."""
    g = ex.metadata.get("group")
    return g if g is None or isinstance(g, (str, int, float, bool)) else repr(g)
