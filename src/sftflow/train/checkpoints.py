"""Which checkpoint a resumed run may start from, and proof that it belongs to this run.

A kill can land while the Trainer writes ``checkpoint-N``: the folder then exists
but lacks files, or holds a truncated one. So a checkpoint counts only when it is
*complete*: ``trainer_state.json`` parses, the weights (adapter or full model) and
``optimizer.pt`` are present and readable, and sftflow's stamp ``sftflow_resume.json``
is there. The stamp is written by ``ResumeStamp.on_save``, which the Trainer calls
after everything else of the checkpoint is on disk, so it doubles as the "finished"
mark. Resume takes the newest complete checkpoint and says which ones it skipped.

The stamp holds what the trajectory depends on: a fingerprint of the training rows
(token ids and labels, so data, tokenizer, template and packing are all in it) and
the training options. Resuming with either changed would silently splice two
different runs into one; it is refused, naming each difference. A run started
without ``resume`` into a folder that holds checkpoints clears them, and says so:
otherwise a later ``--resume`` would pick up the earlier run's weights.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from ..config import ConfigError
from ..io.atomic import atomic_write_json

STAMP = "sftflow_resume.json"
WEIGHTS = ("adapter_model.safetensors", "model.safetensors", "model.safetensors.index.json",
           "adapter_model.bin", "pytorch_model.bin")
# Options that change where files go or how often the run reports, not what it computes.
NOT_TRAJECTORY = {"resume", "output_dir", "num_threads", "save_total_limit", "data", "eval", "report_to",
                  "smoke", "merge", "logging_steps"}


def data_fingerprint(rows: list[dict]) -> str:
    """sha256 over the training rows' token ids and labels, in order."""
    h = hashlib.sha256()
    for r in rows:
        for k in ("input_ids", "labels", "position_ids", "seq_lens"):
            if k in r:
                h.update(k.encode())
                h.update(json.dumps(list(map(int, r[k]))).encode())
    return h.hexdigest()


def trajectory_config(cfg) -> dict[str, Any]:
    d = cfg.model_dump(mode="json") if hasattr(cfg, "model_dump") else dict(cfg)
    return {k: v for k, v in sorted(d.items()) if k not in NOT_TRAJECTORY}


def _readable_weights(path: Path) -> bool:
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = list(f.keys())
            return bool(keys)
        except Exception:  # noqa: BLE001 - any failure to read means "not complete"
            return False
    if path.suffix == ".json":
        return _readable_json(path)
    return _readable_zip(path)


def _readable_json(path: Path) -> bool:
    try:
        json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return True


def _readable_zip(path: Path) -> bool:
    """torch.save files are zip archives: a cut-short one has no central directory."""
    try:
        with zipfile.ZipFile(path) as z:
            return bool(z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def why_incomplete(ckpt: Path) -> str | None:
    """None for a complete checkpoint; otherwise what is missing or unreadable."""
    if not _readable_json(ckpt / "trainer_state.json"):
        return "trainer_state.json missing or unreadable"
    weights = [ckpt / w for w in WEIGHTS if (ckpt / w).exists()]
    if not weights:
        return "no model or adapter weights"
    if not all(_readable_weights(w) for w in weights):
        return "weights cut short"
    if not _readable_zip(ckpt / "optimizer.pt"):
        return "optimizer.pt missing or cut short"
    if not _readable_json(ckpt / STAMP):
        return f"{STAMP} missing (the save did not finish)"
    return None


def checkpoint_step(path: Path) -> int | None:
    head, _, num = path.name.partition("-")
    return int(num) if head == "checkpoint" and num.isdigit() else None


def newest_complete(folder: Path, notify: Callable[[str], None]) -> Path | None:
    """The newest complete ``checkpoint-N`` in ``folder``; every other candidate is named in a notice."""
    found = []
    for p in folder.glob("checkpoint-*") if folder.is_dir() else []:
        step = checkpoint_step(p)
        if step is None or not p.is_dir():
            notify(f"{p}: not a checkpoint folder name (checkpoint-<step>); ignored")
            continue
        found.append((step, p))
    for step, p in sorted(found, reverse=True):
        reason = why_incomplete(p)
        if reason is None:
            return p
        notify(f"{p}: skipped, incomplete ({reason}): a save cut short by a kill")
    return None


def log_rows_to_keep(rows, step: int) -> list[dict]:
    """The step log a run resumed from ``checkpoint-<step>`` starts with: the rows up to that
    step, without an end-of-run summary (``train_loss``) a killed run wrote before its final
    save; the resumed run writes its own, so the log holds one summary as an uninterrupted run's."""
    return [r for r in rows if r.get("step", 0) <= step and "train_loss" not in r]


def check_resume(ckpt: Path, fingerprint: str, config: dict[str, Any]) -> None:
    """Refuse to resume a checkpoint made from other data or other options, naming the difference."""
    stamp = json.loads((ckpt / STAMP).read_text())
    problems = []
    if stamp.get("data_fingerprint") != fingerprint:
        problems.append("the training data (token ids after encoding and packing) differ")
    old = stamp.get("config", {})
    for k in sorted(set(old) | set(config)):
        if old.get(k) != config.get(k):
            problems.append(f"{k}: {old.get(k)!r} in the checkpoint, {config.get(k)!r} now")
    if problems:
        raise ConfigError(f"cannot resume from {ckpt}: " + "; ".join(problems) +
                          ". Resume with the same data and options, or start a fresh run (without resume)")


def clear_for_fresh_run(folder: Path, notify: Callable[[str], None]) -> None:
    """A run without resume starts clean: earlier checkpoints in its folder are removed, with a notice."""
    old = sorted(folder.glob("checkpoint-*")) if folder.is_dir() else []
    if old:
        notify(f"{folder}: removing {len(old)} checkpoint(s) of an earlier run ({', '.join(p.name for p in old)}) "
               "because this run does not resume; pass resume to continue that run instead")
        for p in old:
            shutil.rmtree(p) if p.is_dir() else p.unlink()


class ResumeStamp(TrainerCallback):
    """Writes the stamp into each checkpoint, last: the Trainer calls on_save once the rest is saved."""

    def __init__(self, fingerprint: str, config: dict[str, Any]):
        self.stamp = {"data_fingerprint": fingerprint, "config": config}

    def on_save(self, args, state, control, **kwargs):
        if state.is_world_process_zero:
            ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            if ckpt.is_dir():
                atomic_write_json(ckpt / STAMP, {**self.stamp, "step": state.global_step})
