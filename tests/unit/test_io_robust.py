"""Readers never crash on real files: every bad record is that record's error (file,
line or row, field, reason), a reject under skip_invalid, and text is kept as written."""

import base64
import datetime as dt
import decimal
import json

import pytest

from sftflow.io import read_examples
from sftflow.io.readers import MAX_DEPTH
from sftflow.schema import RecordError

PC = {"prompt": "Q", "completion": "A"}


def jsonl(path, *lines: str):
    path.write_text("".join(l + "\n" for l in lines), encoding="utf-8")
    return path


def rejects(path, **kw):
    res = read_examples(path, skip_invalid=True, **kw)
    return res.examples, res.rejected


@pytest.mark.parametrize("meta,kind", [("[1, 2]", "list"), ('"text"', "str"), ("5", "int")])
def test_metadata_of_wrong_type_is_a_field_error(tmp_path, meta, kind):
    p = jsonl(tmp_path / "d.jsonl", json.dumps(PC),
              '{"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}], '
              f'"metadata": {meta}}}')
    with pytest.raises(RecordError, match=rf"d\.jsonl: line 2: field 'metadata': expected an object, got {kind}"):
        read_examples(p)
    kept, rej = rejects(p)
    assert len(kept) == 1 and rej[0].line == 2


def test_lone_surrogate_is_rejected_naming_the_field_and_the_reject_can_be_written(tmp_path):
    p = jsonl(tmp_path / "d.jsonl", '{"prompt": "Q", "completion": "bad \\ud800 half"}', json.dumps(PC))
    with pytest.raises(RecordError, match=r"line 1: field 'completion': lone surrogate U\+D800"):
        read_examples(p)
    kept, rej = rejects(p)
    assert len(kept) == 1
    from sftflow.io import write_rejected
    write_rejected(tmp_path / "rej.jsonl", rej)   # the rejects file is valid UTF-8 JSONL
    back = json.loads((tmp_path / "rej.jsonl").read_text(encoding="utf-8"))
    assert back["raw"] == '{"prompt": "Q", "completion": "bad \\ud800 half"}'   # replayable line


def test_nesting_deeper_than_the_limit(tmp_path):
    deep = "[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)
    very_deep = "[" * 100000 + "]" * 100000   # beyond Python's own recursion limit
    p = jsonl(tmp_path / "d.jsonl", json.dumps(PC | {"extra": "x"})[:-1] + f', "tags": {deep}}}',
              f'{{"prompt": "Q", "completion": "A", "tags": {very_deep}}}', json.dumps(PC))
    with pytest.raises(RecordError, match=rf"line 1: field 'tags(\[0\])*': nested deeper than {MAX_DEPTH}"):
        read_examples(p)
    kept, rej = rejects(p)
    assert len(kept) == 1 and [r.line for r in rej] == [1, 2]
    assert "nested deeper" in rej[1].reason


def test_non_utf8_bytes_reject_only_their_line_or_row(tmp_path):
    p = tmp_path / "d.jsonl"
    bad = b'{"prompt": "caf\xe9", "completion": "x"}\n'
    p.write_bytes(json.dumps(PC).encode() + b"\n" + bad + json.dumps(PC).encode() + b"\n")
    kept, rej = rejects(p)
    assert len(kept) == 2 and rej[0].line == 2 and "not valid UTF-8" in rej[0].reason
    assert base64.b64decode(rej[0].record["raw"]["raw_base64"]) == bad   # the exact bytes
    c = tmp_path / "d.csv"
    c.write_bytes(b"prompt,completion\nQ1,A1\nQ2,caf\xe9\nQ3,A3\n")
    with pytest.raises(RecordError, match=r"d\.csv: line 3: not valid UTF-8 \(byte 0xe9\)"):
        read_examples(c)
    kept, rej = rejects(c)
    assert [e.prompt for e in kept] == ["Q1", "Q3"] and rej[0].line == 3


def test_csv_bom_big_cell_and_physical_line_numbers(tmp_path):
    big = "x" * 200_000   # over the csv module's 131072-character default
    c = tmp_path / "d.csv"
    c.write_text("\ufeffprompt,completion\n" f'"two\nline prompt",A\n' f"Q,{big}\n" 'Q3,"bad', encoding="utf-8")
    kept, rej = rejects(c)
    assert kept[0].prompt == "two\nline prompt" and kept[1].response == big
    assert rej == [] and kept[2].response == "bad"   # an unclosed quote at the end: the rest is the cell
    c.write_text("prompt,completion\nQ1,A1\n\n" '"multi\nline",A2\nQ3,"A3",surplus,more\n', encoding="utf-8")
    with pytest.raises(RecordError, match=r"line 6: 4 cells but the header names 2: extra cells 'surplus', 'more'"):
        read_examples(c)
    kept, rej = rejects(c)
    assert [e.prompt for e in kept] == ["Q1", "multi\nline"]
    assert rej[0].line == 6 and rej[0].record["raw"]["cells"] == ["Q3", "A3", "surplus", "more"]


def test_csv_json_columns_are_parsed_text_columns_are_not(tmp_path):
    c = tmp_path / "d.csv"
    msgs = json.dumps([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}])
    c.write_text("messages,metadata,id\n" + '"' + msgs.replace('"', '""') + '","{""task"": ""qa""}",x1\n')
    (ex,) = read_examples(c).examples
    assert ex.response == "A" and ex.metadata["task"] == "qa" and ex.id == "x1"
    c.write_text('prompt,completion\n"[1,2] is a list",{not json}\n')
    (ex,) = read_examples(c).examples
    assert ex.prompt == "[1,2] is a list" and ex.response == "{not json}"


def test_text_is_kept_as_written(tmp_path):
    p = jsonl(tmp_path / "d.jsonl",
              json.dumps({"prompt": "[1,2] and [3]", "completion": "{\"a\": 1}"}),
              json.dumps({"prompt": "Strike it", "completion": "Use <s>old</s> markup<|endoftext|>"}),
              json.dumps({"prompt": "Tag?", "completion": "It ends with </s>"}),
              json.dumps({"prompt": "Code", "completion": "    indented()\n"}))
    exs = read_examples(p).examples
    assert exs[0].prompt == "[1,2] and [3]" and exs[0].response == '{"a": 1}'
    assert exs[1].response == "Use <s>old</s> markup"       # only the format's own marker goes
    assert exs[2].response == "It ends with </s>"
    assert exs[3].response == "    indented()"


def test_empty_completion_is_empty_not_invalid_json(tmp_path):
    p = jsonl(tmp_path / "d.jsonl", json.dumps({"prompt": "Q", "completion": ""}))
    (ex,) = read_examples(p).examples
    assert ex.response == ""
    from sftflow.curate.filters import EmptyFilter
    res = EmptyFilter().run([ex])
    assert "empty" in res.rejected[0].reason and "JSON" not in res.rejected[0].reason


@pytest.mark.parametrize("rec,fmt", [
    ({"prompt": "Q", "completion": "A", "task": "qa", "category": "science"}, "jsonl"),
    ({"instruction": "Q", "output": "A", "task": "qa", "category": "science"}, "jsonl"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "gpt", "value": "A"}],
      "task": "qa", "category": "science"}, "jsonl"),
    ({"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}],
      "task": "qa", "category": "science"}, "jsonl"),
    ({"prompt": "Q", "completion": "A", "task": "qa", "category": "science"}, "csv"),
])
def test_extra_fields_of_every_format_are_metadata(tmp_path, rec, fmt):
    if fmt == "csv":
        p = tmp_path / "d.csv"
        p.write_text(",".join(rec) + "\n" + ",".join(rec.values()) + "\n")
    else:
        p = jsonl(tmp_path / "d.jsonl", json.dumps(rec))
    (ex,) = read_examples(p).examples
    assert ex.metadata["task"] == "qa" and ex.metadata["category"] == "science"


def test_duplicate_user_ids_name_both_lines_or_are_reided(tmp_path):
    m = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    a = jsonl(tmp_path / "a.jsonl", json.dumps({"id": "r1", "messages": m}))
    b = jsonl(tmp_path / "b.jsonl", json.dumps({"id": "r2", "messages": m}),
              json.dumps({"id": "r1", "messages": m[:1] + [{"role": "assistant", "content": "B"}]}))
    with pytest.raises(RecordError, match=r"b\.jsonl: line 2: field 'id': duplicate id 'r1': also at .*a\.jsonl: line 1"):
        read_examples([a, b])
    res = read_examples([a, b], duplicate_ids="reid")
    assert [e.id for e in res.examples] == ["r1", "r2", "r1.2"]
    assert res.examples[2].metadata["_reid"]["original_id"] == "r1"
    # sftflow's own content-hash ids repeat on exact duplicates: that is dedup's business
    from sftflow.schema import Example
    ex = Example(messages=m)
    c = jsonl(tmp_path / "c.jsonl", *[json.dumps(ex.to_dict())] * 2)
    assert len(read_examples(c).examples) == 2


def test_json_rows_count_from_one_and_bom(tmp_path):
    p = tmp_path / "d.json"
    p.write_text("\ufeff" + json.dumps([PC, {"prompt": "Q"}]), encoding="utf-8")
    with pytest.raises(RecordError, match=r"d\.json: row 2: field 'completion': missing"):
        read_examples(p)
    j = tmp_path / "b.jsonl"
    j.write_bytes(b"\xef\xbb\xbf" + json.dumps(PC).encode() + b"\n")
    assert len(read_examples(j).examples) == 1


def test_parquet_timestamp_decimal_binary_become_json_values(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    t = pa.table({"prompt": ["Q"], "completion": ["A"],
                  "when": pa.array([dt.datetime(2024, 5, 1, 12, 30)], pa.timestamp("us")),
                  "price": pa.array([decimal.Decimal("1.10")], pa.decimal128(5, 2)),
                  "blob": pa.array([b"\x00\xff"], pa.binary()), "name": pa.array([b"abc"], pa.binary())})
    pq.write_table(t, tmp_path / "d.parquet")
    (ex,) = read_examples(tmp_path / "d.parquet").examples
    assert ex.metadata["when"] == "2024-05-01T12:30:00" and ex.metadata["price"] == "1.10"
    assert ex.metadata["blob"] == {"base64": "AP8="} and ex.metadata["name"] == "abc"
    from sftflow.io import write_examples
    write_examples(tmp_path / "out.jsonl", [ex])     # and it writes
    assert json.loads((tmp_path / "out.jsonl").read_text())["metadata"]["price"] == "1.10"


def test_parquet_reads_in_batches(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sftflow.io import readers
    pq.write_table(pa.table({"prompt": [f"Q{i}" for i in range(50)], "completion": ["A"] * 50}),
                   tmp_path / "d.parquet", row_group_size=10)
    sizes = []
    orig = pq.ParquetFile.iter_batches

    def spy(self, *a, **k):
        for b in orig(self, *a, **k):
            sizes.append(b.num_rows)
            yield b
    monkeypatch.setattr(pq.ParquetFile, "iter_batches", spy)
    from sftflow.io import containers
    monkeypatch.setattr(containers, "PARQUET_BATCH", 10)
    it = readers.iter_examples(tmp_path / "d.parquet")
    next(it)
    assert sizes == [10]           # one batch read, not the file
    assert len(list(it)) == 49


def test_curate_rejects_duplicate_ids_and_spills_large_raw_records(tmp_path):
    from sftflow.curate.config import CurateConfig
    from sftflow.curate.pipeline import curate
    m = [{"role": "user", "content": "What is the capital of France?"},
         {"role": "assistant", "content": "Paris is the capital of France."}]
    huge = "x" * (1 << 20)
    p = jsonl(tmp_path / "d.jsonl", json.dumps({"id": "a", "messages": m}), json.dumps({"id": "a", "messages": m}),
              '{"prompt": "' + huge + '", "completion": ')
    cfg = CurateConfig.model_validate({"steps": ["empty"], "stats": False})
    res = curate([p], tmp_path / "out", cfg, progress=False)
    assert len(res.kept) == 1 and len(res.rejected) == 2
    rej = [json.loads(x) for x in (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()]
    assert "duplicate id 'a': also at" in rej[0]["reason"] and rej[0]["source_line"] == 2
    spilled = rej[1]
    assert spilled["raw_chars"] > len(huge)
    assert open(spilled["raw_file"], encoding="utf-8").read().startswith('{"prompt": "xxx')
    cfg = CurateConfig.model_validate({"steps": ["empty"], "stats": False, "duplicate_ids": "reid"})
    res = curate([p], tmp_path / "out2", cfg, progress=False)
    assert sorted(e.id for e in res.kept) == ["a", "a.2"]
