"""Self-Instruct filters, parsers, post-processing and seed-file errors."""

from __future__ import annotations

import json

import pytest

from sftflow.generate.instruction_checks import Instance, InstructionFilter, postprocess_instances
from sftflow.generate.seeds import default_seeds_path, load_seed_tasks
from sftflow.generate.self_instruct import (parse_input_first, parse_instructions, parse_output_first,
                                            parse_yes_no)
from sftflow.schema import RecordError


@pytest.mark.parametrize("inst,check,reason", [
    ("Summarize it", None, None),                                         # 2 words
    ("Summarize the text", None, None),
    ("Describe the image below in detail", "blacklist", "blacklisted keyword 'image'"),
    ("Update my profile description to sound friendly", None, None),     # 'file' only as a word
    ("Write a program that sorts numbers", "program", "starts with 'Write a program'"),
    ("- Explain inflation to a child", "start", "starts with punctuation"),
    ("\u00bfExplain inflation to a child now", "start", "starts with a non-ASCII character"),
    ("word " * 151, "length", "more than 150 words"),
])
def test_instruction_filter(inst, check, reason):
    verdicts, fail = InstructionFilter().verdicts(inst.strip())
    if inst == "Summarize it":
        assert fail == ("length", "fewer than 3 words", 2)
    elif check is None:
        assert fail is None and set(verdicts.values()) == {"pass"}
    else:
        assert fail[0] == check and fail[1] == reason and verdicts[check] == "reject"


def test_parse_instructions_numbered_and_plain():
    text = "9. Explain APR.\n10) List three   budgeting apps\n11. - Task: Define equity.\n\n"
    assert parse_instructions(text) == ["Explain APR.", "List three budgeting apps", "Define equity."]
    assert parse_instructions("Explain APR.\nDefine equity.") == ["Explain APR.", "Define equity."]
    assert parse_instructions("  ") == []


def test_parse_yes_no():
    assert parse_yes_no("Yes") is True and parse_yes_no(" no, it is not") is False
    assert parse_yes_no("Maybe") is None and parse_yes_no("Yesterday") is None


def test_parse_input_first():
    text = "Example 1\nInput: 2 + 2\nOutput: 4\nExample 2\nInput: 3 + 5\nOutput: 8"
    assert parse_input_first(text) == [Instance("2 + 2", "4"), Instance("3 + 5", "8")]
    assert parse_input_first("Output: Paris is the capital.") == [Instance("", "Paris is the capital.")]
    assert parse_input_first("Just an answer.") == [Instance("", "Just an answer.")]


def test_parse_output_first():
    text = "Class label: spam\nText: WIN a prize now\nClass label: not spam\nText: lunch at 1?"
    assert parse_output_first(text) == [Instance("Text: WIN a prize now", "spam"),
                                        Instance("Text: lunch at 1?", "not spam")]
    assert parse_output_first("Class label: (e)") == [Instance("", "(e)")]
    assert parse_output_first("no labels here") == []


def test_postprocess_rules():
    v = postprocess_instances([Instance("a", "1"), Instance("b", ""), Instance("c", "c"),
                               Instance("d:", "x"), Instance("a", "1"), Instance("e", "2")])
    assert v.kept == [Instance("a", "1"), Instance("e", "2")] and v.task_rejected is None
    assert [r for _, r in v.dropped] == ["empty output", "input equals output",
                                        "unfinished field (ends with ':')", "duplicate instance"]
    v = postprocess_instances([Instance("q", "yes"), Instance("q", "no")])
    assert v.kept == [] and v.task_rejected == "instances share an input but disagree on the output"
    assert len(v.dropped) == 2
    # empty inputs may repeat with different outputs (open-ended tasks)
    v = postprocess_instances([Instance("", "one"), Instance("", "two")])
    assert v.kept == [Instance("", "one"), Instance("", "two")]
    v = postprocess_instances([Instance(str(i), f"o{i}") for i in range(7)], max_instances=5)
    assert len(v.kept) == 5 and [r for _, r in v.dropped] == ["more than 5 instances"] * 2
    assert postprocess_instances([Instance("x", "")]).task_rejected == "no valid instance"
    v = postprocess_instances([Instance("", "Name a fund."), Instance("", "Vanguard")], instruction="Name a fund.")
    assert v.kept == [Instance("", "Vanguard")] and v.dropped[0][1] == "output repeats the instruction"


def test_default_seed_set_is_ours_and_well_formed():
    tasks = load_seed_tasks()
    assert len(tasks) >= 40
    assert sum(t.is_classification for t in tasks) >= 8
    assert len({t.instruction for t in tasks}) == len(tasks)
    assert default_seeds_path().name == "seed_tasks.jsonl"


def test_reads_the_self_instruct_seed_file(shared_data):
    tasks = load_seed_tasks(shared_data / "self-instruct" / "seed_tasks.jsonl")
    assert len(tasks) == 175 and tasks[0].id == "seed_task_0"


@pytest.mark.parametrize("rec,field,msg", [
    ({"instances": [{"input": "", "output": "x"}], "is_classification": False}, "instruction",
     "missing field 'instruction'"),
    ({"instruction": "Do it", "instances": [], "is_classification": False}, "instances", "non-empty list"),
    ({"instruction": "Do it", "instances": [{"input": "", "output": 3}], "is_classification": False},
     "instances[0].output", "expected a string, got int"),
    ({"instruction": "Do it", "instances": [{"output": "x"}], "is_classification": False},
     "instances[0].input", "missing field 'input'"),
    ({"instruction": "Do it", "instances": [{"input": "", "output": "x"}], "is_classification": "no"},
     "is_classification", "expected true or false"),
])
def test_bad_seed_lines_name_the_line_and_field(tmp_path, rec, field, msg):
    good = {"instruction": "Fine task here", "instances": [{"input": "", "output": "x"}],
            "is_classification": False}
    p = tmp_path / "seeds.jsonl"
    p.write_text(json.dumps(good) + "\n\n" + json.dumps(rec) + "\n")
    with pytest.raises(RecordError) as e:
        load_seed_tasks(p)
    assert (e.value.line, e.value.field) == (3, field)
    assert msg in str(e.value) and str(p) in str(e.value)


def test_bad_json_line(tmp_path):
    p = tmp_path / "s.jsonl"
    p.write_text('{"instruction": "x",\n')
    with pytest.raises(RecordError, match="line 1: invalid JSON"):
        load_seed_tasks(p)
