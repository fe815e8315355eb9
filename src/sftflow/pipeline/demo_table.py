"""The demo's printed table: base, tuned with tools and tuned without tools, and each gate's verdict."""

from __future__ import annotations

from rich.table import Table


def _pct(v) -> str:
    return "-" if v is None else f"{v:.1%}"


def _num(v) -> str:
    return "-" if v is None else f"{v:.3f}"


def _prob(v) -> str:
    return "-" if v is None else f"{v:.2g}"


def _rate(block: dict | None, side: str):
    return ((block or {}).get(side) or {}).get("rate")


def _interval(block: dict | None) -> str:
    p = (block or {}).get("paired")
    if not p or p.get("n", 0) == 0:
        return "-"
    return f"{p['diff'] * 100:+.1f} pts [{p['diff_low'] * 100:+.1f}, {p['diff_high'] * 100:+.1f}]"


def _loss_interval(block: dict | None) -> str:
    if not block or block.get("delta_low") is None or not (block.get("base") or {}).get("loss"):
        return "-"
    b = block["base"]["loss"]
    return f"{block['delta'] / b:+.1%} [{block['delta_low'] / b:+.1%}, {block['delta_high'] / b:+.1%}]"


def rows(metrics: dict) -> list[tuple[str, str, str, str, str]]:
    """(measure, base, tuned with tools, tuned without tools, tuned - base with its 95% interval)."""
    fig = (metrics.get("reference") or {}).get("figures")
    plain_fig = (metrics.get("without_tools") or {}).get("figures")
    plain_probes = (metrics.get("without_tools") or {}).get("probes") or {}
    probes = metrics.get("probes") or {}
    out = [("states the correct figure", _pct(_rate(fig, "base")), _pct(_rate(fig, "tuned")),
            _pct(_rate(plain_fig, "tuned")), _interval(fig))]
    loss = metrics.get("loss") or {}
    out.append(("test loss (response tokens)", _num((loss.get("base") or {}).get("loss")),
                _num((loss.get("tuned") or {}).get("loss")), "-", _loss_interval(loss)))
    for name, label in (("apology_preamble", "opens with apology/hedge"), ("house_format", "follows house format"),
                        ("hit_token_limit", "ran into token limit"), ("repeated_ngrams", "loops (repeated 4-grams)")):
        p = probes.get(name)
        out.append((label, _pct(_rate(p, "base")), _pct(_rate(p, "tuned")), _pct(_rate(plain_probes.get(name),
                                                                                      "tuned")), _interval(p)))
    o = (metrics.get("openings") or {}).get("apology")
    if o:
        d = o.get("paired") or {}
        span = "-" if d.get("diff_low") is None else f"{d['diff']:+.2g} [{d['diff_low']:+.2g}, {d['diff_high']:+.2g}]"
        out.append(("P(opens with an apology)", _prob((o.get("base") or {}).get("mean")),
                    _prob((o.get("tuned") or {}).get("mean")), "-", span))
    general = metrics.get("general") or {}
    g = general.get("loss")
    if g:
        out.append(("general response loss", _num((g.get("base") or {}).get("loss")),
                    _num((g.get("tuned") or {}).get("loss")), "-", _loss_interval(g)))
    for name, label in (("ended_turn", "general: ended its turn"), ("looping", "general: loops")):
        p = (general.get("probes") or {}).get(name)
        if p:
            out.append((label, _pct(_rate(p, "base")), _pct(_rate(p, "tuned")), "-", _interval(p)))
    for name, c in (metrics.get("choice") or {}).items():
        out.append((f"multiple choice '{name}'", _pct((c.get("base") or {}).get("acc")),
                    _pct((c.get("tuned") or {}).get("acc")), "-", _interval(c)))
    return out


def summary_table(metrics: dict) -> Table:
    t = Table(title="sftflow demo: base vs tuned on the test prompts (nothing here chose the checkpoint)")
    for col, just in (("measure", "left"), ("base", "right"), ("tuned + tools", "right"),
                      ("tuned, no tools", "right"), ("tuned - base [95% CI]", "right")):
        t.add_column(col, justify=just)
    for r in rows(metrics):
        t.add_row(*r)
    gates = (metrics.get("gates") or {}).get("gates") or []
    if gates:
        t.add_section()
        for g in gates:
            colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}.get(g["status"], "white")
            t.add_row(f"gate: {g['name']}", "", f"[{colour}]{g['status']}[/{colour}]", "", "")
    return t
