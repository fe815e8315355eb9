"""The command line answers at once: help and config errors load no torch; failed gates exit non-zero."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from sftflow.cli import app

# Runs in a fresh interpreter: --help of the top level and of every verb, then a config error.
PROBE = r"""
import json, sys
import typer
from sftflow.cli import COMMANDS, app
from sftflow.config import ConfigError

def verbs(table, prefix=()):
    for name, target in table.items():
        if isinstance(target, dict):
            yield from verbs(target, prefix + (name,))
        else:
            yield prefix + (name,)

cmd = typer.main.get_command(app)
helped = []
for args in [()] + list(verbs(COMMANDS)):
    try:
        cmd([*args, "--help"], prog_name="sftflow", standalone_mode=False)
    except SystemExit:
        pass
    helped.append(" ".join(args))
errors = []
for args in (["train", "x.jsonl", "--set", "lora_rank=8"], ["eval", "--model", "m", "--set", "limt=3"],
             ["score", "x.jsonl", "-o", "y.jsonl", "--set", "score.bach_size=2"]):
    try:
        cmd(args, prog_name="sftflow", standalone_mode=False)
    except ConfigError as e:
        errors.append(str(e).splitlines()[0])
print(json.dumps({"helped": helped, "errors": errors,
                  "heavy": sorted(m for m in ("torch", "transformers", "peft", "matplotlib") if m in sys.modules)}))
"""


def test_help_and_config_errors_import_no_torch():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120,
                         env={"HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert "" in res["helped"] and "train" in res["helped"] and "generate paraphrase" in res["helped"]
    assert len(res["errors"]) == 3, res["errors"]
    assert res["heavy"] == [], f"--help or a config error imported {res['heavy']}"


def test_demo_exits_non_zero_when_its_gate_fails(tmp_path, monkeypatch):
    import sftflow.pipeline.demo as demo

    def fake_run_demo(out, **_):
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(json.dumps({"status": status, "reasons": ["forgetting: -9 points"]}))
        return 0

    monkeypatch.setattr(demo, "run_demo", fake_run_demo)
    for status, code in (("fail", 1), ("warn", 0), ("pass", 0)):
        res = CliRunner().invoke(app, ["demo", "-o", str(tmp_path / status)])
        assert res.exit_code == code, (status, res.output)


def test_exit_code_exceptions_are_the_ones_the_stages_raise():
    from sftflow import errors
    from sftflow.evaluate.run import EvalFailed
    from sftflow.train.sft import NonFiniteLoss
    assert EvalFailed is errors.EvalFailed and NonFiniteLoss is errors.NonFiniteLoss
    assert set(errors.RUN_FAILED) == {EvalFailed, NonFiniteLoss}


def test_main_maps_failed_runs_to_exit_1_and_bad_input_to_exit_2(monkeypatch, capsys):
    import pytest

    import sftflow.pipeline.recipe as recipe
    from sftflow.cli import main
    from sftflow.errors import ConfigError, EvalFailed, NonFiniteLoss, RecordError

    monkeypatch.setattr(recipe, "load_recipe", lambda path, overrides: object())
    cases = ((EvalFailed(["forgetting beyond 5 points"]), 1, "failed: evaluation failed"),
             (NonFiniteLoss("loss is nan"), 1, "failed: loss is nan"),
             (ConfigError("r.yaml: unknown key"), 2, "error: r.yaml: unknown key"),
             (RecordError("missing 'messages'", path="d.jsonl", line=3), 2, "error: d.jsonl: line 3"))
    for exc, code, message in cases:
        def boom(r, output, exc=exc):
            raise exc
        monkeypatch.setattr(recipe, "run_recipe", boom)
        monkeypatch.setattr(sys, "argv", ["sftflow", "run", "r.yaml"])
        with pytest.raises(SystemExit) as e:
            main()
        err = capsys.readouterr().err
        assert e.value.code == code and message in err and "Traceback" not in err, (exc, err)
