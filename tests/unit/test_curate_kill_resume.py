"""``sftflow curate`` killed with SIGKILL at each stage of a streaming run, then rerun.

Kills land at fixed points (patched into the child, so the test does not race a
clock): during pass 1, right after semantic dedup's embeddings were computed and
cached, halfway through pass 2's rejection parts, and halfway through writing
kept.jsonl. A killed run must leave no finished-looking output behind, and the rerun's
kept.jsonl, rejected.jsonl and manifest counts must equal an uninterrupted run's, byte
for byte.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from _dying_writes import HELPERS

CHILD = r"""
import os, signal, sys
fault = sys.argv[1]
sys.path.insert(0, sys.argv.pop(2))
import sftflow.curate.streaming as S
S.BATCH = 5                                  # several batches per pass
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
calls = {"n": 0}
def after(n, real):
    def wrapped(*a, **k):
        out = real(*a, **k)
        calls["n"] += 1
        if calls["n"] == n:
            die()
        return out
    return wrapped
if fault == "scan":
    import sftflow.curate.stream_scan as SC
    SC.ScanState.scan = after(3, SC.ScanState.scan)
elif fault == "embed":
    import sftflow.curate.dedup as D
    D.SemanticDedup.embed = after(1, D.SemanticDedup.embed)
elif fault == "parts":
    import sftflow.curate.stream_write as W
    W.RejectParts.add = after(4, W.RejectParts.add)
elif fault == "write":
    from _dying_writes import die_writing
    die_writing("kept.jsonl", 3)
sys.argv = ["sftflow", *sys.argv[2:]]
from sftflow.cli import main
main()
"""

RECIPE = """\
steps: [empty, length, repetition, truncation, exact_dedup, near_dedup, semantic_dedup]
stats: false
length: {min_instruction: 2, min_response: 3}
near_dedup: {threshold: 0.5}
semantic_dedup: {method: tfidf, threshold: 0.65}
"""

TOPICS = ("rivers", "bridges", "coffee", "planets", "gardens", "castles", "oceans", "markets", "forests",
          "engines", "letters", "seasons")


def rows() -> list[dict]:
    out = []
    for i, t in enumerate(TOPICS * 2):
        out.append({"instruction": f"Explain in two sentences why {t} matter to people in town number {i}.",
                    "output": f"{t.capitalize()} matter because people meet near {t} and talk about them often."})
    out.append(dict(out[2]))                                                        # exact duplicate
    out.append({**out[3], "instruction": out[3]["instruction"].replace("two", "2")})  # near duplicate
    w = out[4]["instruction"].split()
    out.append({**out[4], "instruction": " ".join(w[:3] + ["truly"] + w[3:7] + ["really"] + w[7:])})
    out.append({"instruction": "Say something", "output": "ok"})
    out.append({"instruction": "Repeat the word spam forty times", "output": "spam " * 40})
    return out


def launch(src, recipe, out, fault="none"):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = ["curate", str(src), "-o", str(out), "--recipe", str(recipe), "--quiet"]
    return subprocess.run([sys.executable, "-c", CHILD, fault, HELPERS, *args], env=env, capture_output=True,
                          text=True, timeout=900)


def outputs(out):
    got = {n: (out / n).read_bytes() for n in ("kept.jsonl", "rejected.jsonl")}
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    for s in counts["steps"]:
        s.pop("seconds")
    got["counts"] = counts
    return got


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    src, recipe = d / "in.jsonl", d / "curate.yaml"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows()))
    recipe.write_text(RECIPE)
    p = launch(src, recipe, d / "out")
    assert p.returncode == 0, p.stderr[-2000:]
    ref = outputs(d / "out")
    steps = {json.loads(x)["step"] for x in ref["rejected.jsonl"].decode().splitlines()}
    assert {"empty", "repetition", "exact_dedup", "near_dedup", "semantic_dedup"} <= steps
    return src, recipe, ref


@pytest.mark.parametrize("fault", ["scan", "embed", "parts", "write"])
def test_killed_curate_reruns_to_the_same_outputs(tmp_path, reference, fault):
    src, recipe, ref = reference
    out = tmp_path / "out"
    p = launch(src, recipe, out, fault)
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])
    assert not (out / "manifest.json").exists() and not (out / "rejected.jsonl").exists()
    if fault == "embed":
        assert any((out / "cache").iterdir())          # the embeddings outlived the kill
    p = launch(src, recipe, out)
    assert p.returncode == 0, p.stderr[-2000:]
    assert outputs(out) == ref
    assert not (out / ".curate-parts").exists()
    assert not [f for f in out.iterdir() if f.name.startswith(".kept.jsonl")]   # no stale temporaries
