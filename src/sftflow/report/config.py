"""The ``report`` section of a recipe."""

from __future__ import annotations

from pydantic import Field

from ..config import StrictModel


class ReportConfig(StrictModel):
    title: str | None = Field(None, description="page title; default: the run folder's name")
    filename: str = "report.html"
    max_generations: int = Field(500, gt=0, description="rows in the side-by-side table")
    max_rejects_shown: int = Field(20, ge=0, description="example rejected records per reason")
