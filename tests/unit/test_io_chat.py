"""Tool calls, reasoning traces, tool results and tools on read, write and hash."""

import hashlib
import json

import pytest

from sftflow.io import read_examples, write_examples
from sftflow.schema import Example, RecordError

TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather for a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}]
CALL = {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}
AGENT = {"tools": TOOLS, "messages": [
    {"role": "user", "content": [{"type": "text", "text": "Weather in "}, {"type": "text", "text": "Paris?"}]},
    {"role": "assistant", "content": None, "reasoning": "I should call the tool.", "tool_calls": [CALL]},
    {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": "sunny, 21C"},
    {"role": "assistant", "thinking": "Report it.", "content": "It is sunny and 21C."}]}
SHAREGPT_TOOLS = {"tools": json.dumps([TOOLS[0]["function"]]), "conversations": [
    {"from": "human", "value": "Weather in Paris?"},
    {"from": "function_call", "value": json.dumps({"name": "get_weather", "arguments": {"city": "Paris"}})},
    {"from": "observation", "value": "sunny, 21C"},
    {"from": "gpt", "value": "It is sunny and 21C."}]}


def write(path, recs):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in recs), encoding="utf-8")
    return path


def test_openai_record_keeps_calls_reasoning_results_and_tools(tmp_path):
    (ex,) = read_examples(write(tmp_path / "d.jsonl", [AGENT])).examples
    user, call, result, answer = ex.messages
    assert user == {"role": "user", "content": "Weather in Paris?"}            # text parts joined
    assert call == {"role": "assistant", "content": "", "reasoning_content": "I should call the tool.",
                    "tool_calls": [{"id": "call_1", "type": "function",
                                    "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}
    assert result == {"role": "tool", "content": "sunny, 21C", "tool_call_id": "call_1", "name": "get_weather"}
    assert answer["reasoning_content"] == "Report it."
    assert ex.tools == TOOLS
    assert ex.reasoning == "Report it." and ex.response == "It is sunny and 21C."


def test_sharegpt_function_call_and_observation_match_the_openai_record(tmp_path):
    (ex,) = read_examples(write(tmp_path / "s.jsonl", [SHAREGPT_TOOLS])).examples
    assert ex.tools == TOOLS                             # flat schema wrapped the OpenAI way
    assert [m["role"] for m in ex.messages] == ["user", "assistant", "tool", "assistant"]
    assert ex.messages[1]["tool_calls"] == [{"type": "function", "function": {"name": "get_weather",
                                                                             "arguments": {"city": "Paris"}}}]
    assert ex.messages[2] == {"role": "tool", "content": "sunny, 21C", "name": "get_weather"}
    plain = Example(messages=[{"role": "user", "content": "Weather in Paris?"},
                              {"role": "assistant", "content": "", "tool_calls": [
                                  {"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                              {"role": "tool", "name": "get_weather", "content": "sunny, 21C"},
                              {"role": "assistant", "content": "It is sunny and 21C."}], tools=TOOLS)
    assert ex.id == plain.id


def test_sharegpt_parallel_calls_name_each_observation(tmp_path):
    rec = {"conversations": [
        {"from": "human", "value": "Paris and Rome?"},
        {"from": "function_call", "value": json.dumps([{"name": "get_weather", "arguments": {"city": "Paris"}},
                                                       {"name": "get_time", "arguments": {"city": "Rome"}}])},
        {"from": "observation", "value": "sunny"}, {"from": "observation", "value": "10:00"},
        {"from": "gpt", "value": "Sunny; 10:00."}]}
    (ex,) = read_examples(write(tmp_path / "p.jsonl", [rec])).examples
    assert [m.get("name") for m in ex.messages] == [None, None, "get_weather", "get_time", None]


def test_id_covers_calls_results_reasoning_and_tools_and_plain_ids_are_unchanged():
    plain = [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]
    old = hashlib.sha256(json.dumps([["user", "Q"], ["assistant", "A"]], separators=(",", ":"))
                         .encode()).hexdigest()[:16]
    assert Example(messages=plain).id == old
    base = Example.from_dict(AGENT)
    variants = [dict(AGENT, tools=None)]
    for i, key, value in [(1, "reasoning", "Other thought."), (2, "content", "rainy"), (3, "thinking", "x")]:
        msgs = [dict(m) for m in AGENT["messages"]]
        msgs[i][key] = value
        variants.append(dict(AGENT, messages=msgs))
    msgs = json.loads(json.dumps(AGENT["messages"]))
    msgs[1]["tool_calls"][0]["function"]["arguments"] = '{"city": "Rome"}'
    variants.append(dict(AGENT, messages=msgs))
    ids = {Example.from_dict(v).id for v in variants}
    assert base.id not in ids and len(ids) == len(variants)
    same = json.loads(json.dumps(AGENT))                  # arguments as an object: same record
    same["messages"][1]["tool_calls"][0]["function"]["arguments"] = {"city": "Paris"}
    assert Example.from_dict(same).id == base.id


def test_round_trip_jsonl_parquet_jsonl_is_lossless(tmp_path):
    src = read_examples(write(tmp_path / "a.jsonl", [AGENT, {"messages": [
        {"role": "user", "content": "Q"}, {"role": "assistant", "content": "A"}]}])).examples
    src[0].metadata["score"] = 0.5
    write_examples(tmp_path / "b.parquet", src)
    mid = read_examples(tmp_path / "b.parquet").examples
    write_examples(tmp_path / "c.jsonl", mid)
    back = read_examples(tmp_path / "c.jsonl").examples
    assert [e.to_dict() for e in back] == [e.to_dict() for e in mid] == [e.to_dict() for e in src]
    assert back[0].tools == TOOLS and back[1].tools is None


BAD_CALL = dict(CALL, function={"name": "get_weather", "arguments": '{"city": '})


@pytest.mark.parametrize("msgs,message", [
    ([{"role": "user", "content": "Q"}, {"role": "tool", "tool_call_id": "c9", "content": "r"},
      {"role": "assistant", "content": "A"}],
     r"field 'messages\[1\]\.tool_call_id': tool turn answers no preceding call \(id 'c9'"),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": [CALL]},
      {"role": "tool", "tool_call_id": "call_1", "content": "r"},
      {"role": "tool", "tool_call_id": "call_1", "content": "r2"}, {"role": "assistant", "content": "A"}],
     r"field 'messages\[3\]\.tool_call_id': tool call id 'call_1' is answered twice"),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": [BAD_CALL]}],
     r"field 'messages\[1\]\.tool_calls\[0\]\.function\.arguments': arguments are not valid JSON"),
    ([{"role": "user", "content": "Q"}, {"role": "function", "content": "A"}],
     r"field 'messages\[1\]\.role': unknown role 'function'"),
    ([{"role": "user", "content": [{"type": "text", "text": "Q"}, {"type": "image_url", "image_url": {}}]},
      {"role": "assistant", "content": "A"}],
     r"field 'messages\[0\]\.content\[1\]\.type': content part of type 'image_url' is not supported"),
    ([{"role": "user", "content": "Q"}, {"role": "assistant", "content": "", "tool_calls": [{"function": {}}]}],
     r"field 'messages\[1\]\.tool_calls\[0\]\.function\.name': a tool call needs a function name"),
    ([{"role": "user", "content": "Q", "tool_calls": [CALL]}, {"role": "assistant", "content": "A"}],
     r"field 'messages\[0\]\.tool_calls': only assistant turns make tool calls"),
])
def test_broken_tool_records_name_file_line_field(tmp_path, msgs, message):
    p = write(tmp_path / "bad.jsonl", [{"messages": msgs}])
    with pytest.raises(RecordError, match=r"bad\.jsonl: line 1: " + message):
        read_examples(p)
    res = read_examples(p, skip_invalid=True)                      # --skip-invalid: kept aside
    assert not res.examples and len(res.rejected) == 1 and res.rejected[0].line == 1


@pytest.mark.parametrize("rec,message", [
    ({"tools": "[{", "messages": AGENT["messages"]}, r"field 'tools': tools are not valid JSON"),
    ({"tools": [{"description": "x"}], "messages": AGENT["messages"]},
     r"field 'tools\[0\]\.function\.name': a tool schema needs a function name"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "function_call", "value": "get_weather(Paris)"}]},
     r"field 'conversations\[1\]\.value': a function_call value must be JSON"),
    ({"conversations": [{"from": "human", "value": "Q"}, {"from": "observation", "value": "r"},
                        {"from": "gpt", "value": "A"}]},
     r"field 'conversations\[1\]\.role': tool turn answers no preceding call"),
])
def test_broken_tools_and_sharegpt_tool_turns(tmp_path, rec, message):
    with pytest.raises(RecordError, match=r"line 1: " + message):
        read_examples(write(tmp_path / "bad.jsonl", [rec]))


def test_response_of_a_calling_turn_is_its_calls_and_reasoning_stays_apart():
    msgs = json.loads(json.dumps(AGENT["messages"][:2]))
    ex = Example(messages=msgs + [{"role": "tool", "tool_call_id": "call_1", "content": "sunny"},
                                  {"role": "assistant", "content": "Calling again.", "tool_calls": [CALL]}])
    assert ex.response == 'Calling again.\n{"arguments": {"city": "Paris"}, "name": "get_weather"}'
    assert Example(messages=msgs).response == '{"arguments": {"city": "Paris"}, "name": "get_weather"}'
    assert Example(messages=msgs).reasoning == "I should call the tool."
    assert "I should call" not in Example(messages=msgs).response


def test_per_turn_expansion_keeps_a_group_that_splits_never_divide():
    from sftflow.chat import expand_per_turn
    from sftflow.splits import split_by_group
    sources = [Example.from_dict(AGENT)] + [Example.single(f"Q{i}", f"A{i}") for i in range(20)]
    pieces = [p for ex in sources for p in expand_per_turn(ex)]
    agent = [p for p in pieces if p.metadata["source_id"] == sources[0].id]
    assert [p.metadata["turn"] for p in agent] == [1, 3] and len({p.id for p in agent}) == 2
    assert {p.metadata["group"] for p in agent} == {sources[0].id}
    assert agent[0].messages == sources[0].messages[:2] and agent[0].tools == TOOLS
    for seed in range(5):
        s = split_by_group(pieces, validation=0.3, test=0.3, seed=seed)
        homes = [name for name, rows in (("train", s.train), ("validation", s.validation), ("test", s.test))
                 if any(r.metadata.get("source_id") == sources[0].id for r in rows)]
        assert len(homes) == 1
