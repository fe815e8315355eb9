"""The HTTP backend against a real server on 127.0.0.1 that misbehaves on purpose."""

from __future__ import annotations

import json

import pytest

from sftflow.backends import GenParams
from sftflow.testing.fake_server import FakeOpenAIServer
from sftflow.backends.openai_backend import OpenAIBackend, backoff_delay, parse_retry_after

FAST = dict(backoff_base=0.01, backoff_max=0.05, timeout=0.5)


def chat(text):
    return [{"role": "user", "content": text}]


def backend(server, tmp_path, **kw):
    opts = dict(FAST, concurrency=4, max_retries=3, dead_letter_path=tmp_path / "dead.jsonl")
    opts.update(kw)
    return OpenAIBackend("served-model", base_url=server.url, **opts)


@pytest.mark.parametrize("fault", ["429", "500", "503", "reset", "hang", "malformed", "empty", "cut"])
def test_each_transient_fault_is_retried_then_succeeds(fault, tmp_path):
    with FakeOpenAIServer(faults={"p": [fault, fault]}, hang_seconds=1.0) as srv:
        b = backend(srv, tmp_path)
        [c] = b.generate([chat("p")], GenParams())
        assert (c.text, c.finish_reason) == ("echo: p", "stop")
        assert [e["action"] for e in srv.log] == [fault, fault, None]
    assert b.stats["retries"] == 2 and b.stats["failures"] == 0 and b.stats["requests"] == 3
    assert not (tmp_path / "dead.jsonl").exists()


def test_retry_after_is_honoured(tmp_path):
    with FakeOpenAIServer(faults={"p": ["429:0.4", "503:0.3"]}) as srv:
        b = backend(srv, tmp_path)
        [c] = b.generate([chat("p")], GenParams())
        t = [e["t"] for e in srv.log]
    assert c.finish_reason == "stop"
    # our own backoff is at most 0.05 s; the gaps follow the server's Retry-After
    assert t[1] - t[0] >= 0.4 and t[2] - t[1] >= 0.3


def test_retry_cap_dead_letters_and_others_finish(tmp_path):
    faults = {"bad": ["500"] * 10, "forbidden": ["400"]}
    with FakeOpenAIServer(faults=faults) as srv:
        b = backend(srv, tmp_path, max_retries=2)
        out = b.generate([chat("ok1"), chat("bad"), chat("forbidden"), chat("ok2")],
                         GenParams(max_new_tokens=7, seed=3))
        attempts = dict(srv.attempts)
    assert [c.finish_reason for c in out] == ["stop", "error", "error", "stop"]
    assert out[1].error.startswith("HTTP 500") and out[2].error.startswith("HTTP 400")
    assert attempts == {"ok1": 1, "bad": 3, "forbidden": 1, "ok2": 1}   # 400 is never retried
    assert b.stats["retries"] == 2 and b.stats["failures"] == 2
    rows = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert [r["request"]["messages"][0]["content"] for r in rows] == ["bad", "forbidden"] or \
           [r["request"]["messages"][0]["content"] for r in rows] == ["forbidden", "bad"]
    bad = next(r for r in rows if r["request"]["messages"][0]["content"] == "bad")
    assert bad["attempts"] == 3 and bad["request"]["params"]["max_new_tokens"] == 7
    assert bad["request"]["params"]["seed"] == 3


def test_connection_refused_is_dead_lettered(tmp_path):
    srv = FakeOpenAIServer().start()
    url = srv.url
    srv.stop()                                   # nothing listens there any more
    b = OpenAIBackend("m", base_url=url, max_retries=1, dead_letter_path=tmp_path / "d.jsonl", **FAST)
    [c] = b.generate([chat("x")], GenParams())
    assert c.finish_reason == "error" and "ConnectError" in c.error
    assert b.stats["retries"] == 1 and b.stats["failures"] == 1


def test_order_usage_stop_and_length(tmp_path):
    with FakeOpenAIServer(responder=lambda m: "one two three four five END six") as srv:
        b = backend(srv, tmp_path, concurrency=3)
        out = b.generate([chat(f"q{i}") for i in range(10)], GenParams(max_new_tokens=3))
        assert [c.text for c in out] == ["one two three"] * 10
        assert {c.finish_reason for c in out} == {"length"}
        [c] = b.generate([chat("s")], GenParams(stop=["END"]))
        assert (c.text, c.finish_reason, c.completion_tokens) == ("one two three four five ", "stop", 5)
        sent = srv.log[-1]["body"]
        assert sent["stop"] == ["END"] and sent["model"] == "served-model"


def test_api_key_sent_but_never_written(tmp_path, monkeypatch):
    secret = "sk-test-Very-Secret-123"
    monkeypatch.setenv("MY_KEY", secret)
    with FakeOpenAIServer(faults={"bad": ["500"] * 5}) as srv:
        b = backend(srv, tmp_path, api_key_env="MY_KEY", max_retries=1)
        b.generate([chat("ok"), chat("bad")], GenParams())
        assert srv.log[0]["headers"]["Authorization"] == f"Bearer {secret}"
    assert secret not in (tmp_path / "dead.jsonl").read_text()
    assert secret not in repr(b) and secret not in json.dumps(b.describe())
    assert b.describe()["api_key_set"] is True


def test_concurrency_limit_is_respected(tmp_path):
    import threading
    live, peak, lock = [0], [0], threading.Lock()

    def slow(msgs):
        import time
        with lock:
            live[0] += 1
            peak[0] = max(peak[0], live[0])
        time.sleep(0.05)
        with lock:
            live[0] -= 1
        return "ok"
    with FakeOpenAIServer(responder=slow) as srv:
        b = backend(srv, tmp_path, concurrency=3)
        out = b.generate([chat(str(i)) for i in range(12)], GenParams())
    assert len(out) == 12 and peak[0] == 3


def test_backoff_and_retry_after_parsing():
    import random

    import httpx
    rng = random.Random(0)
    for attempt, lo, hi in [(0, 0.5, 1.0), (1, 1.0, 2.0), (3, 4.0, 8.0), (10, 5.0, 10.0)]:
        d = backoff_delay(attempt, 1.0, 10.0, rng)
        assert lo <= d <= hi
    assert parse_retry_after(httpx.Headers({"Retry-After": "7"})) == 7.0
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    assert parse_retry_after(httpx.Headers({})) is None
    past = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(httpx.Headers({"Retry-After": past})) == 0.0


def test_model_required():
    with pytest.raises(ValueError, match="model name"):
        OpenAIBackend(None)
