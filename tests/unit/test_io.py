"""Every reader on good and broken input; errors name the file, line and field."""

import json

import pytest

from sftflow.io import read_examples, write_examples
from sftflow.schema import Example, RecordError


def write(path, lines):
    path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return path


ALPACA = {"instruction": "Add", "input": "2 and 2", "output": "4"}
SHAREGPT = {"conversations": [{"from": "system", "value": "S"}, {"from": "human", "value": "Q"},
                              {"from": "gpt", "value": "A"}]}
MESSAGES = {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}
PC = {"prompt": "Q\n", "completion": "A<|endoftext|>"}


@pytest.mark.parametrize("rec,expected", [
    (ALPACA, [("user", "Add\n\n2 and 2"), ("assistant", "4")]),
    (SHAREGPT, [("system", "S"), ("user", "Q"), ("assistant", "A")]),
    (MESSAGES, [("user", "Q"), ("assistant", "A")]),
    (PC, [("user", "Q"), ("assistant", "A")]),
])
def test_jsonl_formats(tmp_path, rec, expected):
    p = write(tmp_path / "d.jsonl", [json.dumps(rec)])
    (ex,) = read_examples(p).examples
    assert [(m["role"], m["content"]) for m in ex.messages] == expected


def test_same_conversation_same_id_across_formats(tmp_path):
    a = read_examples(write(tmp_path / "a.jsonl", [json.dumps(MESSAGES)])).examples[0]
    b = read_examples(write(tmp_path / "b.jsonl", [json.dumps(PC)])).examples[0]
    assert a.id == b.id


def test_json_parquet_csv_and_datasets_folder(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps([ALPACA, ALPACA | {"output": "5"}]))
    assert len(read_examples(tmp_path / "d.json").examples) == 2
    write_examples(tmp_path / "d.parquet", [Example.single("Q", "A", metadata={"k": 1})])
    (ex,) = read_examples(tmp_path / "d.parquet").examples
    assert ex.response == "A" and ex.metadata["k"] == 1
    (tmp_path / "d.csv").write_text("instruction,input,output\nAdd,,4\n")
    (ex,) = read_examples(tmp_path / "d.csv").examples
    assert ex.prompt == "Add" and ex.response == "4"
    import datasets
    datasets.Dataset.from_list([PC]).save_to_disk(str(tmp_path / "ds"))
    (ex,) = read_examples(tmp_path / "ds").examples
    assert ex.response == "A"


def test_t0_completions_lose_their_endoftext(shared_data):
    res = read_examples(shared_data / "t0-sample" / "ag_news_classify.jsonl")
    assert len(res.examples) == 200
    assert not any("<|endoftext|>" in e.response for e in res.examples)
    assert res.examples[0].response == "Business"


@pytest.mark.parametrize("lines,message", [
    (['{"prompt": "Q", "completion": "A"}', '{"prompt": "Q2", "completion": '], r"d\.jsonl: line 2: invalid JSON"),
    (['{"instruction": "Add", "output": "4"}', '{"instruction": "Add"}'], r"line 2: field 'output': missing field"),
    (['{"instruction": "Add", "output": 4}'], r"line 1: field 'output': expected a string, got int"),
    (['{"messages": [{"role": "robot", "content": "x"}]}'], r"line 1: field 'messages\[0\]\.role': unknown role 'robot'"),
    (['{"conversations": [{"from": "alien", "value": "x"}]}'], r"line 1: field 'conversations\[0\]\.from': unknown role"),
    (['{"messages": [{"role": "user", "content": "x"}]}'], r"line 1: field 'messages': conversation has no assistant"),
    (['{"foo": 1}'], r"line 1: cannot tell the format"),
    (['[1, 2]'], r"line 1: expected a JSON object"),
])
def test_broken_input_errors_name_file_line_field(tmp_path, lines, message):
    p = write(tmp_path / "d.jsonl", lines)
    with pytest.raises(RecordError, match=message):
        read_examples(p)


def test_empty_file_and_missing_file(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(RecordError, match="e.jsonl: file is empty"):
        read_examples(tmp_path / "e.jsonl")
    with pytest.raises(RecordError, match="no such file"):
        read_examples(tmp_path / "nope.jsonl")


def test_non_utf8_line_is_rejected_with_reason(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_bytes(json.dumps(PC).encode() + b"\n" + b'{"prompt": "\xff\xfe", "completion": "x"}\n')
    with pytest.raises(RecordError, match="line 2: not valid UTF-8"):
        read_examples(p)
    res = read_examples(p, skip_invalid=True)
    assert len(res.examples) == 1 and len(res.rejected) == 1


def test_skip_invalid_keeps_rejects_with_reasons(tmp_path):
    p = write(tmp_path / "d.jsonl", [json.dumps(ALPACA), '{"instruction": "x"}', "not json", json.dumps(ALPACA)])
    res = read_examples(p, skip_invalid=True)
    assert len(res.examples) == 2
    assert [r.line for r in res.rejected] == [2, 3]
    assert "missing field 'output'" in res.rejected[0].reason
    assert res.rejected[1].to_dict()["step"] == "read"


def test_csv_row_numbers_and_explicit_format(tmp_path):
    (tmp_path / "d.csv").write_text("instruction,output\nAdd,4\nSub,\n")
    res = read_examples(tmp_path / "d.csv", "alpaca")
    assert len(res.examples) == 2  # empty output is a string, the curate stage judges emptiness
    with pytest.raises(RecordError, match="unknown format"):
        read_examples(tmp_path / "d.csv", "yaml")


def test_convert_cli_roundtrip(tmp_path):
    from typer.testing import CliRunner

    from sftflow.cli import _register_all, app
    _register_all()
    src = write(tmp_path / "in.jsonl", [json.dumps(SHAREGPT), '{"conversations": 3}'])
    res = CliRunner().invoke(app, ["convert", str(src), str(tmp_path / "out.parquet"), "--skip-invalid"])
    assert res.exit_code == 0, res.output
    assert "1 invalid records" in res.output
    (ex,) = read_examples(tmp_path / "out.parquet").examples
    assert ex.system == "S"
    rej = [json.loads(l) for l in (tmp_path / "out.rejected.jsonl").read_text().splitlines()]
    assert rej[0]["source_line"] == 2 and "conversations" in rej[0]["reason"]
