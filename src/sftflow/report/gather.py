"""Find what a run folder holds: curation, data, training log, eval results.

A run folder is what ``sftflow run`` writes (``data/``, ``curate/``, ``train/``,
``eval/``...). Every part is optional: the report shows what exists and says what
does not, so it also works on a lone ``sftflow eval -o OUT`` folder.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .. import models as _models


@dataclass
class RunData:
    run_dir: Path
    curate_manifest: dict | None = None
    curate_stats: dict | None = None
    rejects_by_reason: list[dict] = field(default_factory=list)   # step, reason, count, examples
    datasets: dict[str, list[dict]] = field(default_factory=dict)  # name -> example dicts
    train_log: list[dict] = field(default_factory=list)
    train_log_path: Path | None = None
    metrics: dict | None = None
    generations: list[dict] = field(default_factory=list)
    judgments: list[dict] = field(default_factory=list)
    loss_rows: list[dict] = field(default_factory=list)            # per-example base/tuned loss
    smoke: dict | None = None
    model_sources: dict[str, str] = field(default_factory=dict)    # "base"/"tuned" -> where it came from
    train_config: dict | None = None
    costs: dict | None = None                                       # costs.json of a recipe run
    missing: list[str] = field(default_factory=list)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text("utf-8"))
    except (OSError, ValueError):
        return None


def read_jsonl(path: Path, limit: int | None = None) -> list[dict]:
    rows = []
    if not path.exists():
        return rows
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue   # a torn last line of a live log; the rest is still worth showing
            if limit and len(rows) >= limit:
                break
    return rows


def reason_key(reason: str) -> str:
    """Group 'too short: 3 words' with 'too short: 5 words': numbers become '#'."""
    return re.sub(r"-?\d+(?:\.\d+)?", "#", str(reason))[:120]


def group_rejects(rows: list[dict], examples_per_reason: int = 3) -> list[dict]:
    groups: dict[tuple[str, str], dict] = {}
    for r in rows:
        key = (str(r.get("step", "?")), reason_key(r.get("reason", "?")))
        g = groups.setdefault(key, {"step": key[0], "reason": key[1], "count": 0, "examples": []})
        g["count"] += 1
        if len(g["examples"]) < examples_per_reason:
            g["examples"].append({"reason": r.get("reason"), "value": r.get("value"),
                                  "prompt": _prompt_of(r)})
    return sorted(groups.values(), key=lambda g: -g["count"])


def _prompt_of(rec: dict) -> str:
    msgs = rec.get("messages")
    if isinstance(msgs, list):
        for m in msgs:
            if isinstance(m, dict) and m.get("role") == "user":
                return str(m.get("content", ""))[:300]
    raw = rec.get("raw")
    return json.dumps(raw, ensure_ascii=False)[:300] if raw is not None else ""


def _first(paths) -> Path | None:
    for p in paths:
        if p.exists():
            return p
    return None


def gather(run_dir: str | Path, max_examples: int = 20000) -> RunData:
    run = Path(run_dir)
    if not run.is_dir():
        raise FileNotFoundError(f"{run}: not a folder")
    d = RunData(run_dir=run)

    cur = run / "curate"
    if cur.is_dir():
        d.curate_manifest = read_json(cur / "manifest.json")
        d.curate_stats = read_json(cur / "stats.json")
        d.rejects_by_reason = group_rejects(read_jsonl(cur / "rejected.jsonl"))
    else:
        d.missing.append("curation (no curate/ folder)")

    # The recipe writes data/ (train, validation, test; runs before the three-way split
    # wrote eval.jsonl); the trainer keeps a copy of what it trained on in train/data/.
    for name, paths in (("train", [run / "data" / "train.jsonl", run / "train" / "data" / "train.jsonl"]),
                        ("validation", [run / "data" / "validation.jsonl", run / "data" / "eval.jsonl",
                                        run / "train" / "data" / "eval.jsonl"]),
                        ("test", [run / "data" / "test.jsonl"]),
                        ("curated", [cur / "kept.jsonl"]),
                        ("selected", [run / "select" / "selected.jsonl"])):
        path = _first(paths)
        if path is not None:
            d.datasets[name] = read_jsonl(path, limit=max_examples)
    if not d.datasets:
        d.missing.append("training data (no data/train.jsonl)")

    logs = sorted((run / "train").rglob("log.jsonl")) if (run / "train").is_dir() else []
    logs += [p for p in [run / "log.jsonl"] if p.exists()]
    if logs:
        # The run's own log, not a checkpoint's copy: the shortest path is the top one.
        d.train_log_path = min(logs, key=lambda p: len(p.parts))
        d.train_log = read_jsonl(d.train_log_path)
    else:
        d.missing.append("training log (no train/**/log.jsonl)")

    ev = _first([run / "eval" / "metrics.json", run / "metrics.json"])
    if ev is not None:
        d.metrics = read_json(ev)
        d.generations = read_jsonl(ev.parent / "generations.jsonl")
        d.judgments = read_jsonl(ev.parent / "judgments.jsonl")
        d.loss_rows = read_jsonl(ev.parent / "loss_per_example.jsonl")
        d.model_sources = model_sources(d.metrics or {})
    else:
        d.missing.append("evaluation (no eval/metrics.json)")
    smoke = _first([run / "train" / "smoke.json", run / "smoke.json"])
    d.smoke = read_json(smoke) if smoke else None
    d.costs = read_json(run / "costs.json") if (run / "costs.json").exists() else (d.metrics or {}).get("cost")
    train_cfg = run / "train" / "train_config.yaml"
    if train_cfg.exists():
        d.train_config = _read_yaml(train_cfg)
    if d.metrics and d.train_config and not _declared(d.metrics, "tuned"):
        trained = _trained_here(run, d.metrics.get("model"), d.train_config)
        if trained:
            d.model_sources["tuned"] = trained
    return d


def _declared(metrics: dict, side: str) -> bool:
    entry = (metrics.get("models") or {}).get(side) if isinstance(metrics.get("models"), dict) else None
    return isinstance(entry, dict) and bool(entry.get("model_source"))


def _trained_here(run: Path, tuned: str | None, train_config: dict) -> str | None:
    """A full fine-tune this run's train stage wrote (its folder has no adapter config to
    follow back to the base): say what it was trained from."""
    if not tuned or not train_config.get("model") or (Path(tuned) / "adapter_config.json").exists():
        return None
    try:
        inside = Path(tuned).resolve().is_relative_to((run / "train").resolve())
    except OSError:
        return None
    if not inside:
        return None
    start = _models.describe_model(str(train_config["model"]))["model_source"]
    return f"{train_config.get('method', 'a')} fine-tune of {start}"


def _read_yaml(path: Path) -> dict | None:
    import yaml
    try:
        data = yaml.safe_load(path.read_text("utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def model_sources(metrics: dict) -> dict[str, str]:
    """Where each evaluated model came from, in words, for the page header.

    A recipe run records it in ``metrics["models"][side]["model_source"]``; for an eval
    run on its own, ``sftflow.models.describe_model`` reads the same from the model's
    name or folder (the embedded SmolLM2 copy, an adapter on it, a folder, a hub id).
    """
    declared = metrics.get("models") if isinstance(metrics.get("models"), dict) else {}
    out = {}
    for side, key in (("base", "base"), ("tuned", "model")):
        entry = declared.get(side)
        if isinstance(entry, dict) and entry.get("model_source"):
            out[side] = str(entry["model_source"])
        elif metrics.get(key):
            out[side] = str(_models.describe_model(str(metrics[key]))["model_source"])
    return out


def length_stats(rows: list[dict]) -> dict[str, list[int]]:
    """Prompt and response lengths in words for a list of sftflow example dicts."""
    prompts, responses = [], []
    for r in rows:
        msgs = r.get("messages") or []
        user = [m.get("content", "") for m in msgs if m.get("role") == "user"]
        asst = [m.get("content", "") for m in msgs if m.get("role") == "assistant"]
        prompts.append(len(user[-1].split()) if user else 0)
        responses.append(len(asst[-1].split()) if asst else 0)
    return {"prompt": prompts, "response": responses}


def task_counts(rows: list[dict]) -> Counter:
    """Task label per example: metadata 'task' or 'category' when the data has one,
    else the curation stage's prompt-type heuristic, else the source file."""
    try:
        from ..task_types import task_type
    except ImportError:   # curation is optional; fall back to the source name
        task_type = None
    c: Counter = Counter()
    for r in rows:
        meta = r.get("metadata") or {}
        label = meta.get("task") or meta.get("category")
        if label is None and task_type is not None:
            msgs = r.get("messages") or []
            user = [m.get("content", "") for m in msgs if m.get("role") == "user"]
            label = task_type(user[-1] if user else "")
        c[str(label if label is not None else meta.get("_source", "unknown"))] += 1
    return c
