"""Recipe stage ``report``: write ``<run>/report.html`` from whatever the run produced."""

from __future__ import annotations

from rich.console import Console

from ..recipe import RunState
from ...report.build import build_report
from ...report.config import ReportConfig


def run_stage(cfg: ReportConfig, state: RunState) -> None:
    path = build_report(state.out_dir, cfg)
    state.artifacts["report"] = str(path)
    Console(stderr=True).print(f"[sftflow] report: {path}")
    failure = state.artifacts.pop("eval_failure", None)
    if failure is not None:
        raise failure   # the eval gate failed; the report is written, the run still fails
