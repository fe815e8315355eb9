"""The response cache: keys, append-only rows, and no loss or duplicate across a kill."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time

from sftflow.backends import Completion, FakeBackend, GenParams
from sftflow.backends.cache import CachedBackend, ResponseCache, cache_key


def chat(t):
    return [{"role": "user", "content": t}]


def test_key_depends_on_every_part():
    base = cache_key("openai", "m", GenParams(), chat("hi"))
    assert base == cache_key("openai", "m", GenParams(), chat("hi"))
    assert len({base, cache_key("transformers", "m", GenParams(), chat("hi")),
                cache_key("openai", "m2", GenParams(), chat("hi")),
                cache_key("openai", "m", GenParams(temperature=0.5), chat("hi")),
                cache_key("openai", "m", GenParams(seed=1), chat("hi")),
                cache_key("openai", "m", GenParams(), chat("hi!"))}) == 6


def test_put_is_append_only_and_errors_are_not_cached(tmp_path):
    c = ResponseCache(tmp_path / "c.sqlite")
    p = GenParams()
    assert c.put("k", "b", "m", p, chat("x"), Completion("first", completion_tokens=2)) is True
    assert c.put("k", "b", "m", p, chat("x"), Completion("second")) is False
    assert c.put("e", "b", "m", p, chat("y"), Completion("", finish_reason="error", error="boom")) is False
    got = c.get("k")
    assert (got.text, got.completion_tokens, got.cached) == ("first", 2, True)
    assert c.get("e") is None and len(c) == 1


def test_cached_backend_counts_and_asks_duplicates_once(tmp_path):
    fake = FakeBackend(lambda m: m[-1]["content"].upper())
    cb = CachedBackend(fake, ResponseCache(tmp_path / "c.sqlite"))
    out = cb.generate([chat("a"), chat("b"), chat("a")], GenParams())
    assert [c.text for c in out] == ["A", "B", "A"]
    assert (cb.hits, cb.misses, len(fake.calls)) == (0, 2, 2)
    out = cb.generate([chat("b"), chat("c")], GenParams())
    assert [c.text for c in out] == ["B", "C"] and [c.cached for c in out] == [True, False]
    assert (cb.hits, cb.misses, len(fake.calls)) == (1, 3, 3)
    # a new process (a rerun) sees what the first one stored
    cb2 = CachedBackend(FakeBackend(lambda m: "never asked"), ResponseCache(tmp_path / "c.sqlite"))
    assert [c.text for c in cb2.generate([chat("a"), chat("c")], GenParams())] == ["A", "C"]
    assert cb2.misses == 0


WRITER = textwrap.dedent("""
    import sys, time
    from sftflow.backends import FakeBackend, GenParams
    from sftflow.backends.cache import CachedBackend, ResponseCache
    calls = open(sys.argv[2], "a")
    def slow(m):
        calls.write(m[-1]["content"] + "\\n"); calls.flush()
        time.sleep(0.02)
        return "answer " + m[-1]["content"]
    class OneByOne(FakeBackend):
        def generate(self, requests, params, on_result=None):
            out = []
            for i, r in enumerate(requests):
                c = super().generate([r], params)[0]
                if on_result: on_result(i, c)
                out.append(c)
            return out
    cb = CachedBackend(OneByOne(slow), ResponseCache(sys.argv[1]))
    cb.generate([[{"role": "user", "content": str(i)}] for i in range(200)], GenParams())
    print("done")
""")


def test_killed_run_restarts_without_regenerating_or_duplicating(tmp_path):
    db, calls = tmp_path / "c.sqlite", tmp_path / "calls.txt"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db), str(calls)], env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if calls.exists() and len(calls.read_text().splitlines()) >= 40:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored = {r[0] for r in sqlite3.connect(db).execute("SELECT messages FROM responses")}
    n_first = len(stored)
    assert 30 <= n_first < 200
    out = subprocess.run([sys.executable, "-c", WRITER, str(db), str(calls)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "done", out.stderr
    rows = sqlite3.connect(db).execute("SELECT COUNT(*), COUNT(DISTINCT key) FROM responses").fetchone()
    assert rows == (200, 200)
    asked = calls.read_text().splitlines()
    # every prompt is asked once, except at most the one in flight when the kill came
    assert len(asked) - 200 in (0, 1)
    second_run = asked[len(asked) - (200 - n_first):]
    assert sorted(second_run, key=int) == [str(i) for i in range(200) if
                                          f'[{{"content":"{i}","role":"user"}}]' not in stored]


def test_cache_keys_on_the_backends_cache_id(tmp_path):
    cache = ResponseCache(tmp_path / "c.sqlite")
    old = FakeBackend(lambda m: "old weights")
    old.cache_id = "model@aaaa"
    assert CachedBackend(old, cache).generate([chat("q")], GenParams())[0].text == "old weights"
    new = FakeBackend(lambda m: "new weights")
    new.cache_id = "model@bbbb"                   # same name, retrained in place
    assert CachedBackend(new, cache).generate([chat("q")], GenParams())[0].text == "new weights"


def test_same_model_name_at_another_endpoint_is_not_answered_from_the_cache(tmp_path, monkeypatch):
    from sftflow.backends.openai_backend import OpenAIBackend
    from sftflow.testing.fake_server import FakeOpenAIServer
    monkeypatch.setenv("EP_KEY", "sk-first-key-000")
    cache = ResponseCache(tmp_path / "c.sqlite")
    with FakeOpenAIServer(lambda m: "from server A") as a, FakeOpenAIServer(lambda m: "from server B") as b:
        first = OpenAIBackend("same-name", base_url=a.url, api_key_env="EP_KEY")
        assert CachedBackend(first, cache).generate([chat("q")], GenParams())[0].text == "from server A"
        other = OpenAIBackend("same-name", base_url=b.url, api_key_env="EP_KEY")
        assert CachedBackend(other, cache).generate([chat("q")], GenParams())[0].text == "from server B"
        monkeypatch.setenv("EP_KEY", "sk-rotated-key-111")       # a new key is the same endpoint
        again = CachedBackend(OpenAIBackend("same-name", base_url=a.url, api_key_env="EP_KEY"), cache)
        assert again.generate([chat("q")], GenParams())[0].text == "from server A" and again.hits == 1
        assert len(b.log) == 1 and len(a.log) == 1
