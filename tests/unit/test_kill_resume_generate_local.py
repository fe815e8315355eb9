"""Generation with the local transformers backend killed with SIGKILL early, mid-run and during
the output write, then rerun: outputs equal an uninterrupted run's, byte for byte, and the
model is asked again only for the batch in flight at the kill (every finished answer was
in the response cache before the kill).

Sampling is on (backtranslation's default temperature): a rerun that samples an answer
with other random numbers than the uninterrupted run would produce other records.
"""

from __future__ import annotations

import _kill_resume as kr
import pytest

BATCH = 2
TEXTS = [f"Text number {i} says that bonds pay {i} percent." for i in range(8)]
# Count the rows of every batch the model generates; "die" is filled in per kill point.
HOOK = """
import transformers
kr.counted(transformers.GenerationMixin, "generate", {asked!r}, size=lambda self, **k: len(k["input_ids"]),
           die_at={die_at})
{extra}
"""


def command(texts, out, model):
    return ["generate", "backtranslate", texts, "-o", out, "--backend", "transformers", "--model", model,
            "--batch-size", BATCH, "--max-new-tokens", 8, "--quiet"]


def outputs(out):
    return {n: (out / n).read_bytes() for n in ("records.jsonl", "rejected.jsonl")}


def launch(tmp, texts, out, model, name, die_at=None, extra=""):
    asked = tmp / f"{name}.asked"
    code = kr.run(command(texts, out, model), log=tmp / f"{name}.log",
                  hook=HOOK.format(asked=str(asked), die_at=die_at, extra=extra))
    return code, kr.total(asked)


@pytest.fixture(scope="module")
def reference(tiny_model_dir, tmp_path_factory):
    d = tmp_path_factory.mktemp("gen-ref")
    texts = d / "texts.txt"
    texts.write_text("\n\n".join(TEXTS) + "\n")
    code, asked = launch(d, texts, d / "out", tiny_model_dir, "ref")
    assert code == 0, kr.log_tail(d / "ref.log")
    return texts, outputs(d / "out"), asked


@pytest.mark.parametrize("when", ["early", "middle", "write"])
def test_local_generate_killed_then_rerun_matches_and_repeats_only_in_flight(when, reference, tiny_model_dir,
                                                                             tmp_path):
    texts, ref, ref_asked = reference
    out = tmp_path / "out"
    die_at = {"early": 1, "middle": ref_asked // BATCH // 4 + 1, "write": None}[when]
    extra = "kr.die_on_rename('records.jsonl')" if when == "write" else ""
    code, first = launch(tmp_path, texts, out, tiny_model_dir, "killed", die_at, extra)
    assert code == -9, kr.log_tail(tmp_path / "killed.log")
    assert not (out / "records.jsonl").exists()          # really interrupted before the output
    code, second = launch(tmp_path, texts, out, tiny_model_dir, "rerun")
    assert code == 0, kr.log_tail(tmp_path / "rerun.log")
    assert outputs(out) == ref                            # nothing lost, duplicated or changed
    in_flight = BATCH if when != "write" else 0
    assert first + second - ref_asked == in_flight, (first, second, ref_asked)
    assert [p.name for p in out.iterdir() if ".tmp-" in p.name] == []
