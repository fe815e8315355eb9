"""`sftflow demo` hands its options to the demo and turns a failed gate into exit 1."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from sftflow.cli import app


@pytest.fixture
def fake_demo(monkeypatch):
    calls = []

    def run_demo(out, **kw):
        calls.append(kw)
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"status": "pass"}))
        return 0

    monkeypatch.setattr("sftflow.pipeline.demo.run_demo", run_demo)
    return calls


def test_tools_only_skips_the_second_arm(tmp_path, fake_demo):
    r = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "a"), "--tools-only", "--max-steps", "3"])
    assert r.exit_code == 0, r.output
    assert fake_demo[-1]["without_tools_arm"] is False and fake_demo[-1]["max_steps"] == 3
    r = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "b")])
    assert fake_demo[-1]["without_tools_arm"] is True


def test_a_failed_gate_exits_one(tmp_path, monkeypatch):
    def run_demo(out, **kw):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"status": "fail"}))
        return 0

    monkeypatch.setattr("sftflow.pipeline.demo.run_demo", run_demo)
    r = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / "c"), "--no-report"])
    assert r.exit_code == 1
