"""Run curation steps in order and write what was kept, what was not and why.

``curate(inputs, out_dir, cfg)`` writes:

- ``kept.jsonl``: the records that passed every step, with the measurements in metadata;
- ``rejected.jsonl``: every other input line, the full record plus ``step``, ``reason``
  and ``value`` (unreadable lines are rejected by the step ``read``);
- ``manifest.json``: inputs with sha256, the resolved config, package versions and the
  counts in and out of every step;
- ``stats.json`` and PNG plots of the kept set.

Embeddings are cached under ``out_dir/cache`` keyed by the texts and model, so a rerun
after an interruption (or with a different threshold) does not embed again.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..embed import EmbeddingCache
from ..io import Rejected, read_examples, write_examples, write_manifest, write_rejected
from ..schema import Example
from .config import CurateConfig
from .contamination import LeakageStep
from .dedup import ExactDedup, NearDedup, SemanticDedup
from .diversity import DiversityStep
from .end_of_turn import EndOfTurnFilter
from .filters import (EmptyFilter, LengthFilter, RefusalFilter, RepetitionFilter, TemplateLeakFilter,
                      TruncationFilter)
from .prompt_checks import EchoFilter, LanguageFilter, RestatedFilter
from .steps import Step


def build_steps(cfg: CurateConfig, *, model: str | None = None, tokenizer=None,
                evals: list[Example] | None = None,
                embeddings: Callable[..., np.ndarray] | None = None) -> list[Step]:
    """The configured steps, in order, ready to run."""
    factories: dict[str, Callable[[], Step]] = {
        "empty": lambda: EmptyFilter(cfg.empty),
        "length": lambda: LengthFilter(cfg.length, tokenizer=tokenizer, model=cfg.model or model),
        "repetition": lambda: RepetitionFilter(cfg.repetition),
        "truncation": lambda: TruncationFilter(cfg.truncation),
        "end_of_turn": lambda: EndOfTurnFilter(cfg.end_of_turn, model=cfg.model or model),
        "refusal": lambda: RefusalFilter(cfg.refusal),
        "template_leak": lambda: TemplateLeakFilter(cfg.template_leak),
        "echo": lambda: EchoFilter(cfg.echo),
        "restated": lambda: RestatedFilter(cfg.restated),
        "language": lambda: LanguageFilter(cfg.language),
        "exact_dedup": lambda: ExactDedup(cfg.exact_dedup),
        "near_dedup": lambda: NearDedup(cfg.near_dedup),
        "semantic_dedup": lambda: SemanticDedup(cfg.semantic_dedup, embeddings=embeddings),
        "diversity": lambda: DiversityStep(cfg.diversity, embeddings=embeddings),
        "leakage": lambda: LeakageStep(cfg.leakage, evals=evals),
    }
    return [factories[name]() for name in cfg.steps]


@dataclass
class CurateResult:
    kept: list[Example]
    rejected: list[Rejected]
    funnel: list[dict[str, Any]] = field(default_factory=list)
    n_input: int = 0
    stats: dict[str, Any] | None = None
    # Counts when the records were not collected (``curate(..., collect=False)``).
    n_kept: int | None = None
    n_rejected: int | None = None

    @property
    def kept_count(self) -> int:
        return len(self.kept) if self.n_kept is None else self.n_kept

    @property
    def rejected_count(self) -> int:
        return len(self.rejected) if self.n_rejected is None else self.n_rejected


def print_funnel_line(console, entry: dict[str, Any]) -> None:
    flagged = f", {entry['flagged']} flagged" if entry["flagged"] else ""
    console.print(f"  {entry['step']:<15} {entry['in']:>8} -> {entry['out']:>8}"
                  f"  ({entry['rejected']} rejected{flagged})")


def run_steps(examples: list[Example], steps: list[Step], *, progress: bool = False) -> CurateResult:
    """Apply ``steps`` in order; each step sees only what the previous ones kept."""
    from rich.console import Console
    console = Console(stderr=True)
    current = list(examples)
    rejected: list[Rejected] = []
    funnel = []
    for step in steps:
        t0 = time.perf_counter()
        if progress:
            with console.status(f"curate: {step.name} on {len(current)} records"):
                res = step.run(current)
        else:
            res = step.run(current)
        if len(res.kept) + len(res.rejected) != len(current):
            raise RuntimeError(f"step {step.name} lost records: {len(current)} in, {len(res.kept)} kept + "
                               f"{len(res.rejected)} rejected")
        funnel.append({"step": step.name, "in": len(current), "out": len(res.kept),
                       "rejected": len(res.rejected), "flagged": res.flagged,
                       "seconds": round(time.perf_counter() - t0, 3)})
        if progress:
            print_funnel_line(console, funnel[-1])
        rejected.extend(res.rejected)
        current = res.kept
    return CurateResult(kept=current, rejected=rejected, funnel=funnel, n_input=len(examples))


def curate(inputs: list[str | Path], out_dir: str | Path, cfg: CurateConfig | None = None, *,
           fmt: str = "auto", model: str | None = None, tokenizer=None,
           eval_paths: list[str | Path] | None = None, progress: bool = True,
           collect: bool = True) -> CurateResult:
    """Read ``inputs``, run the configured steps, write kept/rejected/manifest/stats to ``out_dir``.

    Filters and dedup steps run on a stream (``streaming``): memory is bounded by a batch
    plus a few hundred bytes per record, not by the file. ``collect=False`` returns counts
    only (``kept_count``, ``rejected_count``) instead of holding every record for the
    caller. The leakage and diversity steps need the whole set of records, so a
    configuration with either runs in memory (``curate_in_memory``).
    """
    cfg = cfg or CurateConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if eval_paths:
        cfg = cfg.model_copy(deep=True)
        cfg.leakage.eval = [str(p) for p in eval_paths]
        if "leakage" not in cfg.steps:
            cfg.steps = ["leakage"] + list(cfg.steps)
    if cfg.engine.kind == "ray":
        from .ray_curate import curate_on_ray
        return curate_on_ray(inputs, out, cfg, fmt=fmt, model=model, tokenizer=tokenizer, progress=progress,
                             collect=collect)
    from .streaming import curate_streaming, streamable
    if streamable(cfg.steps):
        steps = build_steps(cfg, model=model, tokenizer=tokenizer, embeddings=EmbeddingCache(out / "cache"))
        return curate_streaming(inputs, out, cfg, steps, fmt=fmt, model=model, tokenizer=tokenizer,
                                progress=progress, collect=collect)
    return curate_in_memory(inputs, out, cfg, fmt=fmt, model=model, tokenizer=tokenizer, progress=progress)


def curate_in_memory(inputs: list[str | Path], out: Path, cfg: CurateConfig, *, fmt: str = "auto",
                     model: str | None = None, tokenizer=None, progress: bool = True) -> CurateResult:
    """``curate`` with every record held as an Example (steps that need the whole set)."""
    out.mkdir(parents=True, exist_ok=True)
    read = read_examples([Path(p) for p in inputs], fmt, skip_invalid=True, duplicate_ids=cfg.duplicate_ids)
    evals = read_examples(cfg.leakage.eval).examples if "leakage" in cfg.steps and cfg.leakage.eval else None
    steps = build_steps(cfg, model=model, tokenizer=tokenizer, evals=evals,
                        embeddings=EmbeddingCache(out / "cache"))
    result = run_steps(read.examples, steps, progress=progress)
    result.rejected = list(read.rejected) + result.rejected
    result.n_input = len(read.examples) + len(read.rejected)
    if read.rejected:
        result.funnel.insert(0, {"step": "read", "in": result.n_input, "out": len(read.examples),
                                 "rejected": len(read.rejected), "flagged": 0, "seconds": 0.0})
    write_outputs(result, out, cfg, inputs=list(inputs) + list(cfg.leakage.eval if evals else []),
                  model=model, tokenizer=tokenizer, progress=progress)
    return result


RAW_INLINE_LIMIT = 1 << 20  # bytes of one unreadable record kept inside rejected.jsonl


def spill_large_raw(rejected: list[Rejected], folder: Path, limit: int = RAW_INLINE_LIMIT, start: int = 0) -> int:
    """Move the raw text of unreadable records larger than ``limit`` to ``folder`` (one
    file each, named in the reject by its position ``start + k`` in rejected.jsonl), so
    rejected.jsonl stays readable and nothing is cut."""
    moved = 0
    for k, r in enumerate(rejected, start):
        raw = r.record.get("raw") if r.step == "read" else None
        if raw is None:
            continue
        text = raw if isinstance(raw, str) else json.dumps(raw, ensure_ascii=False)
        if len(text) <= limit:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{k:08d}.txt"
        path.write_text(text, encoding="utf-8")
        r.record = {"raw_file": str(path), "raw_chars": len(text)}
        moved += 1
    return moved


def write_outputs(result: CurateResult, out: Path, cfg: CurateConfig, *, inputs: list, model: str | None,
                  tokenizer=None, progress: bool = True) -> None:
    write_examples(out / "kept.jsonl", result.kept)
    spill_large_raw(result.rejected, out / "rejected_raw")
    write_rejected(out / "rejected.jsonl", result.rejected)
    by_step: dict[str, int] = {}
    for r in result.rejected:
        by_step[r.step] = by_step.get(r.step, 0) + 1
    finish_outputs(result, out, cfg, by_step, lambda: result.kept, inputs=inputs, model=model,
                   tokenizer=tokenizer, progress=progress)


def finish_outputs(result: CurateResult, out: Path, cfg: CurateConfig, by_step: dict[str, int],
                   kept: Callable[[], list[Example]], *, inputs: list, model: str | None, tokenizer=None,
                   progress: bool = True) -> None:
    """stats.json and plots of the kept set (``kept()`` gives it), then the manifest."""
    counts = {"input": result.n_input, "kept": result.kept_count, "rejected": result.rejected_count,
              "rejected_by_step": by_step, "steps": result.funnel}
    if cfg.stats:
        from .describe import compute_stats, print_summary, write_stats
        result.stats = compute_stats(kept(), tokenizer=tokenizer, model=cfg.model or model,
                                     funnel=result.funnel, embed_method=cfg.stats_embed,
                                     task_method=cfg.stats_tasks)
        write_stats(result.stats, out, plots=cfg.plots)
        if progress:
            print_summary(result.stats)
    write_manifest(out, stage="curate", inputs=inputs, config=cfg, counts=counts)
