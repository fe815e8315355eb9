"""`sftflow score` killed with SIGKILL early, mid-run and during the output write, then rerun:
the scored file equals an uninterrupted run's byte for byte, and the model computes again
only the chunk in flight at the kill (every finished chunk was committed to the cache)."""

from __future__ import annotations

import _kill_resume as kr
import pytest

from sftflow.io import write_examples
from sftflow.schema import Example

CHUNK = 4
HOOK = """
import sftflow.select.scorers as S
kr.counted(S, "example_losses", {asked!r}, size=lambda model, tok, convs, *a, **k: len(convs), die_at={die_at})
{extra}
"""


def launch(tmp, data, out, model, name, die_at=None, extra=""):
    asked = tmp / f"{name}.asked"
    argv = ["score", data, "-o", out, "--model", model, "--scores", "ppl,ifd", "--chunk-size", CHUNK,
            "--batch-size", 2, "--cache", tmp / "scores.sqlite", "--quiet"]
    code = kr.run(argv, log=tmp / f"{name}.log", env={"SFTFLOW_CACHE": str(tmp / "cache")},
                  hook=HOOK.format(asked=str(asked), die_at=die_at, extra=extra))
    return code, kr.total(asked)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("score-ref")
    data = d / "data.jsonl"
    write_examples(data, [Example.single(f"What is {i} times {i}?", f"It is {i * i}" + " indeed" * (i % 5))
                          for i in range(16)])
    code, asked = launch(d, data, d / "scored.jsonl", tiny_model_dir, "ref")
    assert code == 0, kr.log_tail(d / "ref.log")
    return data, (d / "scored.jsonl").read_bytes(), asked


@pytest.mark.parametrize("when", ["early", "middle", "write"])
def test_score_killed_then_rerun_matches_and_computes_only_the_chunk_in_flight(when, reference,
                                                                               tiny_model_dir, tmp_path):
    data, ref, ref_asked = reference
    out = tmp_path / "scored.jsonl"
    die_at = {"early": 1, "middle": 3, "write": None}[when]     # 3: two chunks committed, the third in flight
    extra = "kr.die_on_rename('scored.jsonl')" if when == "write" else ""
    code, first = launch(tmp_path, data, out, tiny_model_dir, "killed", die_at, extra)
    assert code == -9, kr.log_tail(tmp_path / "killed.log")
    assert not out.exists()
    code, second = launch(tmp_path, data, out, tiny_model_dir, "rerun")
    assert code == 0, kr.log_tail(tmp_path / "rerun.log")
    assert out.read_bytes() == ref                            # every record once, the same numbers
    in_flight = CHUNK if when != "write" else 0
    assert first + second - ref_asked == in_flight, (first, second, ref_asked)
    assert [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name] == []
