"""One self-contained HTML page per run: data, training, evaluation, generations."""

from .config import ReportConfig

__all__ = ["ReportConfig", "build_report"]


def __getattr__(name: str):
    # build_report pulls in matplotlib and jinja2; load them when the report is built, so
    # reading ReportConfig (the CLI's --help does) stays cheap.
    if name == "build_report":
        from .build import build_report
        return build_report
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
