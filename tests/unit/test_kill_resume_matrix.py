"""Generation over HTTP killed with SIGKILL early, mid-run and during the output write, then rerun.

The rerun's outputs must equal an uninterrupted run's, byte for byte, and the server
(which counts every request) must not be asked again for anything but what was in
flight at the kill: every answer that arrived was in the cache before the kill.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from _dying_writes import HELPERS

from sftflow.testing.fake_server import FakeOpenAIServer

CONCURRENCY = 2
TEXTS = [f"Text number {i} says that bonds pay {i} percent." for i in range(12)]

CHILD = r"""
import sys
sys.path.insert(0, sys.argv.pop(2))
if sys.argv[1] == "write":      # die with the output half-written: after two rows of records.jsonl
    from _dying_writes import die_writing
    die_writing("records.jsonl", 2)
sys.argv = ["sftflow", *sys.argv[2:]]
from sftflow.cli import main
main()
"""


def responder(msgs):
    p = msgs[-1]["content"]
    if p.startswith("Below is a response"):
        return "What does text " + p.split("Text number ")[1].split(" ")[0] + " say?"
    return "Score: 5"


def launch(texts, out, url, fault="none"):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    args = ["generate", "backtranslate", str(texts), "-o", str(out), "--backend", "openai", "--model", "m",
            "--base-url", url, "--concurrency", str(CONCURRENCY), "--max-retries", "1", "--quiet"]
    return subprocess.Popen([sys.executable, "-c", CHILD, fault, HELPERS, *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def outputs(out):
    return {n: (out / n).read_bytes() for n in ("records.jsonl", "rejected.jsonl")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    d = tmp_path_factory.mktemp("ref")
    texts = d / "texts.txt"
    texts.write_text("\n\n".join(TEXTS) + "\n")
    with FakeOpenAIServer(responder, latency=0.03) as srv:
        p = launch(texts, d / "out", srv.url)
        assert p.wait(timeout=120) == 0, p.stderr.read().decode()[-2000:]
        asked = len(srv.log)
    return texts, outputs(d / "out"), asked


@pytest.mark.parametrize("when", ["early", "middle", "write"])
def test_generate_killed_then_rerun_matches_and_repeats_only_in_flight(when, reference, tmp_path):
    texts, ref, ref_asked = reference
    out = tmp_path / "out"
    with FakeOpenAIServer(responder, latency=0.03) as srv:
        if when == "write":
            p = launch(texts, out, srv.url, fault="write")
            p.wait(timeout=120)
            assert p.returncode == -signal.SIGKILL
        else:
            p = launch(texts, out, srv.url)
            at = 2 if when == "early" else ref_asked // 2
            deadline = time.time() + 60
            while len(srv.log) < at and p.poll() is None and time.time() < deadline:
                time.sleep(0.005)
            os.kill(p.pid, signal.SIGKILL)
            p.wait()
        first = len(srv.log)
        assert first < ref_asked or when == "write"
        if when == "write":                    # the half-written output never took the name
            assert not (out / "records.jsonl").exists()
        rerun = launch(texts, out, srv.url)
        assert rerun.wait(timeout=120) == 0, rerun.stderr.read().decode()[-2000:]
        total = len(srv.log)
    assert outputs(out) == ref                                   # nothing lost, duplicated or changed
    repeated = total - ref_asked
    assert 0 <= repeated <= (CONCURRENCY if when != "write" else 0), (first, total, ref_asked)
    leftovers = [p.name for p in out.iterdir() if ".tmp-" in p.name or p.name.endswith(".tmp")]
    assert leftovers == []
