"""What each section of the page shows, as plain values; the template lays them out.

Numbers stay numbers here (the template's ``num``/``pct`` filters format them) and
text stays raw text: jinja2 escapes every value when it is written into the page,
so nothing in this module builds HTML.
"""

from __future__ import annotations

import json
from typing import Any

from . import plots
from .config import ReportConfig
from .gather import RunData, length_stats, task_counts


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _diff(t: Any, b: Any) -> float | None:
    return t - b if _is_number(t) and _is_number(b) else None


def data_section(d: RunData, cfg: ReportConfig) -> dict[str, Any]:
    stats = d.curate_stats or {}
    funnel = stats.get("funnel") or ((d.curate_manifest or {}).get("counts") or {}).get("steps") or []
    out: dict[str, Any] = {"funnel": funnel, "funnel_rows": [[s.get(k) for k in ("step", "in", "out", "rejected",
                                                                                 "flagged")] for s in funnel],
                           "funnel_plot": plots.funnel(funnel) if funnel else None,
                           "curation_ran": d.curate_manifest is not None or bool(funnel),
                           "rejects": [dict(g, examples=g["examples"][: cfg.max_rejects_shown])
                                       for g in d.rejects_by_reason],
                           "rejects_plot": plots.rejects(d.rejects_by_reason) if d.rejects_by_reason else None,
                           "sets": {}, "lengths_plot": None, "tasks_plot": None}
    if d.datasets:
        out["sets"] = {name: len(rows) for name, rows in d.datasets.items()}
        out["lengths_plot"] = plots.lengths({name: length_stats(rows) for name, rows in d.datasets.items()})
        tc = task_counts(d.datasets.get("train") or next(iter(d.datasets.values())))
        out["tasks_plot"] = plots.tasks(dict(tc)) if tc else None
    return out


def train_section(d: RunData) -> dict[str, Any] | None:
    if not d.train_log:
        return None
    train = [r for r in d.train_log if _is_number(r.get("loss"))]
    ev = [r for r in d.train_log if _is_number(r.get("eval_loss"))]
    summary = {"steps": max((r.get("step", 0) for r in d.train_log), default=0),
               "first_loss": train[0]["loss"] if train else None, "last_loss": train[-1]["loss"] if train else None,
               "best_eval": min(ev, key=lambda r: r["eval_loss"]) if ev else None}
    smoke = None
    if d.smoke:
        smoke = {"verdict": "pass" if d.smoke.get("passed") else "fail", "checks": d.smoke.get("checks", [])}
    return {"log_path": str(d.train_log_path), "plot": plots.loss_curves(d.train_log), "summary": summary,
            "smoke": smoke, "event_rows": [[r.get("step"), r["event"], r.get("message", "")]
                                           for r in d.train_log if r.get("event")]}


def _paired(row: dict[str, Any], paired: Any) -> dict[str, Any]:
    """Use the eval's paired test (prompts both sides answered) for the difference when it has one."""
    if isinstance(paired, dict):
        row.update(diff=paired.get("diff"), diff_low=paired.get("diff_low"), diff_high=paired.get("diff_high"),
                   p_value=paired.get("p_value"))
    return row


def loss_rows(label: str, loss: dict | None) -> list[dict[str, Any]]:
    loss = loss or {}
    rows = []
    for key in ("loss", "perplexity"):
        b, t = (loss.get("base") or {}).get(key), (loss.get("tuned") or {}).get(key)
        interval = (loss.get("delta_low"), loss.get("delta_high")) if key == "loss" else (None, None)
        rows.append({"kind": "value", "metric": f"{label} {key}", "note": "", "base": b, "tuned": t,
                     "diff": _diff(t, b), "diff_low": interval[0], "diff_high": interval[1]})
    return rows


def rate_row(label: str, block: dict) -> dict[str, Any]:
    """A yes/no measure over answers: each side's rate with its interval, and the paired difference."""
    b, t = block.get("base") or None, block.get("tuned") or None
    return _paired({"kind": "rate", "metric": label, "note": block.get("description", ""), "base": b, "tuned": t,
                    "diff": _diff((t or {}).get("rate"), (b or {}).get("rate"))}, block.get("paired"))


def comparison_rows(m: dict) -> list[dict[str, Any]]:
    """One row per base-vs-tuned measure: losses, probes, correctness, multiple-choice."""
    rows = loss_rows("held-out", m.get("loss"))
    rows += [rate_row(f"probe: {name}", p) for name, p in (m.get("probes") or {}).items()]
    reference = m.get("reference") or {}
    for part, label in (("figures", "correct figures"), ("judge", "judged correct")):
        if isinstance(reference.get(part), dict):
            rows.append(rate_row(label, reference[part]))
    general = m.get("general") or {}
    if general:
        rows += loss_rows("general-ability", general.get("loss"))
        rows += [rate_row(f"general probe: {name}", p) for name, p in (general.get("probes") or {}).items()]
    paired_metric = ((m.get("config") or {}).get("choice") or {}).get("metric", "acc")
    for name, c in (m.get("choice") or {}).items():
        for k in ("acc", "acc_norm", "acc_bytes"):
            b, t = (c.get("base") or {}).get(k), (c.get("tuned") or {}).get(k)
            row = {"kind": "share", "metric": f"{name} {k} (n={(c.get('tuned') or {}).get('n')})",
                   "note": "", "base": b, "tuned": t, "diff": _diff(t, b)}
            rows.append(_paired(row, c.get("paired")) if k == paired_metric else row)
    return rows


def eval_section(d: RunData) -> dict[str, Any] | None:
    m = d.metrics
    if not m:
        return None
    fg = m.get("forgetting")
    metric = next(iter(fg["tasks"].values()))["metric"] if fg and fg.get("tasks") else "acc"
    judge = m.get("judge")
    return {"m": m, "status": str(m.get("status", "?")), "rows": comparison_rows(m),
            "probes_plot": plots.probes(m["probes"]) if m.get("probes") else None,
            "choice_plot": plots.choice(m["choice"], metric) if m.get("choice") else None,
            "forgetting": fg, "judge": judge,
            "judge_plot": plots.judge(judge) if judge and judge.get("mode") == "pairwise" else None,
            "loss_plot": plots.loss_scatter(d.loss_rows) if d.loss_rows else None,
            "total_s": (m.get("timing") or {}).get("total_s")}


def generations_section(d: RunData, cfg: ReportConfig) -> dict[str, Any] | None:
    if not d.generations:
        return None
    verdicts = {j.get("id"): j.get("outcome") for j in d.judgments if "outcome" in j}
    rows = []
    for g in d.generations[: cfg.max_generations]:
        prompt = g.get("prompt") or []
        text = ("\n\n".join(f"[{t.get('role')}] {t.get('content')}" for t in prompt)
                if isinstance(prompt, list) else str(prompt))
        rows.append({"id": g.get("id"), "verdict": verdicts.get(g.get("id")), "prompt": text,
                     "reference": g.get("reference"), "base": g.get("base"), "tuned": g.get("tuned")})
    return {"rows": rows, "total": len(d.generations)}


def flatten(cfg: Any, prefix: str = "") -> list[tuple[str, str]]:
    """``{"a": {"b": 1}}`` -> ``[("a.b", "1")]``; lists of values stay one JSON cell."""
    if not isinstance(cfg, dict):
        return [(prefix, cfg if isinstance(cfg, str) else json.dumps(cfg, ensure_ascii=False))]
    out: list[tuple[str, str]] = []
    for k, v in cfg.items():
        out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def config_section(d: RunData) -> dict[str, list[tuple[str, str]]]:
    parts = {"evaluation": flatten((d.metrics or {}).get("config") or {}),
             "training": flatten(d.train_config or {})}
    return {k: v for k, v in parts.items() if v}


def cost_section(d: RunData) -> dict[str, Any] | None:
    """Compute per stage, tokens, API use and (with prices) money, from ``costs.json``."""
    c = d.costs
    if not isinstance(c, dict) or not c.get("stages"):
        return None
    def secs(v: Any) -> Any:
        return f"{v:.1f}" if _is_number(v) else v

    total = c.get("total") or {}
    stages = [[s.get("stage"), s.get("device"), secs(s.get("wall_s")), secs(s.get("cpu_s")), secs(s.get("gpu_s"))]
              for s in c["stages"]]
    stages.append(["total", "", secs(total.get("wall_s")), secs(total.get("cpu_s")), secs(total.get("gpu_s"))])
    api = [[name, u.get("requests"), u.get("prompt_tokens"), u.get("completion_tokens")]
           for name, u in (c.get("api") or {}).items()]
    price = c.get("price") if isinstance(c.get("price"), dict) else None
    lines = [[name, v.get("amount"), v.get("unit_price"), v.get("cost")]
             for name, v in ((price or {}).get("lines") or {}).items()]
    return {"stages": stages, "tokens": flatten(c.get("tokens") or {}), "api": api, "price": price,
            "price_lines": lines}
