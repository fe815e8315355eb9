"""Supervised fine-tuning on the transformers Trainer, with PEFT for LoRA.

What we add on top of the Trainer, and why:
- examples are encoded once with ``sftflow.encode`` (exact masks), too-long ones are
  skipped, counted and written out instead of silently truncated;
- the loss is summed over supervised tokens and divided by the number of supervised
  tokens in the whole accumulated batch, so batch 8 x accumulation 1 equals batch 1 x
  accumulation 8 (averaging per micro-batch would weight short answers more);
- the LM head runs only at supervised positions (see ``loss.py``);
- the held-out split is made (seeded) before anything else touches the data, and the
  checkpoint with the best eval loss is what the run outputs.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console
from transformers import Trainer, TrainerCallback, TrainingArguments

from ..config import dump_yaml
from ..io import Rejected, read_examples, write_examples, write_rejected
from ..models import load_model, load_tokenizer, resolve_model
from ..chat import encode_many
from .callbacks import NonFiniteGuard, ProbeMetric, callbacks_for, check_report_to, find, last_good_checkpoint
from .collate import PadCollator
from .config import TrainConfig
from .supervised_loss import supervised_loss_sum
from .packing import PackedCollator, pack_rows
from ..errors import NonFiniteLoss  # noqa: F401  (defined without torch; raised here)

console = Console(stderr=True)


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


class MaskedLossTrainer(Trainer):
    """Trainer whose loss is normalised by supervised tokens across the accumulated batch."""

    def __init__(self, *args, fast_head: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.fast_head = fast_head
        self.loss_is_scaled_for_ga = True

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
        # Evaluation needs the loss only; never materialise full logits for it.
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None


class JsonlLogger(TrainerCallback):
    """Every logged step (train and eval) as one JSON line: the report reads this."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        row = {"step": state.global_step, "epoch": state.epoch, **logs}
        with open(self.path, "a") as f:
            f.write(json.dumps(row, default=float) + "\n")


def set_seed(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _bf16(cfg: TrainConfig) -> bool:
    if cfg.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(cfg.bf16)


def prepare_splits(cfg: TrainConfig, train_path=None, eval_path=None):
    """Read data; when no eval file is given, hold out a seeded fraction *first*."""
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


def quantization_config(cfg: TrainConfig):
    """QLoRA's 4-bit NF4 base; refused with the reason where it cannot run."""
    if not cfg.load_in_4bit:
        return None
    if not torch.cuda.is_available():
        raise ValueError("load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes 4-bit kernels do not run on "
                         "this machine's CPU. Use method=lora without load_in_4bit here.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("load_in_4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def build_model(cfg: TrainConfig, model_name: str):
    qcfg = quantization_config(cfg)
    # With bf16 and LoRA the frozen base is stored in bf16 (half the memory traffic,
    # bf16 matmuls); the adapters peft adds stay fp32 and the Trainer autocasts.
    dtype = torch.bfloat16 if _bf16(cfg) and cfg.method == "lora" and qcfg is None else None
    model = load_model(model_name, quantization_config=qcfg, dtype=dtype)
    if qcfg is not None:
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    if cfg.method == "lora":
        from peft import LoraConfig, get_peft_model
        names = {n.split(".")[-1] for n, _ in model.named_modules()}
        targets = [t for t in cfg.lora_target_modules if t in names]
        if not targets:
            raise ValueError(f"none of lora_target_modules {cfg.lora_target_modules} exist in the model; "
                             f"linear layers include {sorted(n for n in names if 'proj' in n)[:10]}")
        lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                          target_modules=targets, task_type="CAUSAL_LM", bias="none")
        model = get_peft_model(model, lcfg)
        if cfg.gradient_checkpointing:
            model.enable_input_require_grads()
    return model


def train(cfg: TrainConfig, train_path=None, eval_path=None, out_dir=None, *,
          callbacks: list[TrainerCallback] | None = None, quiet: bool = False) -> TrainResult:
    out = Path(out_dir or cfg.output_dir or "runs/train")
    out.mkdir(parents=True, exist_ok=True)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    set_seed(cfg.seed)
    model_name = cfg.model or "smollm2-135m-instruct"
    tokenizer = load_tokenizer(model_name)

    # Under a multi-process launch every process runs this function; only the main one
    # writes files (the Trainer itself already saves checkpoints from rank 0 only).
    from accelerate import PartialState
    main = PartialState().is_main_process
    quiet = quiet or not main
    train_ex, eval_ex = prepare_splits(cfg, train_path, eval_path)
    if main:
        write_examples(out / "data" / "train.jsonl", train_ex)
        write_examples(out / "data" / "eval.jsonl", eval_ex)
    enc_kwargs = dict(train_on=cfg.train_on, max_length=cfg.max_length, template=cfg.template)
    train_enc, skipped = encode_many(train_ex, tokenizer, **enc_kwargs)
    eval_enc, eval_skipped = encode_many(eval_ex, tokenizer, **enc_kwargs)
    all_skipped = skipped + eval_skipped
    if all_skipped and main:
        write_rejected(out / "skipped.jsonl",
                       [Rejected(record=e.to_dict(), step="encode", reason=r) for e, r in all_skipped])
    if not train_enc:
        raise ValueError("no trainable example left after encoding (all too long or unsupervised)")
    sup = sum(e.n_supervised for e in train_enc)
    tot = sum(len(e) for e in train_enc)
    if not quiet:
        console.print(f"[sftflow] {len(train_enc)} train / {len(eval_enc)} eval examples, "
                      f"{tot} tokens, {sup} supervised ({sup / tot:.0%}), {len(all_skipped)} skipped "
                      f"({sum(e.truncated for e in train_enc)} truncated)")

    model = build_model(cfg, model_name)
    train_rows = [e.to_dict() for e in train_enc]
    if cfg.packing:
        train_rows = pack_rows(train_rows, cfg.pack_length or cfg.max_length)
        if not quiet:
            console.print(f"[sftflow] packed {len(train_enc)} examples into {len(train_rows)} rows "
                          f"of <= {cfg.pack_length or cfg.max_length} tokens")
    per_epoch = math.ceil(len(train_rows) / (cfg.batch_size * cfg.gradient_accumulation_steps))
    total_steps = cfg.max_steps if cfg.max_steps > 0 else math.ceil(per_epoch * cfg.epochs)
    has_eval = bool(eval_enc)
    if cfg.eval_steps:
        strategy, every = "steps", cfg.eval_steps
    elif cfg.max_steps > 0 or cfg.epochs < 1:
        # about four evaluations per run, but not more often than every 10 steps
        strategy, every = "steps", min(total_steps, max(10, total_steps // 4))
    else:
        strategy, every = "epoch", None
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"),
        learning_rate=cfg.lr,
        lr_scheduler_type=cfg.lr_scheduler,
        optim=cfg.optimizer,
        warmup_steps=math.ceil(cfg.warmup_ratio * total_steps),
        weight_decay=cfg.weight_decay,
        max_grad_norm=cfg.max_grad_norm,
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        logging_steps=cfg.logging_steps,
        logging_first_step=True,
        eval_strategy=strategy if has_eval else "no",
        eval_steps=every,
        save_strategy=strategy,
        save_steps=every,
        save_total_limit=cfg.save_total_limit,
        load_best_model_at_end=has_eval and cfg.keep_best,
        metric_for_best_model=f"eval_probe_{cfg.best_probe['name']}" if cfg.best_probe else "eval_loss",
        greater_is_better=cfg.best_probe_higher_is_better if cfg.best_probe else False,
        bf16=_bf16(cfg),
        seed=cfg.seed,
        data_seed=cfg.seed,
        report_to=check_report_to(cfg.report_to) or "none",
        remove_unused_columns=False,
        train_sampling_strategy="group_by_length" if cfg.group_by_length and not cfg.packing else "random",
        dataloader_num_workers=0,
        disable_tqdm=quiet,
        use_cpu=not torch.cuda.is_available(),
        save_only_model=False,
    )
    log_path = out / "log.jsonl"
    resume = None
    if cfg.resume:
        ckpts = sorted((out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
        resume = str(ckpts[-1]) if ckpts else None
    if log_path.exists() and main:
        # A resumed run continues the log from its checkpoint: rows a killed run wrote
        # after that checkpoint are dropped, so the log reads like an uninterrupted run.
        keep_until = int(resume.rsplit("-", 1)[1]) if resume else -1
        rows = [l for l in log_path.read_text().splitlines()
                if l.strip() and json.loads(l).get("step", 0) <= keep_until]
        log_path.write_text("".join(r + "\n" for r in rows))
    cbs = [JsonlLogger(log_path)] + list(callbacks or [])
    if cfg.best_probe and has_eval:
        # before early stopping: both read the probe's rate from the same metrics
        prompts = [e.context for e in eval_ex[: cfg.best_probe_prompts]]
        cbs.append(ProbeMetric(prompts, tokenizer, cfg.best_probe))
    cbs += callbacks_for(cfg, log_path)
    guard = find(cbs, NonFiniteGuard)
    trainer = MaskedLossTrainer(
        model=model, args=args,
        train_dataset=ListDataset(train_rows),
        eval_dataset=ListDataset([e.to_dict() for e in eval_enc]) if has_eval else None,
        data_collator=Collator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=cbs,
    )
    if quiet:
        # With tqdm off the Trainer prints every log dict instead; log.jsonl has them all.
        from transformers.trainer_callback import PrinterCallback
        trainer.remove_callback(PrinterCallback)
    result = trainer.train(resume_from_checkpoint=resume)
    if guard is not None and guard.tripped:
        # Never write broken weights as the run's output: point at the last good checkpoint.
        good = last_good_checkpoint(out / "checkpoints", guard.tripped["step"] + 1)
        raise NonFiniteLoss(f"{guard.tripped['message']} Last good checkpoint: "
                            f"{good if good else 'none (it diverged before the first save)'}")
    final_eval = None
    if has_eval:
        # The best checkpoint was loaded at the end: its eval loss is already known.
        best = trainer.state.best_metric
        reuse = cfg.keep_best and best is not None and not cfg.best_probe
        # Without keep_best the final weights are the output: an evaluation logged at the
        # last step already measured them (a second pass over the eval set costs minutes).
        last = next((h for h in reversed(trainer.state.log_history) if "eval_loss" in h), None)
        at_end = (not cfg.keep_best and last is not None
                  and last.get("step") == trainer.state.global_step)
        final_eval = best if reuse else last["eval_loss"] if at_end else trainer.evaluate()["eval_loss"]
    trainer.save_model(str(out))
    merged = None
    if main:
        tokenizer.save_pretrained(str(out))
        cfg_out = cfg.model_copy(update={"model": resolve_model(model_name) if cfg.model is None else cfg.model})
        dump_yaml(cfg_out, out / "train_config.yaml")
        if cfg.merge:
            merged = out / "merged"
            trainer.model.merge_and_unload().save_pretrained(str(merged), safe_serialization=True)
            tokenizer.save_pretrained(str(merged))
    res = TrainResult(output_dir=out, train_examples=len(train_enc), eval_examples=len(eval_enc),
                      skipped=len(all_skipped), supervised_tokens=sup, total_tokens=tot,
                      steps=trainer.state.global_step, final_train_loss=result.training_loss,
                      best_eval_loss=trainer.state.best_metric, eval_loss=final_eval, log_path=log_path,
                      merged_dir=merged)
    if main:
        (out / "train_result.json").write_text(json.dumps(
            {k: (str(v) if isinstance(v, Path) else v) for k, v in res.__dict__.items()}, indent=2) + "\n")
    return res
