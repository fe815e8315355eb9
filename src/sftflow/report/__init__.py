"""One self-contained HTML page per run: data, training, evaluation, generations."""

from .build import build_report
from .config import ReportConfig

__all__ = ["ReportConfig", "build_report"]
