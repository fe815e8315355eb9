"""`sftflow train`: flags for the common options, --config YAML and --set for all of them."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..config import apply_overrides, load_yaml, parse_value, validate
from .config import TrainConfig

# flag name -> TrainConfig field; only flags the user gave override the config file.
FLAG_FIELDS = {
    "model": "model", "eval": "eval", "method": "method", "lora_r": "lora_r", "lora_alpha": "lora_alpha",
    "lora_dropout": "lora_dropout", "lr": "learning_rate", "epochs": "epochs", "max_steps": "max_steps",
    "batch_size": "batch_size", "grad_accum": "gradient_accumulation_steps", "max_length": "max_length",
    "train_on": "train_on", "template": "template", "eval_steps": "eval_steps", "merge": "merge",
    "gradient_checkpointing": "gradient_checkpointing", "bf16": "bf16", "seed": "seed",
    "smoke": "smoke", "resume": "resume", "fmt": "format", "output": "output_dir",
}


def build_train_config(data: list[str], config: Optional[Path], overrides: list[str], **flags) -> TrainConfig:
    raw = load_yaml(config) if config else {}
    if "train" in raw and isinstance(raw["train"], dict) and "model" not in raw:  # a whole recipe
        raw = raw["train"]
    if data:
        raw["data"] = list(data)
    for flag, value in flags.items():
        if value is not None and value is not False and value != []:
            raw[FLAG_FIELDS[flag]] = parse_value(value) if flag == "bf16" else value
    apply_overrides(raw, [o.removeprefix("train.") for o in overrides])
    return validate(TrainConfig, raw, str(config) if config else "train options")


def train_cmd(
    data: list[str] = typer.Argument(None, help="training files (JSONL, JSON, Parquet, CSV, datasets folder)"),
    model: Optional[str] = typer.Option(None, help="model alias, folder or hub id [default: smollm2-135m-instruct]"),
    eval: Optional[list[str]] = typer.Option(None, "--eval", help="held-out file(s); default: seeded 10% split"),
    method: Optional[str] = typer.Option(None, help="lora | full [default: lora]"),
    lora_r: Optional[int] = typer.Option(None, help="LoRA rank [16]"),
    lora_alpha: Optional[int] = typer.Option(None, help="LoRA alpha [32]"),
    lora_dropout: Optional[float] = typer.Option(None, help="LoRA dropout [0.05]"),
    lr: Optional[float] = typer.Option(None, help="learning rate [2e-4 LoRA, 2e-5 full]"),
    epochs: Optional[float] = typer.Option(None, help="epochs [1]"),
    max_steps: Optional[int] = typer.Option(None, help="optimizer steps (overrides epochs)"),
    batch_size: Optional[int] = typer.Option(None, help="per-device batch size [4]"),
    grad_accum: Optional[int] = typer.Option(None, help="gradient accumulation steps [1]"),
    max_length: Optional[int] = typer.Option(None, help="max tokens per example [1024]"),
    train_on: Optional[str] = typer.Option(None, help="assistant | last | all [assistant]"),
    template: Optional[str] = typer.Option(None, help="fallback template for models without one: alpaca | chatml"),
    eval_steps: Optional[int] = typer.Option(None, help="evaluate every N steps [each epoch]"),
    merge: bool = typer.Option(False, "--merge", help="also write a merged model (LoRA)"),
    gradient_checkpointing: bool = typer.Option(False, "--gradient-checkpointing"),
    bf16: Optional[str] = typer.Option(None, help="auto | true | false"),
    seed: Optional[int] = typer.Option(None),
    smoke: bool = typer.Option(False, "--smoke", help="short sanity run that fails loudly"),
    resume: bool = typer.Option(False, "--resume", help="continue from the last checkpoint in the output folder"),
    fmt: Optional[str] = typer.Option(None, "--format", help="input format [auto]"),
    output: Optional[str] = typer.Option(None, "-o", "--output", help="output folder [runs/train]"),
    config: Optional[Path] = typer.Option(None, "--config", help="YAML with TrainConfig keys (or a recipe)"),
    set_: list[str] = typer.Option([], "--set", help="override: key=value (e.g. lr=1e-4)"),
    launcher: str = typer.Option("none", help="none | accelerate (multi-process / multi-node)"),
    num_processes: int = typer.Option(1, help="processes per machine with --launcher accelerate"),
    accelerate_config: Optional[str] = typer.Option(None, help="ddp | fsdp | deepspeed_zero2 | deepspeed_zero3 | FILE"),
    num_machines: int = typer.Option(1, help="machines (nodes) with --launcher accelerate"),
    machine_rank: int = typer.Option(0, help="this machine's rank"),
    main_process_ip: Optional[str] = typer.Option(None, help="rank-0 machine address (multi-node)"),
    main_process_port: Optional[int] = typer.Option(None, help="rank-0 port (multi-node)"),
):
    """Fine-tune a model (LoRA or full) with exact assistant-only loss masks."""
    if launcher not in ("none", "accelerate"):
        raise typer.BadParameter(f"--launcher must be none or accelerate, not {launcher!r}")
    if launcher == "accelerate":
        import sys

        from .launch import relaunch
        argv = sys.argv[sys.argv.index("train") + 1:]
        raise typer.Exit(relaunch(argv, num_processes=num_processes, config=accelerate_config,
                                  num_machines=num_machines, machine_rank=machine_rank,
                                  main_process_ip=main_process_ip, main_process_port=main_process_port))
    from .sft import train
    cfg = build_train_config(list(data or []), config, set_, model=model, eval=eval, method=method,
                             lora_r=lora_r, lora_alpha=lora_alpha, lora_dropout=lora_dropout, lr=lr,
                             epochs=epochs, max_steps=max_steps, batch_size=batch_size, grad_accum=grad_accum,
                             max_length=max_length, train_on=train_on, template=template,
                             eval_steps=eval_steps, merge=merge, gradient_checkpointing=gradient_checkpointing,
                             bf16=bf16, seed=seed, smoke=smoke, resume=resume, fmt=fmt, output=output)
    if cfg.smoke:
        from .smoke import run_smoke
        raise typer.Exit(run_smoke(cfg))
    res = train(cfg)
    from accelerate import PartialState
    if PartialState().is_main_process:
        typer.echo(f"trained {res.steps} steps; best eval loss {res.best_eval_loss}; output: {res.output_dir}")


def register(app: typer.Typer) -> None:
    app.command("train")(train_cmd)
