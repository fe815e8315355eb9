"""`sftflow train`: one flag per TrainConfig field, plus --config YAML and --set."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..train.config import TrainConfig
from .flags import config_flags, with_flags
from .options import config_option, set_option, stage_config

TRAIN_FLAGS = config_flags(
    TrainConfig,
    skip={"data": "the DATA arguments"},
    # Short names kept from earlier versions; tests/unit/test_cli_flags.py checks where each lands.
    names={"learning_rate": ("--lr", "--learning-rate"),
           "gradient_accumulation_steps": ("--grad-accum", "--gradient-accumulation-steps"),
           "output_dir": ("-o", "--output", "--output-dir")})

# Options of `--launcher accelerate`: how processes are started, not what is trained.
LAUNCH_OPTIONS = ("launcher", "num_processes", "accelerate_config", "num_machines", "machine_rank",
                  "main_process_ip", "main_process_port")


@with_flags(TRAIN_FLAGS)
def train_cmd(
    data: Optional[list[str]] = typer.Argument(None, help="training files (JSONL, JSON, Parquet, CSV, "
                                                          "datasets folder)"),
    config: Optional[Path] = config_option(),
    set_: Optional[list[str]] = set_option("learning_rate=1e-4"),
    launcher: str = typer.Option("none", help="none | accelerate (multi-process / multi-node)"),
    num_processes: int = typer.Option(1, help="processes per machine with --launcher accelerate"),
    accelerate_config: Optional[str] = typer.Option(None, help="ddp | fsdp | deepspeed_zero2 | "
                                                               "deepspeed_zero3 | FILE"),
    num_machines: int = typer.Option(1, help="machines (nodes) with --launcher accelerate"),
    machine_rank: int = typer.Option(0, help="this machine's rank"),
    main_process_ip: Optional[str] = typer.Option(None, help="rank-0 machine address (multi-node)"),
    main_process_port: Optional[int] = typer.Option(None, help="rank-0 port (multi-node)"),
    given: dict | None = None,
):
    """Fine-tune a model (LoRA or full) with exact assistant-only loss masks."""
    if launcher not in ("none", "accelerate"):
        raise typer.BadParameter(f"--launcher must be none or accelerate, not {launcher!r}")
    if launcher == "accelerate":
        import sys

        from ..train.launch import relaunch
        argv = sys.argv[sys.argv.index("train") + 1:]
        raise typer.Exit(relaunch(argv, num_processes=num_processes, config=accelerate_config,
                                  num_machines=num_machines, machine_rank=machine_rank,
                                  main_process_ip=main_process_ip, main_process_port=main_process_port))
    cfg = build_train_config(list(data or []), config, set_, given or {})
    if cfg.smoke:
        from ..train.smoke import run_smoke
        raise typer.Exit(run_smoke(cfg))
    from ..train.sft import train
    res = train(cfg)
    from accelerate import PartialState
    if PartialState().is_main_process:
        typer.echo(f"trained {res.steps} steps; best eval loss {res.best_eval_loss}; output: {res.output_dir}")


def build_train_config(data: list[str], config: Path | None, overrides: list[str] | None,
                       given: dict) -> TrainConfig:
    if data:
        given = {**given, "data": data}
    return stage_config(TrainConfig, config, "train", given, overrides, "train options")
