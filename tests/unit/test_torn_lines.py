"""A kill mid-append leaves a torn last line: the next run reports it, repairs it, loses nothing."""

from __future__ import annotations

import json

import pytest

from sftflow.backends import FakeBackend, GenParams
from sftflow.generate.session import DEAD_LETTER_FILE, Session
from sftflow.io.append_log import AppendLogError, append_row, read_log, repair_torn_tail


def letter(text, **params):
    p = GenParams(**params).to_dict()
    return {"request": {"backend": "openai", "model": "m", "base_url": "http://x/v1",
                        "messages": [{"role": "user", "content": text}], "params": p},
            "error": "HTTP 500: down", "attempts": 3, "time": 0.0}


def write_letters(path, texts, torn: str | None = None):
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(letter(t)) + "\n" for t in texts)
        if torn is not None:
            f.write(json.dumps(letter(torn))[:37])          # killed half-way through this row


def test_repair_cuts_only_the_torn_tail_and_keeps_its_bytes(tmp_path):
    p = tmp_path / "log.jsonl"
    for i in range(3):
        append_row(p, {"step": i})
    whole = p.read_bytes()
    with open(p, "ab") as f:
        f.write(b'{"step": 3, "lo')
    torn = repair_torn_tail(p)
    assert torn is not None and torn.offset == len(whole) and torn.size == 15
    assert p.read_bytes() == whole and read_log(p) == [{"step": i} for i in range(3)]
    assert (tmp_path / "log.jsonl.torn").read_bytes() == b'{"step": 3, "lo\n'
    assert repair_torn_tail(p) is None                       # a whole file is left alone
    append_row(p, {"step": 3})
    assert [r["step"] for r in read_log(p)] == [0, 1, 2, 3]


def test_a_complete_but_unparsable_last_line_counts_as_torn(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_bytes(b'{"a": 1}\n{"a": \x00\x00\n')
    assert repair_torn_tail(p) is not None and read_log(p) == [{"a": 1}]


def test_a_bad_line_in_the_middle_is_an_error_naming_file_and_line(tmp_path):
    p = tmp_path / "log.jsonl"
    p.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    assert repair_torn_tail(p) is None
    with pytest.raises(AppendLogError, match=r"log.jsonl: line 2"):
        read_log(p)


def test_torn_dead_letter_file_is_repaired_and_each_letter_asked_exactly_once(tmp_path):
    write_letters(tmp_path / DEAD_LETTER_FILE, ["a", "b", "c"], torn="d")
    fake = FakeBackend(lambda m: "answer " + m[-1]["content"])
    notices = []
    for _ in range(2):
        with Session(tmp_path, fake, show_progress=False, notify=notices.append) as s:
            counts = dict(s.counts)
    asked = [c[-1]["content"] for c in fake.calls]
    assert asked == ["a", "b", "c"]            # "d" never reached the file whole: its method asks it again
    assert any("cut short" in n and DEAD_LETTER_FILE in n for n in notices)
    assert counts["dead_letter_retried"] == 0  # the second run: nothing left to retry
    assert not (tmp_path / DEAD_LETTER_FILE).exists() or read_log(tmp_path / DEAD_LETTER_FILE) == []


def test_letters_of_a_run_killed_while_retrying_them_are_not_orphaned(tmp_path):
    # killed during the retry pass: the letters taken over and new ones written since
    write_letters(tmp_path / "dead_letter.retrying.jsonl", ["a", "b"])
    write_letters(tmp_path / DEAD_LETTER_FILE, ["b", "c"])
    fake = FakeBackend(lambda m: "answer " + m[-1]["content"])
    with Session(tmp_path, fake, show_progress=False) as s:
        counts = dict(s.counts)
    assert sorted(c[-1]["content"] for c in fake.calls) == ["a", "b", "c"]     # b once, not twice
    assert counts["dead_letter_retried"] == 3 and counts["dead_letter_recovered"] == 3
    assert not (tmp_path / "dead_letter.retrying.jsonl").exists()


def test_letters_that_fail_again_stay_for_the_next_run(tmp_path):
    write_letters(tmp_path / DEAD_LETTER_FILE, ["a"])

    class Down(FakeBackend):
        def __init__(self, dl):
            super().__init__()
            self.dl = dl

        def generate(self, requests, params):
            from sftflow.backends import Completion
            for r in requests:
                self.calls.append(r)
                append_row(self.dl, letter(r[-1]["content"]))
            return [Completion("", finish_reason="error", error="down") for _ in requests]
    down = Down(tmp_path / DEAD_LETTER_FILE)
    with Session(tmp_path, down, show_progress=False) as s:
        assert s.counts["dead_letter_recovered"] == 0
    assert [r["request"]["messages"][0]["content"] for r in read_log(tmp_path / DEAD_LETTER_FILE)] == ["a"]
    fake = FakeBackend(lambda m: "back up")
    with Session(tmp_path, fake, show_progress=False) as s:
        assert s.counts["dead_letter_recovered"] == 1
    assert [c[-1]["content"] for c in fake.calls] == ["a"]
