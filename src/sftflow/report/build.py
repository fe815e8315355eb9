"""``build_report(run_dir) -> Path``: one self-contained HTML page for a run.

Self-contained means a person can mail the file or open it offline: plots are
inline base64 PNGs, styles and the small table filter script are inline, nothing is
fetched. Everything a user typed or a model wrote is HTML-escaped.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from pathlib import Path
from typing import Any

from . import plots
from .config import ReportConfig
from .gather import RunData, gather, length_stats, read_json, read_jsonl, task_counts

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0 auto;max-width:1200px;
     padding:1em 2em;color:#222;line-height:1.4}
h1{margin-bottom:0}h2{border-bottom:2px solid #1f77b4;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0 1em;font-size:.9em}
th,td{border:1px solid #ddd;padding:.3em .6em;vertical-align:top;text-align:left}
th{background:#f4f6f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#2ca02c;font-weight:bold}.warn{color:#d68a00;font-weight:bold}.fail{color:#d62728;font-weight:bold}
.muted{color:#777}img.plot{display:block;max-width:100%;margin:.5em 0}
#gens td{max-width:330px;white-space:pre-wrap;word-break:break-word;font-size:.85em}
#gens td.meta{white-space:nowrap}input#filter{width:40%;padding:.3em;margin:.5em 0}
details summary{cursor:pointer}
"""

# Filters the generations table as the user types; plain DOM, no library.
JS = """
document.addEventListener('DOMContentLoaded', function () {
  var box = document.getElementById('filter');
  var count = document.getElementById('shown');
  if (!box) { return; }
  var rows = Array.prototype.slice.call(document.querySelectorAll('#gens tbody tr'));
  box.addEventListener('input', function () {
    var q = box.value.toLowerCase(), n = 0;
    rows.forEach(function (r) {
      var hit = r.textContent.toLowerCase().indexOf(q) !== -1;
      r.style.display = hit ? '' : 'none';
      if (hit) { n += 1; }
    });
    count.textContent = String(n);
  });
});
"""


def esc(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def num(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return esc(v)


def pct(v: Any) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "–"
    return f"{100 * v:.1f}%"


def img(b64: str | None, alt: str) -> str:
    if not b64:
        return f'<p class="muted">({esc(alt)}: nothing to plot)</p>'
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/png;base64,{b64}">'


def table(header: list[str], rows: list[list[str]], cls: str = "") -> str:
    """Cells are already-escaped HTML."""
    h = "".join(f"<th>{c}</th>" for c in header)
    body = "".join("<tr>" + "".join(rows_cell(c) for c in r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table>'


def rows_cell(c: str) -> str:
    return f'<td class="num">{c}</td>' if c[:1].isdigit() or c[:1] in "-+–" else f"<td>{c}</td>"


# --------------------------------------------------------------------------- sections

def section_data(d: RunData, cfg: ReportConfig) -> str:
    parts = ["<h2>Data</h2>"]
    stats = d.curate_stats or {}
    funnel = stats.get("funnel") or ((d.curate_manifest or {}).get("counts") or {}).get("steps") or []
    if funnel:
        parts.append(img(plots.funnel(funnel), "curation funnel"))
        parts.append(table(["step", "in", "out", "rejected", "flagged"],
                           [[esc(s.get("step")), num(s.get("in")), num(s.get("out")), num(s.get("rejected")),
                             num(s.get("flagged"))] for s in funnel]))
    elif d.curate_manifest is None:
        parts.append('<p class="muted">Curation did not run for this run.</p>')
    if d.rejects_by_reason:
        parts.append("<h3>Rejects by reason</h3>")
        parts.append(img(plots.rejects(d.rejects_by_reason), "rejects by reason"))
        rows = []
        for g in d.rejects_by_reason:
            ex = "".join(f"<li>{esc(e['prompt'])} <span class='muted'>({esc(e['reason'])})</span></li>"
                         for e in g["examples"][: cfg.max_rejects_shown])
            rows.append([esc(g["step"]), esc(g["reason"]), num(g["count"]),
                         f"<details><summary>examples</summary><ul>{ex}</ul></details>" if ex else ""])
        parts.append(table(["step", "reason", "count", ""], rows))
    if d.datasets:
        dist = {name: length_stats(rows) for name, rows in d.datasets.items()}
        parts.append("<h3>Lengths</h3>")
        parts.append(img(plots.lengths(dist), "length distributions"))
        counts = {n: len(r) for n, r in d.datasets.items()}
        parts.append(table(["set", "examples"], [[esc(k), num(v)] for k, v in counts.items()]))
        train_rows = d.datasets.get("train") or next(iter(d.datasets.values()))
        tc = task_counts(train_rows)
        if tc:
            parts.append("<h3>Tasks</h3>")
            parts.append(img(plots.tasks(dict(tc)), "task distribution"))
    return "\n".join(parts)


def read_json_first(paths) -> dict | None:
    for p in paths:
        if p.exists():
            return read_json(p)
    return None


def section_train(d: RunData) -> str:
    parts = ["<h2>Training</h2>"]
    if not d.train_log:
        return parts[0] + '<p class="muted">No training log found.</p>'
    parts.append(f'<p class="muted">from {esc(d.train_log_path)}</p>')
    parts.append(img(plots.loss_curves(d.train_log), "loss curves"))
    train = [r for r in d.train_log if isinstance(r.get("loss"), (int, float))]
    ev = [r for r in d.train_log if isinstance(r.get("eval_loss"), (int, float))]
    rows = [["steps logged", num(max((r.get("step", 0) for r in d.train_log), default=0))]]
    if train:
        rows.append(["first / last train loss", f"{num(train[0]['loss'])} / {num(train[-1]['loss'])}"])
    if ev:
        best = min(ev, key=lambda r: r["eval_loss"])
        rows.append(["best eval loss (step)", f"{num(best['eval_loss'])} ({num(best.get('step'))})"])
    parts.append(table(["", ""], rows))
    smoke = read_json_first([d.run_dir / "train" / "smoke.json", d.run_dir / "smoke.json"])
    if smoke:
        verdict = "pass" if smoke.get("passed") else "fail"
        parts.append(f"<h3>Smoke check <span class='{verdict}'>{verdict}</span></h3>")
        parts.append(table(["check", "result", "detail"],
                           [[esc(c.get("name")), f"<span class='{'pass' if c.get('ok') else 'fail'}'>"
                             f"{'ok' if c.get('ok') else 'FAIL'}</span>", esc(c.get("detail"))]
                            for c in smoke.get("checks", [])]))
    events = [r for r in d.train_log if r.get("event")]
    if events:
        parts.append("<h3>Warnings and events</h3>")
        parts.append(table(["step", "event", "message"],
                           [[num(r.get("step")), esc(r["event"]), esc(r.get("message", ""))] for r in events]))
    return "\n".join(parts)


def _interval(s: dict | None) -> str:
    if not s:
        return "–"
    return f"{pct(s.get('rate'))} [{pct(s.get('low'))}, {pct(s.get('high'))}] n={num(s.get('n'))}"


def section_eval(d: RunData) -> str:
    m = d.metrics
    if not m:
        return '<h2>Evaluation</h2><p class="muted">No evaluation found.</p>'
    status = m.get("status", "?")
    parts = [f"<h2>Evaluation <span class='{esc(status)}'>{esc(status)}</span></h2>",
             f"<p>tuned: <code>{esc(m.get('model'))}</code> &nbsp; base: <code>{esc(m.get('base'))}</code>"
             f" &nbsp; held-out examples: {num(m.get('n_examples'))}</p>"]
    if m.get("reasons"):
        parts.append("<ul>" + "".join(f"<li class='{esc(status)}'>{esc(r)}</li>" for r in m["reasons"]) + "</ul>")
    rows = []
    loss = m.get("loss") or {}
    for key in ("loss", "perplexity"):
        b, t = (loss.get("base") or {}).get(key), (loss.get("tuned") or {}).get(key)
        delta = (t - b) if isinstance(b, (int, float)) and isinstance(t, (int, float)) else None
        cell = num(delta)
        if key == "loss" and loss.get("delta_low") is not None:
            cell += f" [{num(loss['delta_low'])}, {num(loss['delta_high'])}]"
        rows.append([f"held-out {key}", num(b), num(t), cell])
    for name, p in (m.get("probes") or {}).items():
        b, t = p.get("base"), p.get("tuned")
        delta = (t["rate"] - b["rate"]) if b and t and b.get("rate") is not None and t.get("rate") is not None else None
        rows.append([f"probe: {esc(name)} <span class='muted'>{esc(p.get('description', ''))}</span>",
                     _interval(b), _interval(t), pct(delta) if delta is not None else "–"])
    for name, c in (m.get("choice") or {}).items():
        for k in ("acc", "acc_norm", "acc_bytes"):
            b, t = (c.get("base") or {}).get(k), (c.get("tuned") or {}).get(k)
            delta = (t - b) if b is not None and t is not None else None
            rows.append([f"{esc(name)} {k} (n={num((c.get('tuned') or {}).get('n'))})", pct(b), pct(t),
                         f"{100 * delta:+.1f} pts" if delta is not None else "–"])
    parts.append("<h3>Base vs tuned</h3>")
    parts.append(table(["metric", "base", "tuned", "difference"], rows))
    if m.get("probes"):
        parts.append(img(plots.probes(m["probes"]), "behaviour probes"))
    fg = m.get("forgetting")
    if m.get("choice"):
        metric = (fg or {}).get("tasks", {}) and next(iter(fg["tasks"].values()))["metric"] or "acc"
        parts.append("<h3>Forgetting</h3>")
        parts.append(img(plots.choice(m["choice"], metric), "multiple-choice accuracy"))
        if fg:
            parts.append(table(["task", "metric", "base", "tuned", "change", "status"],
                               [[esc(n), esc(t["metric"]), pct(t["base"]), pct(t["tuned"]),
                                 f"{t['delta_points']:+.1f} pts", f"<span class='{t['status']}'>{t['status']}</span>"]
                                for n, t in fg["tasks"].items()]))
            parts.append(f"<p class='muted'>warn below -{num(fg['warn_drop'], 1)} points, "
                         f"fail below -{num(fg['fail_drop'], 1)} points.</p>")
    j = m.get("judge")
    if j:
        parts.append("<h3>Judge</h3>")
        parts.append(f"<p class='muted'>judge: {esc(j.get('backend'))} {esc(j.get('judge_model'))}"
                     f"{' (verdict by ' + esc(j['verdict']) + ')' if j.get('verdict') else ''}</p>")
        if j.get("mode") == "pairwise":
            parts.append(img(plots.judge(j), "judge outcomes"))
            parts.append(table(["outcome (tuned vs base)", "rate", "95% bootstrap interval"],
                               [[lab, pct(j.get(lab)), f"[{pct(j.get(lab + '_low'))}, {pct(j.get(lab + '_high'))}]"]
                                for lab in ("win", "tie", "loss")]))
            parts.append(f"<p>{num(j.get('n'))} pairs judged in both orders; "
                         f"<b>{num(j.get('unparsed'))}</b> unparsed verdict(s) (not counted above).</p>")
        else:
            parts.append(table(["side", "mean grade (1-10)", "95% interval", "n", "unparsed"],
                               [[s, num(j[s]["mean"], 2), f"[{num(j[s]['low'], 2)}, {num(j[s]['high'], 2)}]",
                                 num(j[s]["n"]), num(j[s]["unparsed"])]
                                for s in ("base", "tuned") if s in j]))
    loss_rows = read_jsonl(Path(d.run_dir / "eval" / "loss_per_example.jsonl")) or \
        read_jsonl(Path(d.run_dir / "loss_per_example.jsonl"))
    if loss_rows:
        parts.append(img(plots.loss_scatter(loss_rows), "per-example loss"))
    timing = m.get("timing") or {}
    if timing:
        parts.append(f"<p class='muted'>eval wall time: {num(timing.get('total_s'), 1)} s</p>")
    return "\n".join(parts)


def _answer_cell(a: dict | None) -> str:
    if not a:
        return "–"
    reason = a.get("finish_reason", "")
    tag = f"<div class='muted'>[{esc(reason)}, {num(a.get('completion_tokens'))} tokens]</div>"
    return esc(a.get("text", "")) + tag


def section_generations(d: RunData, cfg: ReportConfig) -> str:
    if not d.generations:
        return ""
    rows = d.generations[: cfg.max_generations]
    verdicts = {j.get("id"): j.get("outcome") for j in d.judgments if "outcome" in j}
    body = []
    for i, g in enumerate(rows):
        prompt = g.get("prompt") or []
        ptxt = "\n\n".join(f"[{m.get('role')}] {m.get('content')}" for m in prompt) if isinstance(prompt, list) else prompt
        cells = [f"<td class='meta'>{i + 1}<br><span class='muted'>{esc(g.get('id'))}</span>"
                 + (f"<br>judge: <b>{esc(verdicts[g.get('id')])}</b>" if g.get("id") in verdicts else "")
                 + "</td>",
                 f"<td>{esc(ptxt)}</td>", f"<td>{esc(g.get('reference'))}</td>",
                 f"<td>{_answer_cell(g.get('base'))}</td>", f"<td>{_answer_cell(g.get('tuned'))}</td>"]
        body.append("<tr>" + "".join(cells) + "</tr>")
    more = (f" (first {len(rows)} of {len(d.generations)})" if len(d.generations) > len(rows) else "")
    return (f"<h2>Generations{more}</h2>"
            f"<input id='filter' type='search' placeholder='filter rows…' aria-label='filter rows'> "
            f"<span class='muted'><span id='shown'>{len(rows)}</span> shown</span>"
            "<table id='gens'><thead><tr><th>#</th><th>prompt</th><th>reference</th><th>base</th>"
            "<th>tuned</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>")


def render(d: RunData, cfg: ReportConfig) -> str:
    title = cfg.title or f"sftflow report: {d.run_dir.resolve().name}"
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    missing = ("<p class='muted'>Not in this run: " + esc("; ".join(d.missing)) + "</p>") if d.missing else ""
    body = "\n".join([section_data(d, cfg), section_train(d), section_eval(d), section_generations(d, cfg)])
    return (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f"<title>{esc(title)}</title><link rel='icon' href='data:,'><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class='muted'>{esc(d.run_dir)} · generated {now}</p>{missing}"
            f"{body}<script>{JS}</script></body></html>\n")


def build_report(run_dir: str | Path, cfg: ReportConfig | None = None, out: str | Path | None = None) -> Path:
    """Write ``<run_dir>/report.html`` (or ``out``) and return its path."""
    cfg = cfg or ReportConfig()
    d = gather(run_dir)
    path = Path(out) if out else Path(run_dir) / cfg.filename
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(render(d, cfg), encoding="utf-8")
    tmp.replace(path)
    return path
