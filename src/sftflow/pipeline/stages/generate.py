"""The generate stage: one entry point for the CLI and for recipes."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from ...io import load_examples, write_examples
from ...schema import Example
from ...generate.config import GenerateConfig


def run_generate(cfg: GenerateConfig, out_dir: str | Path, *, backend=None,
                 examples: list[Example] | None = None) -> dict[str, Any]:
    """Run ``cfg.method`` into OUT_DIR; returns the manifest counts."""
    if cfg.engine.kind == "ray" and backend is None:
        from ...generate.ray_generate import ray_backend
        with contextlib.closing(ray_backend(cfg, out_dir)) as on_ray:
            return run_generate(cfg, out_dir, backend=on_ray, examples=examples)
    if cfg.method == "self-instruct":
        from ...generate.self_instruct import run_self_instruct
        return run_self_instruct(cfg, out_dir, backend=backend)
    from ...generate.backtranslate import run_backtranslate, run_paraphrase, run_roundtrip
    if cfg.method == "backtranslate":
        return run_backtranslate(cfg, out_dir, backend=backend)
    runner = run_paraphrase if cfg.method == "paraphrase" else run_roundtrip
    return runner(cfg, out_dir, backend=backend, examples=examples)


def run_stage(cfg: GenerateConfig, state, *, backend=None) -> None:
    """Recipe step: generate, then make the training data = existing data + new records."""
    out = state.stage_dir("generate")
    existing: list[Example] = load_examples([state.train_path]) if state.train_path else []
    examples = None
    if cfg.method in ("paraphrase", "roundtrip") and not cfg.rewrite.input:
        if not existing:
            raise ValueError(f"generate.method={cfg.method} needs records to rewrite: "
                             "set generate.rewrite.input or data.train in the recipe")
        examples = existing
    from ...costs import MeteredBackend
    from ...generate.session import build_backend
    on_ray = None
    if backend is None and cfg.engine.kind == "ray":
        from ...generate.ray_generate import ray_backend
        on_ray = ray_backend(cfg, out)
    metered = MeteredBackend(backend or on_ray or build_backend(cfg.backend, out))
    try:
        counts = run_generate(cfg, out, backend=metered, examples=examples)
    finally:
        state.ledger.add_api(metered)
        if on_ray is not None:
            on_ray.close()
    new = load_examples([out / "records.jsonl"]) if counts["records"] else []
    combined = out / "train.jsonl"
    write_examples(combined, existing + new)
    state.train_path = combined
    state.artifacts["generate"] = {"method": cfg.method, "existing": len(existing),
                                   "generated": len(new), "counts": counts}
