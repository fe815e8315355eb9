"""``build_report(run_dir) -> Path``: one self-contained HTML page for a run.

Self-contained means a person can mail the file or open it offline: plots are
inline base64 PNGs, styles and the small table filter script are inline, nothing is
fetched. The page is a jinja2 template (``templates/report.html.jinja``) rendered
with autoescape on, so everything a user typed or a model wrote is escaped without
a call at each place it appears; ``sections.py`` gathers the values it shows.
"""

from __future__ import annotations

import datetime as _dt
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2

from . import sections
from .config import ReportConfig
from .gather import RunData, gather

STATUS_CLASSES = ("pass", "warn", "fail", "inconclusive")


def _missing(v: Any) -> bool:
    return v is None or isinstance(v, jinja2.Undefined) or (isinstance(v, float) and not math.isfinite(v))


def num(v: Any, digits: int = 4) -> str:
    if _missing(v):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def pct(v: Any) -> str:
    return "–" if _missing(v) or isinstance(v, str) else f"{100 * v:.1f}%"


def points(share_diff: Any) -> str:
    """A difference of two shares, in percentage points."""
    return "–" if _missing(share_diff) or isinstance(share_diff, str) else f"{100 * share_diff:+.1f} pts"


def signed(pts: Any) -> str:
    """A difference already in points."""
    return "–" if _missing(pts) or isinstance(pts, str) else f"{pts:+.1f} pts"


def interval(s: dict | None) -> str:
    """A rate with its 95% interval: ``40.0% [20.0%, 60.0%] n=5``."""
    if not s:
        return "–"
    return f"{pct(s.get('rate'))} [{pct(s.get('low'))}, {pct(s.get('high'))}] n={num(s.get('n'))}"


def difference(row: dict) -> str:
    """A base-vs-tuned difference, with its interval and paired p-value when the eval has them.

    Losses are plain numbers; rates and shares differ in percentage points.
    """
    fmt = num if row["kind"] == "value" else points
    text = fmt(row.get("diff"))
    low, high = row.get("diff_low"), row.get("diff_high")
    if not _missing(low) and not _missing(high):
        bare = num if row["kind"] == "value" else (lambda v: f"{100 * v:+.1f}")
        text += f" [{bare(low)}, {bare(high)}]"
    if not _missing(row.get("p_value")):
        text += f" p={row['p_value']:.3g}"
    return text


def status_class(status: Any) -> str:
    """Only a known status becomes a CSS class; anything else is shown, not styled."""
    return str(status) if status in STATUS_CLASSES else ""


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("sftflow.report", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
                             finalize=lambda v: "" if v is None else v)   # a missing field shows as blank
    env.filters.update(num=num, pct=pct, points=points, signed=signed, interval=interval,
                       difference=difference, status_class=status_class)
    return env


def render(d: RunData, cfg: ReportConfig) -> str:
    context = {
        "title": cfg.title or f"sftflow report: {d.run_dir.resolve().name}",
        "run_dir": str(d.run_dir),
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "sources": d.model_sources,
        "missing": d.missing,
        "data": sections.data_section(d, cfg),
        "train": sections.train_section(d),
        "ev": sections.eval_section(d),
        "gens": sections.generations_section(d, cfg),
        "cost": sections.cost_section(d),
        "config": sections.config_section(d),
    }
    return environment().get_template("report.html.jinja").render(context)


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
