"""`sftflow eval` killed with SIGKILL early (base side in flight), mid-run (base saved, tuned in
flight), while a part is written and while metrics.json is written, then rerun: the rerun
reuses every part that was saved, computes only what was in flight, and writes the metrics
and generations an uninterrupted run writes."""

from __future__ import annotations

import json

import _kill_resume as kr
import pytest
from conftest import build_tiny_model

HELD = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                      {"role": "assistant", "content": f"Answer: {2 * i}"}]} for i in range(6)]
CONFIG = "choice: null\nreference: null\ngates: []\nmax_new_tokens: 6\nbatch_size: 3\n"
HOOK = """
import sftflow.evaluate.run as R
kr.counted(R, "evaluate_side", {asked!r}, die_at={die_at})
{extra}
"""


def launch(d, out, name, die_at=None, extra=""):
    asked = d / f"{name}.asked"
    argv = ["eval", "--config", d / "eval.yaml", "--model", d / "tuned", "--base", d / "base",
            "--data", d / "held.jsonl", "-o", out]
    code = kr.run(argv, log=d / f"{name}.log", env={"SFTFLOW_CACHE": str(d / "cache")},
                  hook=HOOK.format(asked=str(asked), die_at=die_at, extra=extra))
    return code, kr.total(asked)


def results(out):
    metrics = json.loads((out / "metrics.json").read_text())
    metrics.pop("timing")                  # seconds differ from run to run; everything else must not
    return metrics, (out / "generations.jsonl").read_bytes()


@pytest.fixture(scope="module")
def reference(smol_tokenizer, tmp_path_factory):
    d = tmp_path_factory.mktemp("eval-ref")
    build_tiny_model(d / "base", smol_tokenizer, seed=0)
    build_tiny_model(d / "tuned", smol_tokenizer, seed=1)
    (d / "held.jsonl").write_text("".join(json.dumps(r) + "\n" for r in HELD))
    (d / "eval.yaml").write_text(CONFIG)
    code, sides = launch(d, d / "out", "ref")
    assert code == 0, kr.log_tail(d / "ref.log")
    assert sides == 2
    return d, results(d / "out")


@pytest.mark.parametrize("when, extra, computed_again", [
    ("early", "", 1), ("middle", "", 1),
    ("write", "kr.die_on_rename('tuned.json')", 1), ("metrics", "kr.die_on_rename('metrics.json')", 0)])
def test_eval_killed_then_rerun_resumes_from_parts(when, extra, computed_again, reference, tmp_path):
    d, ref = reference
    out = tmp_path / "out"
    die_at = {"early": 1, "middle": 2}.get(when)
    code, first = launch(d, out, f"killed-{when}", die_at, extra)
    assert code == -9, kr.log_tail(d / f"killed-{when}.log")
    assert not (out / "metrics.json").exists()
    code, second = launch(d, out, f"rerun-{when}")
    assert code == 0, kr.log_tail(d / f"rerun-{when}.log")
    assert results(out) == ref
    assert first + second - 2 == computed_again, (first, second)   # only the side in flight, once more
    assert [p.name for p in out.rglob(".*tmp-*")] == []
