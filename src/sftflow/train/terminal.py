"""What a training run shows on the terminal: one progress bar per phase, then a summary.

The Trainer's own printing (a tqdm bar with every log dict written between its
updates, or the dicts alone when tqdm is off) is replaced by ``RunProgress``: a rich
bar for training with the latest loss beside it, and one for each evaluation pass.
Every logged row still goes to ``log.jsonl`` (``JsonlLogger``); the terminal shows
only what a person reads while waiting.

Library chatter that says nothing about the run (transformers' bars for loading and
writing weights, a note on checkpoint ordering) is silenced here, only around the
calls that produce it.
"""

from __future__ import annotations

import logging
import math
from contextlib import contextmanager
from typing import Iterator

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from transformers import TrainerCallback

console = Console(stderr=True)


def fmt_loss(x: float | None) -> str:
    return "-" if x is None or not isinstance(x, (int, float)) or not math.isfinite(x) else f"{x:.4f}"


class RunProgress(TrainerCallback):
    """A rich bar for the optimizer steps (with the live loss) and one per evaluation pass."""

    def __init__(self, out: Console | None = None):
        self.console = out or console
        self.progress: Progress | None = None
        self.train_task = None
        self.eval_task = None
        self.loss: float | None = None
        self.eval_loss: float | None = None

    def _start(self) -> Progress:
        if self.progress is None:
            self.progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[status]}"), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=self.console)
            self.progress.start()
        return self.progress

    def _status(self) -> str:
        parts = [f"loss {fmt_loss(self.loss)}"] + ([f"eval {fmt_loss(self.eval_loss)}"] if self.eval_loss is not None else [])
        return "  ".join(parts)

    def on_train_begin(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            self.train_task = self._start().add_task("train", total=state.max_steps,
                                                     completed=state.global_step, status=self._status())

    def on_step_end(self, args, state, control, **kwargs):
        if self.train_task is not None:
            self.progress.update(self.train_task, completed=state.global_step)

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "loss" in logs:
            self.loss = logs["loss"]
        if "eval_loss" in logs:
            self.eval_loss = logs["eval_loss"]
        if self.train_task is not None:
            self.progress.update(self.train_task, status=self._status())

    def on_prediction_step(self, args, state, control, eval_dataloader=None, **kwargs):
        if not state.is_world_process_zero:
            return
        if self.eval_task is None:
            total = len(eval_dataloader) if eval_dataloader is not None and hasattr(eval_dataloader, "__len__") \
                else None
            self.eval_task = self._start().add_task("evaluate", total=total, status="")
        self.progress.advance(self.eval_task)

    def on_evaluate(self, args, state, control, **kwargs):
        if self.eval_task is not None:
            self.progress.remove_task(self.eval_task)
            self.eval_task = None
        if self.train_task is None:
            self._stop()                # an evaluation outside training (the final one)

    def on_train_end(self, args, state, control, **kwargs):
        if self.train_task is not None:
            self.progress.update(self.train_task, completed=state.global_step, status=self._status())
            self.train_task = None
        self._stop()

    def _stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()
            self.progress = None


def summary_table(rows: list[tuple[str, str]], title: str = "sftflow train") -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column("measure", style="bold")
    table.add_column("value")
    for name, value in rows:
        table.add_row(name, value)
    return table


class _DropMessage(logging.Filter):
    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()


@contextmanager
def quiet_trainer_notes() -> Iterator[None]:
    """Drop transformers' note that file times are unreliable when it sorts checkpoints
    (it then sorts by step number, which is what we rely on anyway)."""
    log = logging.getLogger("transformers.trainer_utils")
    f = _DropMessage("mtime may not be reliable")
    log.addFilter(f)
    try:
        yield
    finally:
        log.removeFilter(f)


@contextmanager
def no_library_bars() -> Iterator[None]:
    """transformers draws bars while it loads and writes weights (a fraction of a second
    for a small model): bars that say nothing about the run, around the run's own."""
    from transformers.utils import logging as hf_logging
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()
