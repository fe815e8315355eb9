"""Callbacks that make a training run watch itself.

- ``EarlyStopping``: stop when eval loss has not improved by more than ``min_delta``
  for ``patience`` evaluations. It is transformers' ``EarlyStoppingCallback`` (the
  Trainer keeps ``best_metric``, and ``load_best_model_at_end`` makes the best
  checkpoint the output) plus a logged event saying why the run stopped.
- ``OverfitMonitor``: warns when eval loss exceeds the latest train loss by more than
  ``gap`` (0.3 nats by default), or when eval loss rose ``rising`` evaluations in a row.
  It warns and does not stop: a widening gap on a small set is common and only
  sometimes bad; early stopping is the switch that acts.
- ``NonFiniteGuard``: stops the run the moment the loss, the gradient norm or the
  weights stop being finite, and cancels the checkpoint that would otherwise be saved
  from broken weights, so the last checkpoint on disk is the last good one. The check
  on weights matters: the Trainer's ``logging_nan_inf_filter`` (on by default) hides
  a NaN step's loss from the log, but it cannot hide NaN weights.

Each callback writes what it noticed as an ``{"step", "event", "message"}`` line into
the run's ``log.jsonl`` (the report lists these) and prints it.
"""

from __future__ import annotations

import copy
import math
import random
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from rich.console import Console
from transformers import EarlyStoppingCallback, TrainerCallback

from ..io.append_log import append_row

console = Console(stderr=True)


def default_log_path(args) -> Path:
    """log.jsonl beside the checkpoints folder (sftflow's train layout), else inside output_dir."""
    out = Path(args.output_dir)
    return (out.parent if out.name == "checkpoints" else out) / "log.jsonl"


class EventLog:
    """Appends event rows to log.jsonl and keeps them in memory for tests and smoke checks."""

    def __init__(self, path: str | Path | None = None):
        self.path = Path(path) if path else None
        self.events: list[dict[str, Any]] = []

    def bind(self, args) -> None:
        if self.path is None and getattr(args, "output_dir", None):
            self.path = default_log_path(args)

    def emit(self, state, event: str, message: str, level: str = "warning", **extra) -> dict:
        row = {"step": state.global_step, "event": event, "level": level, "message": message, **extra}
        self.events.append(row)
        color = "red" if level == "error" else "yellow" if level == "warning" else "cyan"
        console.print(f"[{color}][sftflow] step {state.global_step}: {message}[/{color}]")
        if self.path is not None and state.is_world_process_zero:
            append_row(self.path, row, fsync=False, default=float)     # whole lines only
        return row


def _eval_loss(metrics: dict | None) -> float | None:
    if not metrics:
        return None
    v = metrics.get("eval_loss")
    return float(v) if v is not None else None


class EarlyStopping(EarlyStoppingCallback):
    def __init__(self, patience: int, min_delta: float = 0.0, log: EventLog | None = None):
        super().__init__(early_stopping_patience=patience, early_stopping_threshold=min_delta)
        self.log = log or EventLog()
        self.stopped_at: int | None = None
        self.disabled = False

    def on_train_begin(self, args, state, control, **kwargs):
        self.log.bind(args)
        if str(getattr(args.eval_strategy, "value", args.eval_strategy)) == "no" or not args.metric_for_best_model:
            # transformers asserts here; a run without held-out data should still train.
            self.disabled = True
            self.log.emit(state, "early_stop_off", "early stopping is off: the run has no evaluation "
                          "(no held-out data or metric_for_best_model)")
            return
        return super().on_train_begin(args, state, control, **kwargs)

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        if self.disabled:
            return
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if control.should_training_stop and self.stopped_at is None:
            self.stopped_at = state.global_step
            self.log.emit(state, "early_stop",
                          f"early stopping: eval loss did not improve by more than "
                          f"{self.early_stopping_threshold} for {self.early_stopping_patience} "
                          f"evaluation(s); best {state.best_metric}", level="info",
                          best_eval_loss=state.best_metric)


class OverfitMonitor(TrainerCallback):
    def __init__(self, gap: float = 0.3, rising: int = 2, log: EventLog | None = None):
        self.gap = gap
        self.rising = rising
        self.log = log or EventLog()
        self.last_train: float | None = None
        self.evals: list[float] = []
        self.warnings: list[dict] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.log.bind(args)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs and "loss" in logs and isinstance(logs["loss"], (int, float)) and math.isfinite(logs["loss"]):
            self.last_train = float(logs["loss"])

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        ev = _eval_loss(metrics)
        if ev is None or not math.isfinite(ev):
            return
        self.evals.append(ev)
        if self.last_train is not None and ev - self.last_train > self.gap:
            self.warnings.append(self.log.emit(
                state, "overfit_gap",
                f"possible overfitting: eval loss {ev:.4f} exceeds train loss {self.last_train:.4f} "
                f"by {ev - self.last_train:.4f} (> {self.gap})", gap=ev - self.last_train))
        k = self.rising
        if len(self.evals) > k and all(self.evals[-i] > self.evals[-i - 1] for i in range(1, k + 1)):
            self.warnings.append(self.log.emit(
                state, "eval_rising",
                f"possible overfitting: eval loss rose {k} evaluations in a row "
                f"({' -> '.join(f'{x:.4f}' for x in self.evals[-k - 1:])})"))


class NonFiniteGuard(TrainerCallback):
    """Stop on NaN/inf loss, gradient norm or weights; never save a checkpoint from them."""

    def __init__(self, log: EventLog | None = None, check_weights: bool = True):
        self.log = log or EventLog()
        self.check_weights = check_weights
        self.tripped: dict[str, Any] | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.log.bind(args)

    def _trip(self, state, control, what: str) -> None:
        control.should_training_stop = True
        control.should_save = False
        control.should_evaluate = False
        if self.tripped is None:
            msg = (f"{what} at step {state.global_step}: training stopped. The last checkpoint saved "
                   f"before this step is the last good one. Usual causes: learning rate too high, "
                   f"fp16 overflow, or a batch with no supervised tokens.")
            self.tripped = self.log.emit(state, "non_finite", msg, level="error", what=what)

    @staticmethod
    def weights_finite(model) -> bool:
        import torch
        with torch.no_grad():
            return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # Runs after the optimizer step and before the Trainer logs, evaluates or
        # saves; checking weights only when one of those is due keeps it cheap.
        if self.check_weights and model is not None and (control.should_save or control.should_evaluate
                                                         or control.should_log):
            if not self.weights_finite(model):
                self._trip(state, control, "non-finite weights")

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key in ("loss", "grad_norm"):
            v = (logs or {}).get(key)
            if isinstance(v, (int, float)) and not math.isfinite(v):
                self._trip(state, control, f"non-finite {key.replace('_', ' ')} ({v})")
                return


def last_good_checkpoint(checkpoints_dir: str | Path, before_step: int | None = None) -> Path | None:
    """The newest ``checkpoint-N`` with N < before_step (all of them when None)."""
    d = Path(checkpoints_dir)
    found = []
    for p in d.glob("checkpoint-*"):
        try:
            n = int(p.name.split("-", 1)[1])
        except ValueError:
            continue
        if before_step is None or n < before_step:
            found.append((n, p))
    return max(found)[1] if found else None


def callbacks_for(cfg, log_path: str | Path | None = None) -> list[TrainerCallback]:
    """The callbacks a TrainConfig asks for. Early stopping needs eval and
    ``metric_for_best_model='eval_loss'`` in the TrainingArguments."""
    log = EventLog(log_path)
    cbs: list[TrainerCallback] = [NonFiniteGuard(log), OverfitMonitor(gap=cfg.overfit_gap, log=log)]
    if getattr(cfg, "early_stopping_patience", None):
        cbs.append(EarlyStopping(cfg.early_stopping_patience, cfg.early_stopping_min_delta, log=log))
    return cbs


def find(callbacks, kind: type) -> Any:
    return next((c for c in callbacks if isinstance(c, kind)), None)


class ProbeMetric(TrainerCallback):
    """Adds ``eval_probe_<name>`` (a behaviour probe's rate on a few prompts) to each evaluation.

    With ``metric_for_best_model="eval_probe_<name>"`` (and ``greater_is_better``
    matching the probe: True for a format rule, False for apologies) the best
    checkpoint is chosen by behaviour rather than loss. The Trainer picks the best
    from the same metrics dict after the callbacks run, so put this callback before
    early stopping when both use the probe.

    Measuring must not change the run it measures: generation seeds the global random
    generators and wants left padding, so the probe works on its own copy of the
    tokenizer (the training one is saved with the model) and puts every random state
    back afterwards (otherwise dropout and data order after an evaluation would depend
    on whether, and how often, the probe ran).
    """

    def __init__(self, prompts: list[list[dict[str, str]]], tokenizer, probe, *, max_new_tokens: int = 64,
                 generate=None, log: EventLog | None = None):
        from ..probes import as_specs
        self.prompts = prompts
        self.tokenizer = copy.deepcopy(tokenizer)
        self.spec = as_specs([probe])[0]
        self.key = f"eval_probe_{self.spec.name}"
        self.max_new_tokens = max_new_tokens
        self.generate = generate          # (model, prompts) -> answers; default: greedy via transformers
        self.log = log or EventLog()
        self.history: list[tuple[int, float]] = []

    def _answers(self, model) -> list[dict]:
        if self.generate is not None:
            return self.generate(model, self.prompts)
        from ..backends import GenParams
        from ..backends.transformers_backend import TransformersBackend
        be = TransformersBackend(model="training-model", model_obj=model, tokenizer=self.tokenizer,
                                 batch_size=8, device=str(next(model.parameters()).device))
        return [{"text": c.text, "finish_reason": c.finish_reason, "completion_tokens": c.completion_tokens}
                for c in be.generate(self.prompts, GenParams(max_new_tokens=self.max_new_tokens))]

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):
        from ..probes import run_probes
        if metrics is None or model is None:
            return
        was_training = model.training
        with preserved_rng():
            rate = run_probes(self._answers(model), [self.spec])[self.spec.name]["rate"]
        if was_training:
            model.train()
        metrics[self.key] = rate
        self.history.append((state.global_step, rate))


@contextmanager
def preserved_rng() -> Iterator[None]:
    """Python, numpy and torch (CPU and every CUDA device) random states, restored on exit."""
    import numpy as np
    import torch
    py, npy, cpu = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(npy)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


# Trackers the Trainer's ``report_to`` can feed, and the package each one needs.
TRACKERS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}


def installed_trackers() -> list[str]:
    import importlib.util
    return [name for name, module in TRACKERS.items() if importlib.util.find_spec(module) is not None]


def check_report_to(names: list[str]) -> list[str]:
    """Validate ``report_to`` before a long run starts, not at its first log line.

    "none" or an empty list turns tracking off (the default). "auto" means every
    installed tracker. An unknown or uninstalled tracker is an error that says which
    ones are available here.
    """
    names = [n.strip().lower() for n in names if n and n.strip()]
    if not names or names == ["none"]:
        return []
    have = installed_trackers()
    if names == ["auto"]:
        return have
    unknown = [n for n in names if n not in TRACKERS]
    if unknown:
        raise ValueError(f"report_to: unknown tracker(s) {', '.join(unknown)}; "
                         f"sftflow supports {', '.join(TRACKERS)}")
    missing = [n for n in names if n not in have]
    if missing:
        raise ValueError(f"report_to: {', '.join(missing)} not installed (pip install "
                         f"{' '.join(TRACKERS[n] for n in missing)}); installed here: "
                         f"{', '.join(have) or 'none'}")
    return names
