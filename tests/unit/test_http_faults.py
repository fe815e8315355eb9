"""Replies that are 200 but wrong, servers that trickle, Retry-After: 0 and the 5xx class."""

from __future__ import annotations

import json
import time

import pytest

from sftflow.backends import GenParams
from sftflow.backends.openai_backend import OpenAIBackend
from sftflow.testing.fake_server import FakeOpenAIServer

FAST = dict(backoff_base=0.01, backoff_max=0.05, timeout=0.5)
SHAPES = ["choices_object", "choices_null", "message_string", "tokens_nan", "logprob_null", "corrupt"]


def chat(text):
    return [{"role": "user", "content": text}]


def backend(server, tmp_path, **kw):
    opts = dict(FAST, concurrency=2, max_retries=2, dead_letter_path=tmp_path / "dead.jsonl")
    opts.update(kw)
    return OpenAIBackend("served-model", base_url=server.url, **opts)


@pytest.mark.parametrize("fault", SHAPES)
def test_wrong_shape_is_retried_then_succeeds(fault, tmp_path):
    with FakeOpenAIServer(faults={"p": [fault]}) as srv:
        [c] = backend(srv, tmp_path).generate([chat("p")], GenParams(logprobs=fault == "logprob_null"))
        assert [e["action"] for e in srv.log] == [fault, None]
    assert (c.text, c.finish_reason) == ("echo: p", "stop")


@pytest.mark.parametrize("fault", SHAPES)
def test_wrong_shape_for_good_is_dead_lettered_and_the_batch_finishes(fault, tmp_path):
    with FakeOpenAIServer(faults={"bad": [fault] * 10}) as srv:
        b = backend(srv, tmp_path)
        out = b.generate([chat("a"), chat("bad"), chat("b")], GenParams())
        assert srv.attempts["bad"] == 3                     # one try + max_retries
    assert [c.finish_reason for c in out] == ["stop", "error", "stop"]
    assert out[1].error.startswith("malformed reply")
    [row] = [json.loads(x) for x in (tmp_path / "dead.jsonl").read_text().splitlines()]
    assert row["request"]["messages"] == chat("bad") and row["attempts"] == 3


def test_a_trickling_server_cannot_hold_a_slot_past_the_deadline(tmp_path):
    # one byte every 0.05 s never trips the 0.5 s read timeout; the deadline ends the attempt
    with FakeOpenAIServer(faults={"slow": ["trickle"] * 5}, hang_seconds=3.0) as srv:
        b = backend(srv, tmp_path, max_retries=1, deadline=0.4)
        t0 = time.monotonic()
        out = b.generate([chat("slow"), chat("fast")], GenParams())
        took = time.monotonic() - t0
    assert [c.finish_reason for c in out] == ["error", "stop"]
    assert out[0].error.startswith("deadline")
    assert took < 2.0                                       # 2 attempts x 0.4 s, not 2 x 3 s


def test_retry_after_zero_is_not_a_tight_loop(tmp_path):
    with FakeOpenAIServer(faults={"p": ["429:0"] * 3}) as srv:
        b = backend(srv, tmp_path, max_retries=3, backoff_base=0.2, backoff_max=1.0)
        [c] = b.generate([chat("p")], GenParams())
        t = [e["t"] for e in srv.log]
    assert c.finish_reason == "stop"
    gaps = [b - a for a, b in zip(t, t[1:])]
    # our own backoff's fixed half is the floor: 0.1, 0.2, 0.4 s
    assert all(g >= 0.09 * 2 ** i for i, g in enumerate(gaps)), gaps


@pytest.mark.parametrize("code", ["502", "520", "529", "599"])
def test_every_5xx_is_retried(code, tmp_path):
    with FakeOpenAIServer(faults={"p": [code]}) as srv:
        [c] = backend(srv, tmp_path).generate([chat("p")], GenParams())
        assert [e["action"] for e in srv.log] == [code, None]
    assert c.finish_reason == "stop"


def test_an_unexpected_error_in_one_request_does_not_abort_the_batch(tmp_path, monkeypatch):
    def boom(self, resp):
        raise RuntimeError("a bug in parsing")
    with FakeOpenAIServer() as srv:
        b = backend(srv, tmp_path, max_retries=0)
        real = OpenAIBackend._parse
        monkeypatch.setattr(OpenAIBackend, "_parse",
                            lambda self, resp: boom(self, resp) if b"bad" in resp.request.content
                            else real(self, resp))
        out = b.generate([chat("ok"), chat("bad")], GenParams())
    assert [c.finish_reason for c in out] == ["stop", "error"]
    assert "RuntimeError" in out[1].error
