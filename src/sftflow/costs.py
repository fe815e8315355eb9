"""What a run cost: compute per stage, tokens, API use, and (with prices) money.

Every run folder gets ``costs.json``:

- ``stages``: per stage, wall seconds, CPU seconds (``time.process_time``: all threads of
  this process, so two busy cores for 10 s read 20 s), the device, and GPU seconds
  (the stage's wall time when it ran on a GPU: a held GPU is billed whether busy or not);
- ``tokens``: trained (supervised tokens and all tokens of the training set, times the
  passes the steps made over it) and generated (every completion token of every side);
- ``api``: per backend, requests and prompt / completion tokens (``MeteredBackend``).

With prices (``cost:`` in a recipe: ``gpu_hour``, ``cpu_hour`` per machine hour,
``input_per_mtok``, ``output_per_mtok`` per million API tokens), ``price`` adds each
line and the total: GPU hours x gpu_hour + wall hours of CPU-only stages x cpu_hour +
API tokens x their prices. Missing prices count as zero and are listed as missing.
"""

from __future__ import annotations

import json
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from .config import StrictModel
from .io.atomic import atomic_write_text


class CostSection(StrictModel):
    gpu_hour: float | None = Field(None, ge=0, description="price of one GPU hour")
    cpu_hour: float | None = Field(None, ge=0, description="price of one hour of the CPU machine")
    input_per_mtok: float | None = Field(None, ge=0, description="API price per million prompt tokens")
    output_per_mtok: float | None = Field(None, ge=0, description="API price per million completion tokens")
    currency: str = "USD"


def current_device() -> str:
    try:
        import torch
        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except ImportError:
        pass
    return "cpu"


@dataclass
class StageCost:
    stage: str
    wall_s: float
    cpu_s: float
    device: str
    gpu_s: float


@dataclass
class Ledger:
    """Collects a run's compute, tokens and API use; ``write`` puts it in ``costs.json``."""

    stages: list[StageCost] = field(default_factory=list)
    tokens: dict[str, Any] = field(default_factory=dict)
    api: dict[str, dict[str, int]] = field(default_factory=dict)

    @contextmanager
    def stage(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            dev = current_device()
            w = time.perf_counter() - wall
            self.stages.append(StageCost(name, round(w, 3), round(time.process_time() - cpu, 3), dev,
                                         round(w, 3) if dev.startswith("cuda") else 0.0))

    def add_api(self, backend: "MeteredBackend") -> None:
        key = f"{backend.name}:{backend.model}"
        row = self.api.setdefault(key, {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0})
        for k in row:
            row[k] += backend.usage[k]

    def add_training(self, result: dict[str, Any], batch_size: int, accumulation: int = 1) -> None:
        """From ``train_result.json``: tokens of the training set times the passes made over it."""
        n = result.get("train_examples") or 0
        passes = (result.get("steps", 0) * batch_size * accumulation / n) if n else 0.0
        self.tokens["trained"] = {"supervised_tokens_per_pass": result.get("supervised_tokens"),
                                  "tokens_per_pass": result.get("total_tokens"), "passes": round(passes, 4),
                                  "tokens_processed": round((result.get("total_tokens") or 0) * passes)}

    def add_generated(self, label: str, answers: list[dict]) -> None:
        gen = self.tokens.setdefault("generated", {})
        gen[label] = gen.get(label, 0) + sum(int(a.get("completion_tokens") or 0) for a in answers)

    def summary(self, prices: CostSection | None = None) -> dict[str, Any]:
        out = {"stages": [asdict(s) for s in self.stages],
               "total": {"wall_s": round(sum(s.wall_s for s in self.stages), 3),
                         "cpu_s": round(sum(s.cpu_s for s in self.stages), 3),
                         "gpu_s": round(sum(s.gpu_s for s in self.stages), 3)},
               "tokens": self.tokens, "api": self.api}
        out["price"] = price(out, prices) if prices is not None else None
        return out

    def write(self, out_dir: str | Path, prices: CostSection | None = None) -> dict[str, Any]:
        s = self.summary(prices)
        atomic_write_text(Path(out_dir, "costs.json"), json.dumps(s, indent=2) + "\n")
        return s


def price(summary: dict[str, Any], prices: CostSection) -> dict[str, Any]:
    gpu_h = summary["total"]["gpu_s"] / 3600
    cpu_h = sum(s["wall_s"] for s in summary["stages"] if s["gpu_s"] == 0) / 3600
    tin = sum(r["prompt_tokens"] for r in summary["api"].values())
    tout = sum(r["completion_tokens"] for r in summary["api"].values())
    lines = {"gpu": (gpu_h, prices.gpu_hour, "gpu_hour"), "cpu": (cpu_h, prices.cpu_hour, "cpu_hour"),
             "api_input": (tin / 1e6, prices.input_per_mtok, "input_per_mtok"),
             "api_output": (tout / 1e6, prices.output_per_mtok, "output_per_mtok")}
    out: dict[str, Any] = {"currency": prices.currency, "lines": {}, "missing_prices": []}
    for name, (amount, unit_price, key) in lines.items():
        if unit_price is None:
            if amount:
                out["missing_prices"].append(key)
            unit_price = 0.0
        out["lines"][name] = {"amount": round(amount, 6), "unit_price": unit_price,
                              "cost": round(amount * unit_price, 6)}
    out["total"] = round(sum(v["cost"] for v in out["lines"].values()), 4)
    return out


class MeteredBackend:
    """Wraps any backend and counts its requests and tokens (for ``costs.json``)."""

    def __init__(self, inner):
        self.inner = inner
        self.name = getattr(inner, "name", type(inner).__name__)
        self.model = getattr(inner, "model", "?")
        self.usage = {"requests": 0, "prompt_tokens": 0, "completion_tokens": 0}

    def generate(self, requests, params):
        out = self.inner.generate(requests, params)
        self.usage["requests"] += len(requests)
        for c in out:
            self.usage["prompt_tokens"] += int(getattr(c, "prompt_tokens", 0) or 0)
            self.usage["completion_tokens"] += int(getattr(c, "completion_tokens", 0) or 0)
        return out

    def __getattr__(self, item):          # close(), stats, ... of the wrapped backend
        return getattr(self.inner, item)
