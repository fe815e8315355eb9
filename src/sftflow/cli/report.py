"""CLI verb ``report``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..report.config import ReportConfig
from .flags import config_flags, with_flags
from .options import out_option, stage_config

REPORT_FLAGS = config_flags(ReportConfig)


@with_flags(REPORT_FLAGS)
def report_cmd(
    run_dir: Path = typer.Argument(..., help="a run folder (or an eval output folder)"),
    out: Optional[Path] = out_option(None, "HTML path; default RUN_DIR/report.html"),
    given: dict | None = None,
):
    """Write one self-contained HTML report for a run and print its path."""
    from ..report.build import build_report
    cfg = stage_config(ReportConfig, None, "report", given or {}, None, "report options")
    typer.echo(str(build_report(run_dir, cfg, out)))
