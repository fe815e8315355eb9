"""The exceptions that decide sftflow's exit codes, importable without torch.

The command line maps them to exit codes (bad input: 2; a run that finished but failed: 1)
and must do so without loading the training or evaluation stack first, so they live here
and the modules that raise them re-export them.
"""

from __future__ import annotations

from pathlib import Path

from .config import ConfigError
from .schema import RecordError


class EvalFailed(RuntimeError):
    """The eval finished but a gate failed (e.g. forgetting beyond ``fail_drop``)."""

    def __init__(self, reasons: list[str], metrics_path: Path | None = None):
        self.reasons = reasons
        self.metrics_path = metrics_path
        super().__init__("evaluation failed: " + "; ".join(reasons))


class NonFiniteLoss(RuntimeError):
    """Training diverged (NaN/inf loss, gradient or weights) and was stopped."""


# Exit 2: the input (a config, a flag, a record) is wrong; nothing ran to completion.
BAD_INPUT = (ConfigError, RecordError)
# Exit 1: the run finished and its own check says the result is not good enough.
RUN_FAILED = (EvalFailed, NonFiniteLoss)

__all__ = ["ConfigError", "RecordError", "EvalFailed", "NonFiniteLoss", "BAD_INPUT", "RUN_FAILED"]
