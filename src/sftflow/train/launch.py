"""Multi-process and multi-node launch through accelerate.

``sftflow train --launcher accelerate --num-processes N ...`` re-runs the same train
command under ``accelerate launch``: every process runs the Trainer, which reads the
distributed environment accelerate sets up (DDP by default; FSDP or DeepSpeed ZeRO
with a shipped preset: ``--accelerate-config fsdp|deepspeed_zero2|deepspeed_zero3|ddp``
or any accelerate config file). On a machine without GPUs the processes use gloo on
the CPU, which is how the 2-process test runs in CI.
"""

from __future__ import annotations

import subprocess
import sys
from importlib import resources
from pathlib import Path

PRESETS = ("ddp", "fsdp", "deepspeed_zero2", "deepspeed_zero3")
# flags that configure the launch itself and must not reach the per-process command
LAUNCH_FLAGS = {"--launcher": 1, "--num-processes": 1, "--accelerate-config": 1, "--num-machines": 1,
                "--machine-rank": 1, "--main-process-ip": 1, "--main-process-port": 1}


def preset_path(name: str) -> Path:
    if name in PRESETS:
        return Path(str(resources.files("sftflow"))) / "train" / "accelerate_configs" / f"{name}.yaml"
    p = Path(name)
    if not p.exists():
        raise ValueError(f"accelerate config {name!r}: not a preset ({', '.join(PRESETS)}) nor a file")
    return p


def strip_launch_flags(argv: list[str]) -> list[str]:
    out, skip = [], 0
    for a in argv:
        if skip:
            skip -= 1
            continue
        key = a.split("=", 1)[0]
        if key in LAUNCH_FLAGS:
            skip = 0 if "=" in a else LAUNCH_FLAGS[key]
            continue
        out.append(a)
    return out


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def accelerate_command(train_argv: list[str], *, num_processes: int, config: str | None = None,
                       num_machines: int = 1, machine_rank: int = 0, main_process_ip: str | None = None,
                       main_process_port: int | None = None) -> list[str]:
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config:
        cmd += ["--config_file", str(preset_path(config))]
    elif num_processes * num_machines > 1:
        cmd += ["--multi_gpu"]        # on a CPU-only machine accelerate turns this into gloo processes
    cmd += ["--num_processes", str(num_processes * num_machines), "--num_machines", str(num_machines),
            "--machine_rank", str(machine_rank), "--dynamo_backend", "no"]
    if not config:
        cmd += ["--mixed_precision", "no"]
    if main_process_ip:
        cmd += ["--main_process_ip", main_process_ip]
    if main_process_port is None and num_machines == 1:
        main_process_port = free_port()   # two single-machine runs must not fight over 29500
    if main_process_port:
        cmd += ["--main_process_port", str(main_process_port)]
    return cmd + ["-m", "sftflow", "train", *strip_launch_flags(train_argv)]


def relaunch(train_argv: list[str], **kwargs) -> int:
    return subprocess.call(accelerate_command(train_argv, **kwargs))
