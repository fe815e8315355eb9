"""Dataset statistics: what is in the data, how long, how diverse, how much is repeated.

``compute_stats`` returns a JSON-able dict; ``write_stats`` also draws PNG plots
(length histograms, task distribution, the curation funnel) with matplotlib's Agg
backend (no display needed), and ``print_summary`` shows the headline numbers as rich
tables.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from ..embed import embed_texts, example_text
from ..schema import Example
from .config import RefusalParams
from .minhash import near_duplicates, normalize_text
from .diversity import one_pass_cluster
from .filters import RefusalFilter
from ..task_types import classify_task_types, task_type_names

DEDUP_STEPS = ("exact_dedup", "near_dedup", "semantic_dedup")


def shannon_entropy(counts: dict[Any, int]) -> float:
    """Entropy in bits of the distribution given by counts."""
    total = sum(counts.values())
    if total == 0:
        return 0.0
    return -sum(c / total * math.log2(c / total) for c in counts.values() if c)


def distribution(values: list[int] | np.ndarray) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"count": 0}
    q = np.percentile(v, [5, 25, 50, 75, 95])
    return {"count": int(v.size), "mean": round(float(v.mean()), 2), "min": int(v.min()),
            "p5": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]),
            "p95": float(q[4]), "max": int(v.max())}


def token_lengths(examples: list[Example], tokenizer=None, model: str | None = None,
                  batch_size: int = 256) -> tuple[list[int], list[int]]:
    """(instruction tokens, response tokens) per example; reuses curate.length measurements."""
    inst: list[int | None] = []
    resp: list[int | None] = []
    missing: list[int] = []
    for k, ex in enumerate(examples):
        m = ex.metadata.get("curate", {}).get("length", {}) if isinstance(ex.metadata.get("curate"), dict) else {}
        if "instruction_tokens" in m and "response_tokens" in m:
            inst.append(m["instruction_tokens"])
            resp.append(m["response_tokens"])
        else:
            inst.append(None)
            resp.append(None)
            missing.append(k)
    if missing:
        if tokenizer is None:
            from ..models import load_tokenizer
            tokenizer = load_tokenizer(model)
        texts = [examples[k].prompt for k in missing] + [examples[k].response for k in missing]
        lens: list[int] = []
        for i in range(0, len(texts), batch_size):
            lens.extend(len(x) for x in tokenizer(texts[i:i + batch_size], add_special_tokens=False)["input_ids"])
        for j, k in enumerate(missing):
            inst[k] = lens[j]
            resp[k] = lens[len(missing) + j]
    return [int(x) for x in inst], [int(x) for x in resp]


def compute_stats(examples: list[Example], *, tokenizer=None, model: str | None = None,
                  funnel: list[dict[str, Any]] | None = None, embed_method: str = "tfidf",
                  cluster_threshold: float = 0.5, cluster_sample: int = 5000, seed: int = 0,
                  near_dup_threshold: float = 0.7, task_method: str = "sbert",
                  task_sample: int = 2000) -> dict[str, Any]:
    n = len(examples)
    stats: dict[str, Any] = {"records": n}
    stats["sources"] = dict(Counter(str(ex.metadata.get("_source", "unknown")) for ex in examples).most_common())
    if n == 0:
        stats["funnel"] = funnel or []
        return stats
    inst, resp = token_lengths(examples, tokenizer, model)
    stats["instruction_tokens"] = distribution(inst)
    stats["response_tokens"] = distribution(resp)
    # Nearest labelled prototype (sftflow.task_types; accuracy on T0 measured in its test),
    # on a seeded sample of a large set: the embedder reads ~6 sentences per prompt.
    tidx = np.arange(n)
    if n > task_sample:
        tidx = np.sort(np.random.default_rng(seed).choice(tidx, task_sample, replace=False))
    tasks = Counter(classify_task_types([examples[i].prompt for i in tidx], method=task_method))
    stats["task_types_sampled"] = int(len(tidx))
    ent = shannon_entropy(tasks)
    stats["task_types"] = dict(tasks.most_common())
    stats["task_type_method"] = task_method
    stats["task_entropy_bits"] = round(ent, 4)
    stats["task_entropy_normalised"] = round(ent / math.log2(len(task_type_names())), 4)
    stats["multi_turn_share"] = round(sum(ex.is_multi_turn for ex in examples) / n, 4)
    refusal = RefusalFilter(RefusalParams())
    stats["refusal_share"] = round(sum(refusal.measure(ex)["flagged"] for ex in examples) / n, 4)
    keys = Counter(normalize_text(ex.prompt) for ex in examples)
    stats["exact_duplicate_share"] = round(sum(c - 1 for c in keys.values()) / n, 4)
    nd = near_duplicates([ex.prompt for ex in examples], threshold=near_dup_threshold)
    comp = Counter(nd.labels.tolist())
    stats["near_duplicate_share"] = round(sum(c - 1 for c in comp.values()) / n, 4)
    if embed_method != "none":
        stats["embedding_clusters"] = _cluster_view(examples, embed_method, model=None,
                                                    threshold=cluster_threshold, sample=cluster_sample,
                                                    seed=seed)
    stats["funnel"] = funnel or []
    if funnel:
        # After a curate run the kept set holds (almost) no duplicates; the share that the
        # dedup steps removed from the input is the number that describes the pool.
        removed = sum(row["rejected"] for row in funnel if row["step"] in DEDUP_STEPS)
        stats["input_duplicate_share"] = round(removed / max(funnel[0]["in"], 1), 4)
    stats["_lengths"] = {"instruction": inst, "response": resp}  # for plots; dropped on write
    return stats


def _cluster_view(examples: list[Example], method: str, model: str | None, threshold: float,
                  sample: int, seed: int) -> dict[str, Any]:
    """One-pass clusters of prompt embeddings on a seeded sample: how many distinct tasks."""
    idx = np.arange(len(examples))
    if len(idx) > sample:
        idx = np.sort(np.random.default_rng(seed).choice(idx, sample, replace=False))
    emb = embed_texts([example_text(examples[i], "prompt") for i in idx], model, method=method)
    ids, _ = one_pass_cluster(emb, threshold)
    sizes = Counter(ids.tolist())
    return {"method": method, "threshold": threshold, "sampled": int(len(idx)), "clusters": len(sizes),
            "largest_cluster_share": round(max(sizes.values()) / len(idx), 4),
            "entropy_bits": round(shannon_entropy(sizes), 4)}


def write_stats(stats: dict[str, Any], out_dir: str | Path, *, plots: bool = True) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lengths = stats.get("_lengths")
    clean = {k: v for k, v in stats.items() if not k.startswith("_")}
    path = out / "stats.json"
    path.write_text(json.dumps(clean, indent=2, ensure_ascii=False) + "\n")
    if plots:
        write_plots(clean, lengths, out)
    return path


def write_plots(stats: dict[str, Any], lengths: dict[str, list[int]] | None, out: Path) -> list[Path]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    written = []
    if lengths:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
        for ax, key in zip(axes, ("instruction", "response")):
            ax.hist(lengths[key], bins=40, color="#4c72b0")
            ax.set_title(f"{key} length (tokens)")
            ax.set_xlabel("tokens")
            ax.set_ylabel("records")
        fig.tight_layout()
        fig.savefig(out / "lengths.png", dpi=100)
        plt.close(fig)
        written.append(out / "lengths.png")
    if stats.get("task_types"):
        names = list(stats["task_types"])
        fig, ax = plt.subplots(figsize=(7, 3.5))
        ax.barh(names[::-1], [stats["task_types"][k] for k in names[::-1]], color="#55a868")
        ax.set_title(f"task types (entropy {stats.get('task_entropy_bits', 0):.2f} bits)")
        fig.tight_layout()
        fig.savefig(out / "tasks.png", dpi=100)
        plt.close(fig)
        written.append(out / "tasks.png")
    if stats.get("funnel"):
        f = stats["funnel"]
        labels = ["input"] + [row["step"] for row in f]
        values = [f[0]["in"]] + [row["out"] for row in f]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        bars = ax.bar(labels, values, color="#c44e52")
        ax.bar_label(bars, fontsize=8)
        ax.set_title("curation funnel (records after each step)")
        ax.tick_params(axis="x", rotation=45)
        fig.tight_layout()
        fig.savefig(out / "funnel.png", dpi=100)
        plt.close(fig)
        written.append(out / "funnel.png")
    return written


def print_summary(stats: dict[str, Any], console=None) -> None:
    from rich.console import Console
    from rich.table import Table
    console = console or Console(stderr=True)
    t = Table(title=f"{stats['records']} records", show_header=False)
    for key in ("multi_turn_share", "refusal_share", "exact_duplicate_share", "near_duplicate_share",
                "input_duplicate_share", "task_entropy_bits"):
        if key in stats:
            t.add_row(key.replace("_", " "), f"{stats[key]}")
    for key in ("instruction_tokens", "response_tokens"):
        d = stats.get(key)
        if d and d.get("count"):
            t.add_row(key.replace("_", " "), f"median {d['median']:.0f}  p95 {d['p95']:.0f}  max {d['max']}")
    ec = stats.get("embedding_clusters")
    if ec:
        t.add_row("embedding clusters", f"{ec['clusters']} in {ec['sampled']} ({ec['method']})")
    console.print(t)
    if stats.get("task_types"):
        tt = Table("task type", "records")
        for k, v in stats["task_types"].items():
            tt.add_row(k, str(v))
        console.print(tt)
    if stats.get("funnel"):
        ft = Table("step", "in", "out", "rejected", "flagged", title="funnel")
        for row in stats["funnel"]:
            ft.add_row(row["step"], str(row["in"]), str(row["out"]), str(row["rejected"]),
                       str(row.get("flagged", 0)))
        console.print(ft)
