"""generate on a 2-CPU Ray cluster: backend actors, one concurrency limit for all of them,
the local records, and dead letters and the response cache in the output folder."""

from __future__ import annotations

import json
import re
import threading
import time

import pytest

ray = pytest.importorskip("ray")

from sftflow.generate.config import GenerateConfig  # noqa: E402
from sftflow.io import write_examples  # noqa: E402
from sftflow.pipeline.stages.generate import run_generate  # noqa: E402
from sftflow.schema import Example  # noqa: E402
from sftflow.testing.fake_server import FakeOpenAIServer  # noqa: E402

LIMIT = 3


class CountingResponder:
    """Answers with a rewrite of the request, and counts the requests in flight at the server."""

    def __init__(self):
        self.lock = threading.Lock()
        self.now = self.peak = self.calls = 0

    def __call__(self, msgs):
        with self.lock:
            self.now += 1
            self.calls += 1
            self.peak = max(self.peak, self.now)
        time.sleep(0.05)
        with self.lock:
            self.now -= 1
        found = re.search(r"Explain (record \d+) of the ledger", msgs[-1]["content"])
        return f"Could you explain {found.group(1)} of the ledger to a new clerk?"


def _fail_one(prompt: str, attempt: int):
    return "400" if "record 3 " in prompt else None      # a permanent error: dead-lettered at once


def _config(url, src, engine: str) -> GenerateConfig:
    return GenerateConfig(method="paraphrase", show_progress=False,
                          backend={"kind": "openai", "model": "served", "base_url": url, "concurrency": LIMIT,
                                   "max_retries": 1, "timeout": 10, "api_key_env": "SFTFLOW_TEST_NO_KEY"},
                          rewrite={"input": str(src), "k": 2},
                          validation={"embed_method": "tfidf", "min_cosine": 0.0},
                          engine={"kind": engine, "actors": 2})


def test_ray_generate_writes_the_local_records_under_one_concurrency_limit(cluster, tmp_path):
    src = tmp_path / "src.jsonl"
    write_examples(src, [Example.single(f"Explain record {i} of the ledger to a new clerk", f"Answer {i}.")
                         for i in range(12)])
    with FakeOpenAIServer(CountingResponder(), fault_fn=_fail_one) as server:
        local = run_generate(_config(server.url, src, "local"), tmp_path / "local")
    counting = CountingResponder()
    with FakeOpenAIServer(counting, fault_fn=_fail_one) as server:
        on_ray = run_generate(_config(server.url, src, "ray"), tmp_path / "ray")
        dead = [json.loads(line) for line in (tmp_path / "ray" / "dead_letter.jsonl").read_text().splitlines()]
        seen = len(server.log)
        again = run_generate(_config(server.url, src, "ray"), tmp_path / "ray")
        asked_again = [e["prompt"] for e in server.log[seen:]]
    for name in ("records.jsonl", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert on_ray["records"] == local["records"] and on_ray["records"] > 0
    # Two actors with LIMIT threads each could send 2 x LIMIT at once; the limiter holds them to LIMIT.
    assert 1 < counting.peak <= LIMIT
    # The failed requests were dead-lettered into OUT_DIR by the actors ...
    assert len(dead) == 2 and all("record 3 " in d["request"]["messages"][-1]["content"] for d in dead)
    # ... and the rerun asks only for them: every other answer comes from the cache in OUT_DIR.
    assert asked_again and all("record 3 " in p for p in asked_again)
    assert again["cache_hits"] == on_ray["requests"] - 2
