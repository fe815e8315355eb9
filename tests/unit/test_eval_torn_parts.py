"""An eval whose saved part was cut short by a kill computes that side again instead of crashing."""

import json

import pytest

from sftflow.evaluate import EvalConfig, evaluate

HELD = [{"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                      {"role": "assistant", "content": f"Answer: {2 * i}"}]} for i in range(4)]


def test_a_part_cut_short_is_computed_again(tiny_model_dir, tmp_path, capsys):
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps(r) + "\n" for r in HELD))
    cfg = EvalConfig(max_new_tokens=4, batch_size=4, judge=None, generate=False)
    out = tmp_path / "eval"
    first = evaluate(cfg, model=tiny_model_dir, data=[str(held)], out_dir=out)
    part = out / "parts" / "tuned.json"
    part.write_bytes(part.read_bytes()[: part.stat().st_size // 2])     # killed mid-write
    again = evaluate(cfg, model=tiny_model_dir, data=[str(held)], out_dir=out)
    assert again["loss"]["tuned"]["loss"] == pytest.approx(first["loss"]["tuned"]["loss"])
    cap = capsys.readouterr()
    assert "cut short" in " ".join((cap.out + cap.err).split())
    assert json.loads(part.read_text())["result"]                       # whole again
