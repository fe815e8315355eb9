"""Self-Instruct end to end on a scripted backend: demos, filters, provenance, resume."""

from __future__ import annotations

import hashlib
import json

import pytest

from sftflow.backends import FakeBackend
from sftflow.generate.config import GenerateConfig
from sftflow.generate.seeds import load_seed_tasks
from sftflow.generate.self_instruct import run_self_instruct

WORDS = ("budget loan invoice savings tax pension stock bond dividend rent salary mortgage credit "
         "card fraud index fund ledger audit payroll refund insurance crypto wallet").split()


def responder(msgs):
    p = msgs[-1]["content"]
    h = int(hashlib.sha256(p.encode()).hexdigest(), 16)
    if p.startswith("Come up with a series"):
        a, b, c = WORDS[h % 23], WORDS[(h // 23) % 23], WORDS[(h // 529) % 23]
        return (f"9. Explain how {a} affects {b} when planning {c} for request {h % 9973}.\n"
                f"10. Describe the image of a {a} chart.\n"              # blacklisted
                f"11. Summarize the earnings statement in two sentences for a retail investor.")  # seed copy
    if p.startswith("Can the following task"):
        task = p.rsplit("Task:", 1)[1]
        return "Yes" if "fraud" in task else "No"
    if p.startswith("Given the classification task"):
        return "Class label: flag\nInput: a $900 transfer at 3 a.m.\nClass label: ok\nInput: rent paid on the 1st"
    return "Example 1\nInput: my numbers\nOutput: the answer\nExample 2\nInput: other numbers\nOutput: another"


def cfg(**si):
    return GenerateConfig(show_progress=False, self_instruct={"n": 12, "requests_per_round": 4, **si})


def read(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


def test_pipeline_outputs_provenance_and_rejects(tmp_path):
    fake = FakeBackend(responder)
    counts = run_self_instruct(cfg(), tmp_path, backend=fake)
    recs, rej = read(tmp_path / "records.jsonl"), read(tmp_path / "rejected.jsonl")
    assert counts["instructions"] == 12 and counts["records"] == len(recs)
    tasks = {r["metadata"]["task_id"] for r in recs}
    assert len(tasks) == 12                    # every task kept 2 instances
    assert len(recs) == 24
    for r in recs:
        m = r["metadata"]
        prov = m["provenance"]
        assert m["source"] == "self-instruct" and r["messages"][0]["content"].startswith(m["instruction"])
        assert prov["backend"] == "fake" and prov["model"] == "fake-model"
        assert prov["prompt_id"].startswith("self_instruct_bootstrap@")
        assert prov["params"]["temperature"] == 0.7 and prov["params"]["top_p"] == 0.5
        assert prov["filters"]["length"] == "pass" and prov["filters"]["rouge_l"] <= 0.7
        assert prov["instances"]["order"] == ("output-first" if m["is_classification"] else "input-first")
        assert m["is_classification"] == ("fraud" in m["instruction"])
    clf = [r for r in recs if r["metadata"]["is_classification"]]
    assert all(r["messages"][1]["content"] in ("flag", "ok") for r in clf)
    steps = {r["step"] for r in rej}
    assert {"filter:blacklist", "filter:rouge_l"} <= steps
    rouge = [r for r in rej if r["step"] == "filter:rouge_l"]
    assert all(r["value"] > 0.7 and r["metadata"]["provenance"]["filters"]["most_similar"] for r in rouge)
    blk = [r for r in rej if r["step"] == "filter:blacklist"]
    assert all("image" in r["instruction"] and r["reason"] == "blacklisted keyword 'image'" for r in blk)
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["counts"]["records"] == 24 and man["counts"]["requests"] == counts["requests"]
    assert man["counts"]["cache_hits"] == 0 and man["counts"]["failures"] == 0


def test_demos_are_six_human_and_two_machine(tmp_path):
    fake = FakeBackend(responder)
    run_self_instruct(cfg(), tmp_path, backend=fake)
    human = {t.instruction for t in load_seed_tasks()}
    boots = [c[-1]["content"] for c in fake.calls if c[-1]["content"].startswith("Come up with a series")]
    first, later = boots[:4], boots[4:]
    assert later

    def demo_lines(p):
        return [line.split(". ", 1)[1] for line in p.splitlines() if line[:1].isdigit() and ". " in line]
    for p in first:
        assert len(demo_lines(p)) == 8 and all(d in human for d in demo_lines(p))
    for p in later:
        lines = demo_lines(p)
        assert len(lines) == 8 and sum(d in human for d in lines) == 6
        assert p.rstrip().endswith("9.")


def test_rerun_is_served_from_cache_and_identical(tmp_path):
    run_self_instruct(cfg(), tmp_path, backend=FakeBackend(responder))
    first = (tmp_path / "records.jsonl").read_text()
    never = FakeBackend(lambda m: pytest.fail("a resumed run must not ask again"))
    counts = run_self_instruct(cfg(), tmp_path, backend=never)
    assert counts["generated"] == 0 and counts["cache_hits"] == counts["requests"] > 0
    assert (tmp_path / "records.jsonl").read_text() == first


class Crash(Exception):
    pass


def test_killed_run_resumes_to_the_same_result(tmp_path):
    run_self_instruct(cfg(), tmp_path / "ref", backend=FakeBackend(responder))
    calls = {"n": 0}

    class Dies(FakeBackend):
        def generate(self, requests, params):
            calls["n"] += 1
            if calls["n"] == 3:
                raise Crash()
            return super().generate(requests, params)
    with pytest.raises(Crash):
        run_self_instruct(cfg(), tmp_path / "run", backend=Dies(responder))
    fake = FakeBackend(responder)
    counts = run_self_instruct(cfg(), tmp_path / "run", backend=fake)
    assert counts["cache_hits"] == 8               # the two rounds answered before the crash
    assert (tmp_path / "run" / "records.jsonl").read_text() == (tmp_path / "ref" / "records.jsonl").read_text()


def test_target_reached_leftovers_and_stalls_are_reported(tmp_path):
    counts = run_self_instruct(cfg(n=2, requests_per_round=4), tmp_path, backend=FakeBackend(responder))
    rej = read(tmp_path / "rejected.jsonl")
    assert counts["instructions"] == 2
    assert any(r["step"] == "bootstrap" and r["reason"] == "target number of instructions reached" for r in rej)
    # a model that only copies the seeds never gets anywhere: the run stops at max_rounds
    copycat = FakeBackend(lambda m: "9. Summarize the paragraph in one sentence."
                          if m[-1]["content"].startswith("Come up with a series") else "No")
    counts = run_self_instruct(cfg(max_rounds=3), tmp_path / "stall", backend=copycat)
    assert counts["instructions"] == 0 and counts["rounds"] == 3 and counts["records"] == 0
    assert counts["rejected"] == 12
