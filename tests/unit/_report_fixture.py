"""A hand-made run folder with every part the report reads."""

from __future__ import annotations

import json
from pathlib import Path


def _jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def ex(q, a, **meta):
    return {"id": q[:8], "messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
            "metadata": meta}


def make_run(root: Path) -> Path:
    run = root / "run"
    cur = run / "curate"
    cur.mkdir(parents=True)
    funnel = [{"step": "length", "in": 100, "out": 90, "rejected": 10, "flagged": 0},
              {"step": "exact_dedup", "in": 90, "out": 80, "rejected": 10, "flagged": 0}]
    (cur / "stats.json").write_text(json.dumps({"records": 80, "funnel": funnel}))
    (cur / "manifest.json").write_text(json.dumps({"stage": "curate", "counts": {"input": 100, "kept": 80}}))
    rejected = [dict(ex(f"short {i}", "x"), step="length", reason=f"response too short: {i} words", value=i)
                for i in range(10)]
    rejected += [dict(ex(f"dup {i}", "y"), step="exact_dedup", reason="duplicate of abc", value=None)
                 for i in range(10)]
    _jsonl(cur / "rejected.jsonl", rejected)
    _jsonl(run / "data" / "train.jsonl",
           [ex(f"What is {i} plus {i}? " * (1 + i % 5), "Answer: " + "ok " * (i % 7 + 1), task="math" if i % 2 else "qa")
            for i in range(40)])
    _jsonl(run / "data" / "eval.jsonl", [ex(f"Held {i}?", "Answer: yes") for i in range(5)])
    log = []
    for s in range(0, 101, 10):
        log.append({"step": s, "epoch": s / 100, "loss": 3.0 - s / 50, "learning_rate": 1e-3 * (1 - s / 100),
                    "grad_norm": 1.0})
        if s and s % 50 == 0:
            log.append({"step": s, "epoch": s / 100, "eval_loss": 2.5 - s / 200})
    log.append({"step": 100, "event": "overfit_gap", "level": "warning", "message": "possible overfitting: gap"})
    _jsonl(run / "train" / "log.jsonl", log)
    _jsonl(run / "train" / "checkpoints" / "checkpoint-50" / "log.jsonl", log[:3])   # must be ignored
    ev = run / "eval"
    probe = lambda r, n=5: {"rate": r, "low": max(0, r - 0.2), "high": min(1, r + 0.2), "n": n}  # noqa: E731
    metrics = {
        "model": "runs/x/train", "base": "smollm2", "n_examples": 5, "status": "warn",
        "reasons": ["general_knowledge: acc changed by -3.0 points"],
        "loss": {"base": {"loss": 2.0, "perplexity": 7.389}, "tuned": {"loss": 1.5, "perplexity": 4.4817},
                 "delta": -0.5},
        "probes": {"apology_preamble": {"description": "opens with an apology", "base": probe(0.4),
                                        "tuned": probe(0.0),
                                        "paired": {"n": 5, "diff": -0.4, "diff_low": -0.7, "diff_high": -0.05,
                                                   "p_value": 0.03125}},
                   "hit_token_limit": {"description": "ran out", "base": probe(0.6), "tuned": probe(0.2)}},
        "choice": {"general_knowledge": {"base": {"acc": 0.50, "acc_norm": 0.48, "acc_bytes": 0.48, "n": 200},
                                         "tuned": {"acc": 0.47, "acc_norm": 0.46, "acc_bytes": 0.46, "n": 200}}},
        "forgetting": {"status": "warn", "warn_drop": 2.0, "fail_drop": 5.0,
                       "tasks": {"general_knowledge": {"metric": "acc", "base": 0.5, "tuned": 0.47,
                                                       "delta_points": -3.0, "status": "warn"}}},
        "judge": {"mode": "pairwise", "n": 4, "pairs": 5, "unparsed": 1, "win": 0.5, "tie": 0.25, "loss": 0.25,
                  "win_low": 0.0, "win_high": 1.0, "tie_low": 0.0, "tie_high": 0.75, "loss_low": 0.0,
                  "loss_high": 0.75, "backend": "fake", "judge_model": None},
        "reference": {"figures": {"description": "states the reference figure", "base": probe(0.2),
                                  "tuned": probe(0.6),
                                  "paired": {"n": 5, "diff": 0.4, "diff_low": 0.01, "diff_high": 0.7,
                                             "p_value": 0.25}},
                      "judge": None},
        "general": {"n": 5, "loss": {"base": {"loss": 1.0, "perplexity": 2.7183},
                                     "tuned": {"loss": 1.1, "perplexity": 3.0042},
                                     "delta": 0.1, "delta_low": 0.02, "delta_high": 0.18}},
        "timing": {"total_s": 12.5},
    }
    ev.mkdir(parents=True)
    (ev / "metrics.json").write_text(json.dumps(metrics))
    gens = []
    for i in range(5):
        gens.append({"id": f"id{i}", "prompt": [{"role": "user", "content": f"Held {i}?"}],
                     "reference": "Answer: yes",
                     "base": {"text": "I'm sorry, <b>maybe</b>", "finish_reason": "length", "completion_tokens": 9},
                     "tuned": {"text": f"Answer: yes {i} <script>alert(1)</script>", "finish_reason": "stop",
                               "completion_tokens": 5}})
    _jsonl(ev / "generations.jsonl", gens)
    _jsonl(ev / "judgments.jsonl", [{"index": 0, "id": "id0", "outcome": "win"}])
    _jsonl(ev / "loss_per_example.jsonl", [{"id": f"id{i}", "base_loss": 2.0 + i / 10, "tuned_loss": 1.5 + i / 20,
                                            "tokens": 4} for i in range(5)])
    return run


# Markup and both quote kinds, in every field a user or a model controls.
HOSTILE = "<script>alert(1)</script>\"'"


def make_hostile_run(root: Path) -> Path:
    """The full run of ``make_run`` with HOSTILE inside every user-controlled string."""
    run = make_run(root)
    h = HOSTILE
    funnel = [{"step": f"length{h}", "in": 100, "out": 90, "rejected": 10, "flagged": 0}]
    (run / "curate" / "stats.json").write_text(json.dumps({"records": 90, "funnel": funnel}))
    _jsonl(run / "curate" / "rejected.jsonl",
           [dict(ex(f"short {h}", h), step=f"length{h}", reason=f"too short{h}", value=h)])
    _jsonl(run / "data" / "train.jsonl", [ex(f"What {h} {i}?", f"Answer {h}", task=f"math{h}") for i in range(4)])
    log = [{"step": 0, "loss": 2.0, "learning_rate": 1e-3}, {"step": 10, "loss": 1.0, "eval_loss": 1.5},
           {"step": 10, "event": f"overfit{h}", "message": f"gap{h}"}]
    _jsonl(run / "train" / "log.jsonl", log)
    (run / "train" / "smoke.json").write_text(json.dumps(
        {"passed": True, "checks": [{"name": f"check{h}", "ok": True, "detail": f"detail{h}"}]}))
    m = json.loads((run / "eval" / "metrics.json").read_text())
    m.update(model=f"tuned{h}", base=f"base{h}", status=f"warn{h}", reasons=[f"reason{h}"],
             config={"max_new_tokens": 6, "temperature": h, "probes": [{"name": f"probe{h}"}]},
             models={"base": {"model_source": f"source{h}"}})
    m["probes"] = {f"probe{h}": dict(m["probes"]["apology_preamble"], description=f"describes{h}")}
    m["choice"] = {f"task{h}": m["choice"]["general_knowledge"]}
    m["forgetting"]["tasks"] = {f"task{h}": dict(m["forgetting"]["tasks"]["general_knowledge"],
                                                  metric="acc", status=f"warn{h}")}
    m["judge"].update(backend=f"backend{h}", judge_model=f"judge{h}", verdict=f"verdict{h}")
    m["gates"] = {"status": f"fail{h}", "gates": [{"name": f"gate{h}", "metric": f"metric{h}", "status": f"fail{h}",
                                                   "reason": f"why{h}", "point": 0.1, "low": 0.0, "high": 0.2}]}
    (run / "eval" / "metrics.json").write_text(json.dumps(m))
    _jsonl(run / "eval" / "generations.jsonl", [
        {"id": f"id{h}", "prompt": [{"role": f"user{h}", "content": f"prompt{h}"}], "reference": f"ref{h}",
         "base": {"text": f"base answer{h}", "finish_reason": f"length{h}", "completion_tokens": 3},
         "tuned": {"text": f"tuned answer{h}", "finish_reason": "stop", "completion_tokens": 2}}])
    _jsonl(run / "eval" / "judgments.jsonl", [{"index": 0, "id": f"id{h}", "outcome": f"win{h}"}])
    return run
