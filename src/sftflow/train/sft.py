"""Supervised fine-tuning on the transformers Trainer, with PEFT for LoRA.

What we add on top of the Trainer, and why:
- examples are encoded once with ``sftflow.encode`` (exact masks), too-long ones are
  skipped, counted and written out instead of silently truncated;
- the loss is summed over supervised tokens and divided by the number of supervised
  tokens in the whole accumulated batch, so batch 8 x accumulation 1 equals batch 1 x
  accumulation 8 (averaging per micro-batch would weight short answers more); the
  held-out loss is token-weighted over the whole evaluation set, on the tokens
  ``eval_train_on`` names, so it is the number ``sftflow eval`` reports (``trainer.py``);
- the LM head runs only at supervised positions (see ``supervised_loss.py``);
- the held-out split is made (seeded) before anything else touches the data, and the
  checkpoint with the best eval loss is what the run outputs.

``train()`` reads top to bottom as the run's phases: resolve the config, read and
encode the data, build the model, wire the Trainer, train, measure, save.
"""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import TrainerCallback

from ..chat import encode_many, summarize_formats
from ..config import dump_yaml
from ..io import Rejected, read_examples, write_examples, write_jsonl, write_rejected
from ..io.append_log import iter_log, repair_torn_tail
from ..io.atomic import atomic_dir, atomic_write_text, staged_into
from ..models import load_tokenizer, resolve_model
from .checkpoints import (ResumeStamp, check_resume, checkpoint_step, clear_for_fresh_run, data_fingerprint,
                          log_rows_to_keep, newest_complete, trajectory_config)
from .callbacks import NonFiniteGuard, ProbeMetric, callbacks_for, find, last_good_checkpoint
from .config import TrainConfig
from .model_setup import build_model, with_training_template
from .packing import pack_rows
from .terminal import RunProgress, console, fmt_loss, no_library_bars, quiet_trainer_notes, summary_table
from .trainer import (Collator, JsonlLogger, ListDataset, MaskedLossTrainer, Schedule, plan_schedule,
                      training_arguments)

DEFAULT_MODEL = "smollm2-135m-instruct"
# Held-out loss measured on the final answer unless told otherwise: `sftflow eval`'s default.
DEFAULT_EVAL_TRAIN_ON = "last"


@dataclass
class TrainResult:
    output_dir: Path
    train_examples: int
    eval_examples: int
    skipped: int
    supervised_tokens: int
    total_tokens: int
    steps: int
    final_train_loss: float | None
    best_eval_loss: float | None
    eval_loss: float | None
    log_path: Path
    merged_dir: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


# Defined without torch so the CLI maps it to exit 1 before importing training; raised here.
from ..errors import NonFiniteLoss  # noqa: E402,F401


@dataclass
class Run:
    """What every phase of one training run reads: its config, folder and process role."""
    cfg: TrainConfig
    model_name: str
    out: Path
    main: bool          # the process that writes files (rank 0 under a multi-process launch)
    num_processes: int
    quiet: bool

    @property
    def log_path(self) -> Path:
        return self.out / "log.jsonl"


@dataclass
class EncodedData:
    train_examples: list
    eval_examples: list
    train_encoded: int      # examples that encoded (before packing)
    train_rows: list[dict]
    eval_rows: list[dict]
    skipped: int
    supervised_tokens: int
    total_tokens: int
    chat_formats: dict = field(default_factory=dict)   # how tool data and traces were rendered


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def resolved(cfg: TrainConfig) -> TrainConfig:
    """The config with its unset fields given their stand-alone defaults."""
    return cfg.model_copy(update={"seed": 0 if cfg.seed is None else cfg.seed,
                                  "eval_train_on": cfg.eval_train_on or DEFAULT_EVAL_TRAIN_ON})


def prepare_splits(cfg: TrainConfig, train_path=None, eval_path=None):
    """Read data; when no eval file is given, hold out a seeded fraction *first*."""
    cfg = resolved(cfg)
    train_files = [train_path] if train_path else cfg.data
    if not train_files:
        raise ValueError("no training data: pass files (train.data or the positional DATA)")
    res = read_examples(train_files, cfg.format)
    train = res.examples
    eval_files = [eval_path] if eval_path else cfg.eval
    if eval_files:
        heldout = read_examples(eval_files, cfg.format).examples
    else:
        from ..splits import split_heldout
        train, heldout = split_heldout(train, cfg.eval_fraction, cfg.seed)
    return train, heldout


def start_run(cfg: TrainConfig, out_dir, quiet: bool) -> Run:
    # Under a multi-process launch every process runs train(); only the main one writes
    # files (the Trainer itself already saves checkpoints from rank 0 only).
    from accelerate import PartialState
    # cpu=True where the Trainer will run on the CPU (use_cpu): the distributed state is
    # built once per process, and without it a CPU launch reads as one process here.
    state = PartialState(cpu=not torch.cuda.is_available())
    cfg = resolved(cfg)
    out = Path(out_dir or cfg.output_dir or "runs/train")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    set_seed(cfg.seed)
    return Run(cfg=cfg, model_name=cfg.model or DEFAULT_MODEL, out=out, main=state.is_main_process,
               num_processes=state.num_processes, quiet=quiet or not state.is_main_process)


def load_and_encode(run: Run, tokenizer, train_path, eval_path) -> EncodedData:
    cfg = run.cfg
    train_ex, eval_ex = prepare_splits(cfg, train_path, eval_path)
    if run.main:
        write_examples(run.out / "data" / "train.jsonl", train_ex)
        write_examples(run.out / "data" / "eval.jsonl", eval_ex)
    common = dict(max_length=cfg.max_length, template=cfg.template, tool_format=cfg.tool_format,
                  per_turn=cfg.per_turn)
    train_enc, skipped = encode_many(train_ex, tokenizer, train_on=cfg.train_on, **common)
    eval_enc, eval_skipped = encode_many(eval_ex, tokenizer, train_on=cfg.eval_train_on, **common)
    all_skipped = skipped + eval_skipped
    if all_skipped and run.main:
        write_rejected(run.out / "skipped.jsonl",
                       [Rejected(record=e.to_dict(), step="encode", reason=r) for e, r in all_skipped])
    if not train_enc:
        raise ValueError("no trainable example left after encoding (all too long or unsupervised)")
    sup = sum(e.n_supervised for e in train_enc)
    tot = sum(len(e) for e in train_enc)
    if not run.quiet:
        console.print(f"\\[sftflow] {len(train_enc)} train / {len(eval_enc)} eval examples, "
                      f"{tot} tokens, {sup} supervised ({sup / tot:.0%}), {len(all_skipped)} skipped "
                      f"({sum(e.truncated for e in train_enc)} truncated)")
    train_rows = [e.to_dict() for e in train_enc]
    if cfg.packing:
        capacity = cfg.pack_length or cfg.max_length
        train_rows = pack_rows(train_rows, capacity)
        if not run.quiet:
            console.print(f"\\[sftflow] packed {len(train_enc)} examples into {len(train_rows)} rows "
                          f"of <= {capacity} tokens")
    return EncodedData(train_examples=train_ex, eval_examples=eval_ex, train_encoded=len(train_enc),
                       train_rows=train_rows,
                       eval_rows=[e.to_dict() for e in eval_enc], skipped=len(all_skipped),
                       supervised_tokens=sup, total_tokens=tot,
                       chat_formats=summarize_formats(train_enc, cfg.tool_format))


def notice(message: str) -> None:
    """Shown even in a quiet run: something on disk was not as the last run should have left it."""
    console.print(f"[yellow]\\[sftflow] {message}[/yellow]", highlight=False, soft_wrap=True)


def resume_point(run: Run, data: EncodedData) -> tuple[str | None, ResumeStamp]:
    """The checkpoint to resume from (newest complete one, of this very run), and the stamp
    every new checkpoint gets. The log is cut back to that checkpoint, so it reads like one run."""
    folder = run.out / "checkpoints"
    stamp = ResumeStamp(data_fingerprint(data.train_rows), trajectory_config(run.cfg))
    resume = None
    if run.cfg.resume:
        ckpt = newest_complete(folder, notice if run.main else lambda m: None)
        if ckpt is not None:
            check_resume(ckpt, stamp.stamp["data_fingerprint"], stamp.stamp["config"])
            resume = str(ckpt)
    elif run.main:
        clear_for_fresh_run(folder, notice)
    if run.log_path.exists() and run.main:
        torn = repair_torn_tail(run.log_path)         # a kill in the middle of a log write
        if torn is not None:
            notice(torn.notice())
        # Rows a killed run wrote after its last checkpoint are dropped.
        keep_until = checkpoint_step(Path(resume)) if resume else -1
        write_jsonl(run.log_path, log_rows_to_keep(iter_log(run.log_path), keep_until))
    return resume, stamp


def run_callbacks(run: Run, data: EncodedData, tokenizer, extra: list[TrainerCallback] | None
                  ) -> list[TrainerCallback]:
    cfg = run.cfg
    cbs: list[TrainerCallback] = [JsonlLogger(run.log_path)] + list(extra or [])
    if cfg.best_probe and data.eval_rows:
        # before early stopping: both read the probe's rate from the same metrics
        prompts = [e.context for e in data.eval_examples[: cfg.best_probe_prompts]]
        cbs.append(ProbeMetric(prompts, tokenizer, cfg.best_probe))
    cbs += callbacks_for(cfg, run.log_path)
    if not run.quiet:
        cbs.append(RunProgress())
    return cbs


def build_trainer(run: Run, data: EncodedData, model, tokenizer, schedule: Schedule,
                  callbacks: list[TrainerCallback]) -> MaskedLossTrainer:
    has_eval = bool(data.eval_rows)
    trainer = MaskedLossTrainer(
        model=model, args=training_arguments(run.cfg, schedule, run.out / "checkpoints", has_eval=has_eval),
        train_dataset=ListDataset(data.train_rows),
        eval_dataset=ListDataset(data.eval_rows) if has_eval else None,
        data_collator=Collator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=callbacks,
    )
    # With tqdm off the Trainer prints every log dict; RunProgress and log.jsonl replace it.
    from transformers.trainer_callback import PrinterCallback
    trainer.remove_callback(PrinterCallback)
    return trainer


def final_eval_loss(cfg: TrainConfig, trainer: MaskedLossTrainer) -> float | None:
    """The held-out loss of the weights the run outputs, measured at most once more."""
    if trainer.eval_dataset is None:
        return None
    # The best checkpoint was loaded at the end: its eval loss is already known.
    best = trainer.state.best_metric
    if cfg.keep_best and best is not None and not cfg.best_probe:
        return best
    # Without keep_best the final weights are the output: an evaluation logged at the
    # last step already measured them (a second pass over the eval set costs minutes).
    last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
    if not cfg.keep_best and last is not None and last.get("step") == trainer.state.global_step:
        return last["eval_loss"]
    return trainer.evaluate()["eval_loss"]


def save_outputs(run: Run, trainer: MaskedLossTrainer, tokenizer) -> Path | None:
    """The model (or adapter), tokenizer and resolved config; the merged model if asked."""
    if not run.main:
        trainer.save_model(str(run.out))         # the collective part of a sharded save; writes nothing
        return None
    with staged_into(run.out) as staged:         # each file arrives whole, the weights last
        trainer.save_model(str(staged))
        tokenizer.save_pretrained(str(staged))
    cfg = run.cfg
    dump_yaml(cfg.model_copy(update={"model": cfg.model or resolve_model(run.model_name)}),
              run.out / "train_config.yaml")
    if not cfg.merge:
        return None
    merged = run.out / "merged"
    with atomic_dir(merged) as folder:           # the merged model appears complete or not at all
        trainer.model.merge_and_unload().save_pretrained(str(folder), safe_serialization=True)
        tokenizer.save_pretrained(str(folder))
    return merged


def report(run: Run, res: TrainResult, seconds: float) -> None:
    if run.main:
        atomic_write_text(run.out / "train_result.json", json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in res.__dict__.items()}, indent=2) + "\n")
    if run.quiet:
        return
    lines = res.log_path.read_text().splitlines() if res.log_path.exists() else []
    losses = [json.loads(l).get("loss") for l in lines if l.strip()]
    losses = [x for x in losses if isinstance(x, (int, float))]
    console.print(summary_table([
        ("examples", f"{res.train_examples} train, {res.eval_examples} eval, {res.skipped} skipped"),
        ("tokens", f"{res.total_tokens} ({res.supervised_tokens} supervised)"),
        ("steps", f"{res.steps} in {seconds:.0f} s"),
        ("train loss", f"{fmt_loss(losses[0])} -> {fmt_loss(losses[-1])}" if losses else "-"),
        ("eval loss (output)", fmt_loss(res.eval_loss)),
        ("output", str(res.output_dir) + (f" (merged: {res.merged_dir})" if res.merged_dir else "")),
        ("step log", str(res.log_path)),
    ]))


def train(cfg: TrainConfig, train_path=None, eval_path=None, out_dir=None, *,
          callbacks: list[TrainerCallback] | None = None, quiet: bool = False) -> TrainResult:
    started = time.perf_counter()
    run = start_run(cfg, out_dir, quiet)
    tokenizer = load_tokenizer(run.model_name)
    data = load_and_encode(run, tokenizer, train_path, eval_path)
    with no_library_bars():
        model = build_model(run.cfg, run.model_name)
    schedule = plan_schedule(run.cfg, len(data.train_rows), run.num_processes)
    resume, stamp = resume_point(run, data)
    cbs = run_callbacks(run, data, tokenizer, callbacks) + [stamp]
    trainer = build_trainer(run, data, model, tokenizer, schedule, cbs)
    with quiet_trainer_notes(), no_library_bars():      # checkpoints write weights too
        result = trainer.train(resume_from_checkpoint=resume)
    guard = find(cbs, NonFiniteGuard)
    if guard is not None and guard.tripped:
        # Never write broken weights as the run's output: point at the last good checkpoint.
        good = last_good_checkpoint(run.out / "checkpoints", guard.tripped["step"] + 1)
        raise NonFiniteLoss(f"{guard.tripped['message']} Last good checkpoint: "
                            f"{good if good else 'none (it diverged before the first save)'}")
    final_eval = final_eval_loss(run.cfg, trainer)
    tokenizer = with_training_template(tokenizer, run.cfg.template, data.chat_formats)  # inference renders as
    with no_library_bars():                                                            # training did
        merged = save_outputs(run, trainer, tokenizer)
    res = TrainResult(output_dir=run.out, train_examples=data.train_encoded,
                      eval_examples=len(data.eval_rows), skipped=data.skipped,
                      supervised_tokens=data.supervised_tokens, total_tokens=data.total_tokens,
                      steps=trainer.state.global_step, final_train_loss=result.training_loss,
                      best_eval_loss=trainer.state.best_metric, eval_loss=final_eval, log_path=run.log_path,
                      merged_dir=merged, extra={"schedule": schedule.to_dict(),
                                                "num_processes": run.num_processes,
                                                "chat_formats": data.chat_formats})
    report(run, res, time.perf_counter() - started)
    return res
