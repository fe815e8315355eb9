"""Evaluate a tuned model against its base: held-out loss, generations, behaviour probes,
multiple-choice forgetting checks and an LLM judge."""

from .config import ChoiceSection, EvalConfig, JudgeSection, ProbeSpec
from ..probes import run_probes
from .run import EvalFailed, evaluate

__all__ = ["ChoiceSection", "EvalConfig", "EvalFailed", "JudgeSection", "ProbeSpec", "evaluate", "run_probes"]
