"""scripts/demo_learning_curve.py on a tiny random model: one row per checkpoint, both prompt sets."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_learning_curve_measures_every_checkpoint_on_both_sets(tmp_path, tiny_model_dir, monkeypatch):
    out = tmp_path / "curve"
    monkeypatch.setattr(sys, "argv", ["demo_learning_curve.py", "-o", str(out), "--steps", "2", "--every", "1",
                                      "--familiar", "1", "--model", tiny_model_dir])
    runpy.run_path(str(ROOT / "scripts" / "demo_learning_curve.py"), run_name="__main__")
    rows = json.loads((out / "learning_curve.json").read_text())
    assert [r["steps"] for r in rows] == [1, 2]
    familiar = [json.loads(x) for x in (out / "familiar.jsonl").read_text().splitlines()]
    train_questions = {json.loads(x)["messages"][0]["content"]
                       for x in (out / "data" / "train_tools.jsonl").read_text().splitlines()}
    assert len(familiar) == 15 and not {r["messages"][0]["content"] for r in familiar} & train_questions
    for r in rows:
        assert r["test"][1] == 33            # the first 40 test prompts, 33 with a figure to state
        assert 0 < r["familiar"][1] <= 15 and 0 <= r["familiar"][0] <= r["familiar"][1]
        assert r["test_tools"]["answers"] == 40 and 0 <= r["test_tools"]["used"] <= 40
        assert 0 <= r["test_tools"]["errors"] <= r["test_tools"]["calls"]
        assert r["validation_loss"] is not None and r["validation_loss"] > 0    # logged at every checkpoint
