"""No API key reaches any file of a run folder, nor what the command prints.

Each case runs ``sftflow generate backtranslate`` in its own process against the
fake server: one text is answered, one is refused with a 401 that quotes the
Authorization header and the URL back (so the dead letters, rejects and error
texts carry whatever the server saw), then every byte of the run folder and of
stdout/stderr is searched for the key.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sftflow.testing.fake_server import FakeOpenAIServer

KEY = "sk-live-Leak-Canary-7f3a9"


def responder(msgs):
    p = msgs[-1]["content"]
    if p.startswith("Below is a response"):
        return "What do bonds pay?"
    return "Score: 5"


def fault(prompt, attempt):
    return "echo_auth" if "Stocks" in prompt else None


def run_generate(tmp_path, base_url, env_key=None, extra=()):
    texts = tmp_path / "texts.txt"
    texts.write_text("Bonds pay interest.\n\nStocks are shares of a company.\n")
    out = tmp_path / "run"
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    env["HF_HUB_OFFLINE"] = "1"
    if env_key is not None:
        env["OPENAI_API_KEY"] = env_key
    res = subprocess.run([sys.executable, "-m", "sftflow", "generate", "backtranslate", str(texts), "-o", str(out),
                          "--backend", "openai", "--model", "m", "--base-url", base_url, "--max-retries", "1",
                          "--timeout", "5", "--quiet", *extra],
                         capture_output=True, text=True, timeout=120, env=env)
    return res, out


def assert_nowhere(secret, res, out):
    assert secret not in res.stdout and secret not in res.stderr, (res.stdout + res.stderr)[-2000:]
    files = [p for p in out.rglob("*") if p.is_file()] if out.exists() else []
    for p in files:
        assert secret.encode() not in p.read_bytes(), p.name
    return files


def with_auth(url, userinfo):
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{userinfo}@{rest}"


def test_key_with_trailing_crlf_is_sent_clean_and_written_nowhere(tmp_path):
    with FakeOpenAIServer(responder, fault_fn=fault) as srv:
        res, out = run_generate(tmp_path, srv.url, env_key=KEY + "\r\n")
        sent = {e["headers"].get("Authorization") for e in srv.log}
    assert res.returncode == 0, res.stderr[-2000:]
    assert sent == {f"Bearer {KEY}"}                   # stripped, so the request went out at all
    files = assert_nowhere(KEY, res, out)
    assert {"manifest.json", "records.jsonl", "rejected.jsonl", "dead_letter.jsonl"} <= {p.name for p in files}


@pytest.mark.parametrize("where", ["userinfo", "query"])
def test_key_in_the_base_url_is_written_nowhere(where, tmp_path):
    with FakeOpenAIServer(responder, fault_fn=fault) as srv:
        url = with_auth(srv.url, f"me:{KEY}") if where == "userinfo" else f"{srv.url}?api-key={KEY}"
        res, out = run_generate(tmp_path, url)
        answered = sum(e["action"] is None for e in srv.log)
    assert res.returncode == 0, res.stderr[-2000:]
    assert answered >= 2                               # the URL still worked: instruction + rating
    files = assert_nowhere(KEY, res, out)
    assert "dead_letter.jsonl" in {p.name for p in files}


def test_key_given_where_the_variable_name_belongs_is_refused_without_echo(tmp_path):
    with FakeOpenAIServer(responder) as srv:
        res, out = run_generate(tmp_path, srv.url, extra=["--api-key-env", KEY])
        asked = len(srv.log)
    assert res.returncode == 2 and "api-key-env" in res.stderr.replace("api_key_env", "api-key-env")
    assert asked == 0
    assert_nowhere(KEY, res, out)
