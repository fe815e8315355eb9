"""`sftflow generate` end to end against a served model on 127.0.0.1, faults included."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sftflow.testing.fake_server import FakeOpenAIServer
from sftflow.cli import _register_all, app

ROOT = Path(__file__).resolve().parents[2]
SECRET = "sk-loopback-Do-Not-Leak-42"
WORDS = "budget loan invoice savings tax pension stock bond dividend rent salary mortgage fraud".split()


def responder(msgs):
    p = msgs[-1]["content"]
    h = int(hashlib.sha256(p.encode()).hexdigest(), 16)
    if p.startswith("Come up with a series"):
        return "\n".join(f"{9 + i}. Explain how {WORDS[(h >> (4 * i)) % 13]} relates to "
                         f"{WORDS[(h >> (4 * i + 2)) % 13]} in case {h % 10007 + i}." for i in range(3))
    if p.startswith("Can the following task"):
        return "No"
    if p.startswith("Below is a response"):
        return "What should I know about this?"
    if p.startswith("Below is an instruction"):
        return "Score: 5"
    return "Example 1\nInput: case A\nOutput: answer A\nExample 2\nInput: case B\nOutput: answer B"


def is_instance_prompt(prompt: str) -> bool:
    return prompt.startswith("Come up with examples")


@pytest.fixture(scope="module")
def cli():
    _register_all()
    return CliRunner()


def run(cli, args, env=None):
    res = cli.invoke(app, args, env=env or {}, catch_exceptions=False)
    assert res.exit_code == 0, res.output
    return res


def si_args(url, out, n=6):
    return ["generate", "self-instruct", "--n", str(n), "-o", str(out), "--backend", "openai",
            "--model", "served-model", "--base-url", url, "--max-retries", "1", "--timeout", "2",
            "--concurrency", "4", "--requests-per-round", "3", "--quiet"]


def test_outage_dead_letters_then_rerun_fills_the_gaps(cli, tmp_path):
    env = {"OPENAI_API_KEY": SECRET}
    with FakeOpenAIServer(responder) as good:
        run(cli, si_args(good.url, tmp_path / "ref"), env)
    ref = (tmp_path / "ref" / "records.jsonl").read_text()
    assert len(ref.splitlines()) == 12              # 6 tasks x 2 instances

    # first run: every instance request fails for good (500 on each attempt)
    with FakeOpenAIServer(responder, fault_fn=lambda p, k: "500" if is_instance_prompt(p) else None) as bad:
        res = run(cli, si_args(bad.url, tmp_path / "run"), env)
        attempts = {p: k for p, k in bad.attempts.items() if is_instance_prompt(p)}
        port = bad._httpd.server_address[1]
    out = tmp_path / "run"
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert len(attempts) == 6 and set(attempts.values()) == {2}     # 1 try + 1 retry each
    assert counts["records"] == 0 and counts["failures"] == 6 and counts["dead_lettered"] == 6
    assert counts["retries"] == 6 and counts["http_attempts"] == counts["generated"] + 6
    dead = [json.loads(x) for x in (out / "dead_letter.jsonl").read_text().splitlines()]
    assert len(dead) == 6 and all(d["error"].startswith("HTTP 500") for d in dead)
    assert "6 dead-lettered" in res.output
    rej = [json.loads(x) for x in (out / "rejected.jsonl").read_text().splitlines()]
    assert sum(r["step"] == "request" for r in rej) == 6

    # rerun once the server (same endpoint: the cache keys on it) is healthy: dead letters
    # first, everything else from the cache
    with FakeOpenAIServer(responder, port=port) as good:
        run(cli, si_args(good.url, out), env)
        asked = list(good.attempts)
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    assert sorted(asked) == sorted(attempts)          # only the failed requests went out again
    assert counts["dead_letter_retried"] == 6 and counts["dead_letter_recovered"] == 6
    assert counts["dead_lettered"] == 0 and counts["failures"] == 0
    assert counts["generated"] == 6 and counts["cache_hits"] == counts["requests"]
    assert (out / "records.jsonl").read_text() == ref
    assert (out / "dead_letter.previous.jsonl").exists()

    # the API key went over the wire but was written nowhere
    for f in out.iterdir():
        assert SECRET.encode() not in f.read_bytes(), f.name


def test_paraphrase_roundtrip_backtranslate_verbs(cli, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"instruction": "Explain what a bond coupon is.", "output": "A coupon is ..."}) + "\n")
    texts = tmp_path / "texts.txt"
    texts.write_text("Bonds pay interest.\n\nStocks are shares of a company.\n")

    def echo(msgs):
        p = msgs[-1]["content"]
        if p.startswith("Rewrite"):
            return "Please explain what a bond coupon is, briefly."
        if p.startswith("Translate"):
            return "Explain what the coupon of a bond is."
        return responder(msgs)
    with FakeOpenAIServer(echo) as srv:
        common = ["--backend", "openai", "--model", "m", "--base-url", srv.url, "--quiet"]
        run(cli, ["generate", "paraphrase", str(src), "-o", str(tmp_path / "p"), "--k", "1",
                  "--embed", "tfidf", "--min-cosine", "0.1", *common])
        run(cli, ["generate", "roundtrip", str(src), "-o", str(tmp_path / "r"), "--pivot", "German",
                  "--embed", "tfidf", "--min-cosine", "0.1", *common])
        run(cli, ["generate", "backtranslate", str(texts), "-o", str(tmp_path / "b"), *common])
    p = [json.loads(x) for x in (tmp_path / "p" / "records.jsonl").read_text().splitlines()]
    assert p[0]["messages"][0]["content"] == "Please explain what a bond coupon is, briefly."
    assert p[0]["metadata"]["style"] == "formal"
    r = [json.loads(x) for x in (tmp_path / "r" / "records.jsonl").read_text().splitlines()]
    assert r[0]["metadata"]["pivot"] == "German"
    b = [json.loads(x) for x in (tmp_path / "b" / "records.jsonl").read_text().splitlines()]
    assert [x["messages"][1]["content"] for x in b] == ["Bonds pay interest.", "Stocks are shares of a company."]
    for d in "prb":
        man = json.loads((tmp_path / d / "manifest.json").read_text())
        assert man["backend"]["api_key_env"] == "OPENAI_API_KEY" and "cache.sqlite" in \
            [f.name for f in (tmp_path / d).iterdir()]


def test_bad_seed_file_is_a_clear_error(tmp_path):
    import subprocess
    import sys
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"instruction": "ok task here", "instances": [{"input": "", "output": "x"}], '
                     '"is_classification": false}\n{"instruction": "x", "instances": "nope", '
                     '"is_classification": false}\n')
    res = subprocess.run([sys.executable, "-m", "sftflow", "generate", "self-instruct", "--seeds", str(seeds),
                          "-o", str(tmp_path / "o"), "--backend", "openai", "--model", "m", "--quiet"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert f"{seeds}: line 2: field 'instances': expected a non-empty list" in res.stderr


def test_recipe_loads_and_runs_the_generate_stage(tmp_path):
    from sftflow.pipeline.recipe import RunState, load_recipe
    from sftflow.pipeline.stages.generate import run_stage
    from sftflow.io import load_examples, write_examples
    from sftflow.schema import Example
    r = load_recipe(ROOT / "recipes" / "generate.yaml")
    assert r.generate.method == "self-instruct" and r.generate.self_instruct.n == 20
    with FakeOpenAIServer(responder) as srv:
        r = load_recipe(ROOT / "recipes" / "generate.yaml",
                        ["generate.backend.kind=openai", "generate.backend.model=m",
                         f"generate.backend.base_url={srv.url}", "generate.self_instruct.n=3",
                         "generate.show_progress=false"])
        state = RunState(recipe=r, out_dir=tmp_path)
        state.train_path = tmp_path / "train.jsonl"
        write_examples(state.train_path, [Example.single("existing q", "existing a")])
        run_stage(r.generate, state)
    assert state.train_path == tmp_path / "generate" / "train.jsonl"
    combined = load_examples([state.train_path])
    assert combined[0].prompt == "existing q" and len(combined) == 1 + 6
    assert state.artifacts["generate"]["generated"] == 6


def test_unknown_recipe_key_is_rejected(tmp_path):
    from sftflow.config import ConfigError
    from sftflow.pipeline.recipe import load_recipe
    bad = tmp_path / "r.yaml"
    bad.write_text("generate:\n  method: self-instruct\n  self_instruct:\n    nn: 5\n")
    with pytest.raises(ConfigError, match="did you mean 'n'"):
        load_recipe(bad)


@pytest.mark.slow
def test_real_smollm2_stops_and_reports_speed():
    from sftflow.backends import GenParams, get_backend
    b = get_backend("transformers", batch_size=2)
    out = b.generate([[{"role": "user", "content": "What is 2+2? Answer with one number."}],
                      [{"role": "user", "content": "Write a long story about a bank."}]],
                     GenParams(temperature=0, max_new_tokens=24))
    assert out[0].finish_reason == "stop" and "4" in out[0].text
    assert out[1].finish_reason == "length" and out[1].completion_tokens == 24
    assert b.tokens_per_second > 0
