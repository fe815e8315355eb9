"""The transformers Trainer as sftflow runs it: the loss, the held-out loss, the schedule.

- Training loss: summed over supervised tokens and divided by the supervised tokens
  of the whole accumulated batch (and of every process), so batch 8 x accumulation 1
  equals batch 1 x accumulation 8.
- Held-out loss (``eval_loss``): token-weighted over the whole evaluation set, the
  total NLL of its supervised tokens divided by their number, which is what
  ``sftflow.evaluate.heldout`` reports as the final held-out loss. The Trainer's own
  ``eval_loss`` is the mean of per-batch means (each batch counted as a full one),
  which weights a batch of short answers like one of long answers; we replace it.
- The schedule (total optimizer steps, warmup, evaluation cadence) is computed the way
  the Trainer counts steps, per process: under an N-process launch each process sees
  1/N of the batches.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from transformers import EvalPrediction, Trainer, TrainerCallback, TrainingArguments

from ..io.append_log import append_row
from .callbacks import check_report_to
from .collate import PadCollator
from .config import TrainConfig
from .model_setup import use_bf16
from .packing import PackedCollator
from .supervised_loss import supervised_loss_per_row, supervised_loss_sum


class ListDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[dict[str, list[int]]]):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


class Collator:
    """Packed rows (with position_ids) or padded examples, whichever the batch holds."""

    def __init__(self, pad_token_id: int):
        self.padded = PadCollator(pad_token_id)
        self.packed = PackedCollator(pad_token_id)

    def __call__(self, features):
        return self.packed(features) if "position_ids" in features[0] else self.padded(features)


def token_weighted_loss(pred: EvalPrediction) -> dict[str, float]:
    """``eval_loss`` from per-example (NLL sum, supervised tokens): total NLL / total tokens."""
    sums = np.asarray(pred.predictions, dtype=np.float64)
    tokens = np.asarray(pred.label_ids, dtype=np.int64)
    n = int(tokens.sum())
    return {"loss": float(sums.sum() / n) if n else float("nan"), "supervised_tokens": n}


class MaskedLossTrainer(Trainer):
    """Trainer whose loss is normalised by supervised tokens across the accumulated batch,
    and whose ``eval_loss`` is token-weighted over the whole evaluation set."""

    def __init__(self, *args, fast_head: bool = True, **kwargs):
        kwargs.setdefault("compute_metrics", token_weighted_loss)
        super().__init__(*args, **kwargs)
        self.fast_head = fast_head
        self.loss_is_scaled_for_ga = True

    def _get_train_sampler(self, train_dataset=None):
        from transformers.trainer_pt_utils import LengthGroupedSampler

        from .length_sampler import ShuffledLengthGroupedSampler
        sampler = super()._get_train_sampler(train_dataset)
        if isinstance(sampler, LengthGroupedSampler):     # batches in random order: see length_sampler
            return ShuffledLengthGroupedSampler(sampler.lengths, sampler.batch_size, sampler.generator)
        return sampler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss_sum, n = supervised_loss_sum(model, inputs, fast_head=self.fast_head)
        if num_items_in_batch is not None and model.training:
            denom = num_items_in_batch.to(loss_sum.device) if torch.is_tensor(num_items_in_batch) \
                else torch.tensor(float(num_items_in_batch), device=loss_sum.device)
            # num_items_in_batch counts supervised tokens over the whole accumulated batch (and,
            # with average_tokens_across_devices, over every process); DDP then averages
            # gradients over processes, which the factor undoes.
            scale = self.accelerator.num_processes if self.args.average_tokens_across_devices else 1
            loss = loss_sum * scale / denom.clamp(min=1)
        else:
            loss = loss_sum / n.clamp(min=1)
        return (loss, None) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        # Per-example NLL sums and token counts travel as (predictions, labels): the
        # Trainer gathers them across processes (dropping a distributed sampler's padding
        # duplicates) and ``token_weighted_loss`` reduces them. No full logits are made.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            sums, tokens = supervised_loss_per_row(model, inputs, fast_head=self.fast_head)
        return None, sums.detach(), tokens


class JsonlLogger(TrainerCallback):
    """Every logged step (train and eval) as one JSON line: the report reads this."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        # one whole line per write: a kill tears at most the last, which resume repairs
        append_row(self.path, row, fsync=False, default=float)


@dataclass
class Schedule:
    steps_per_epoch: int       # optimizer steps per epoch, per process
    total_steps: int
    warmup_steps: int
    eval_strategy: str         # "steps" or "epoch"
    eval_steps: int | None     # with "steps"

    def to_dict(self) -> dict:
        return asdict(self)


def plan_schedule(cfg: TrainConfig, n_rows: int, num_processes: int = 1) -> Schedule:
    """Steps as the Trainer will count them.

    Each process iterates ceil(ceil(rows / batch) / processes) batches per epoch (the
    distributed sampler deals whole batches round-robin and pads the last round), and
    an optimizer step takes ``gradient_accumulation_steps`` of them (a partial group at
    the end of the epoch is a step too). Counting batches over all processes instead
    would make warmup and the evaluation cadence grow with the number of processes.
    """
    batches = math.ceil(math.ceil(n_rows / cfg.batch_size) / num_processes)
    per_epoch = max(math.ceil(batches / cfg.gradient_accumulation_steps), 1)
    total = cfg.max_steps if cfg.max_steps > 0 else math.ceil(per_epoch * cfg.epochs)
    if cfg.eval_steps:
        strategy, every = "steps", cfg.eval_steps
    elif cfg.max_steps > 0 or cfg.epochs < 1:
        # about four evaluations per run, but not more often than every 10 steps
        strategy, every = "steps", min(total, max(10, total // 4))
    else:
        strategy, every = "epoch", None
    return Schedule(steps_per_epoch=per_epoch, total_steps=total,
                    warmup_steps=math.ceil(cfg.warmup_ratio * total), eval_strategy=strategy, eval_steps=every)


def training_arguments(cfg: TrainConfig, schedule: Schedule, checkpoints: Path, *,
                       has_eval: bool) -> TrainingArguments:
    """TrainConfig -> TrainingArguments. The Trainer's own progress printing is off:
    ``terminal.RunProgress`` shows the run, ``log.jsonl`` keeps every logged row."""
    return TrainingArguments(
        output_dir=str(checkpoints),
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler,
        optim=cfg.optimizer,
        warmup_steps=schedule.warmup_steps,
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy=schedule.eval_strategy if has_eval else "no",
        eval_steps=schedule.eval_steps,
        save_strategy=schedule.eval_strategy,
        save_steps=schedule.eval_steps,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_eval and cfg.keep_best,
        metric_for_best_model=f"eval_probe_{cfg.best_probe['name']}" if cfg.best_probe else "eval_loss",
        greater_is_better=cfg.best_probe_higher_is_better if cfg.best_probe else False,
        bf16=use_bf16(cfg),
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=check_report_to(cfg.report_to) or "none",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        dataloader_num_workers=0,
        disable_tqdm=True,
        use_cpu=not torch.cuda.is_available(),
        save_only_model=False,
    )
