"""The safe calculator, the tool registry, and the tool loop against a scripted backend."""

from __future__ import annotations

import json

import pytest

from sftflow.backends import FakeBackend, GenParams
from sftflow.tools import CalculatorError, calculate, get_tool, register_tool, safe_eval, schemas
from sftflow.tools.loop import parse_tool_calls, render_tool_call, run_tool_loop, summarize_tool_use


@pytest.mark.parametrize("expr,value", [
    ("20000 * (1 + 0.05) ** 6", 26801.9128125), ("-3 + 4 * 2", 5.0), ("2 ** -1", 0.5), ("(1)", 1.0),
    ("72 / 11", 72 / 11), ("1e3 / 4", 250.0),
])
def test_arithmetic(expr, value):
    assert safe_eval(expr) == pytest.approx(value)


@pytest.mark.parametrize("expr,why", [
    ("__import__('os').system('true')", "not allowed"), ("x + 1", "the name 'x'"),
    ("(1).real", "the attribute 'real'"), ("abs(-1)", "not allowed"), ("2 ** 10000", "exponent"),
    ("10 ** 10 ** 10", "exponent"), ("1e308 * 10", "finite"), ("1 / 0", "division by zero"),
    ("3 ^ 2", "BitXor"), ("3 % 2", "Mod"), ("20,000 * 2", "Tuple"), ("'a' * 3", "only numbers"),
    ("True + 1", "only numbers"), ("", "empty"), ("1 +", "not an arithmetic expression"),
    ("1" + "+1" * 200, "longer than"), ("(-8) ** 0.5", "real number"),
])
def test_evaluator_rejects(expr, why):
    with pytest.raises(CalculatorError, match=why):
        safe_eval(expr)


def test_calculate_rounds_for_quoting():
    assert calculate("20000 * 1.05 ** 6", round_to=2) == "26,801.91"
    assert calculate("72 / 11", round_to=1) == "6.5"
    assert calculate("1 / 3") == "0.3333333333"
    with pytest.raises(CalculatorError, match="round_to"):
        calculate("1", round_to=99)


def test_users_register_tools_by_name():
    register_tool("shout_test", lambda text: text.upper(), description="upper-case",
                  parameters={"type": "object", "properties": {"text": {"type": "string"}}})
    assert get_tool("shout_test").fn(text="hi") == "HI"
    assert schemas(["shout_test"])[0]["function"]["name"] == "shout_test"
    with pytest.raises(ValueError, match="already registered"):
        register_tool("shout_test", str)
    with pytest.raises(KeyError, match="no tool named 'nope'"):
        get_tool("nope")


def test_parse_calls_and_malformed_ones():
    text = "Let me compute.\n" + render_tool_call("calculate", {"expression": "1+1"})
    (c,) = parse_tool_calls(text)
    assert (c.name, c.arguments, c.error) == ("calculate", {"expression": "1+1"}, None)
    (bad,) = parse_tool_calls("<tool_call>{'name': calculate}</tool_call>")
    assert "not valid JSON" in bad.error
    (unclosed,) = parse_tool_calls('<tool_call>{"name": "calculate", "arguments": "{\\"expression\\": \\"2*3\\"}"}')
    assert unclosed.arguments == {"expression": "2*3"}
    assert parse_tool_calls("Answer: 4") == []


def scripted(script: dict[int, list[str]]):
    """A backend that answers conversation k's n-th generation with script[k][n]."""
    def respond(msgs):
        k = int(msgs[0]["content"])
        n = sum(m["role"] == "assistant" for m in msgs)
        return script[k][min(n, len(script[k]) - 1)]
    return FakeBackend(respond)


def test_tool_loop_feeds_results_back_and_is_bounded():
    call = render_tool_call("calculate", {"expression": "20000 * 1.05 ** 6", "round_to": 2})
    backend = scripted({
        0: [call, "Answer: You will have ${last}."],                       # calls once, then answers
        1: ["Answer: no tool needed."],
        2: [call, call, call, call],                                       # never stops calling
        3: ["<tool_call>{not json}</tool_call>", "Answer: recovered."],   # malformed, then answers
        4: [render_tool_call("calculate", {"expression": "os.system(1)"}), "Answer: x"],
        5: [render_tool_call("calculate", {"expr": "1"}), "Answer: x"],   # wrong argument name
    })
    convs = [[{"role": "user", "content": str(k)}] for k in range(6)]
    res = run_tool_loop(backend, convs, GenParams(max_new_tokens=64), max_steps=3)
    assert res[0].text.startswith("Answer:") and res[0].calls == 1 and res[0].steps == 2
    tool_turn = res[0].turns[1]
    assert tool_turn["role"] == "tool" and tool_turn["content"] == "26,801.91"
    assert res[0].turns[0]["tool_calls"][0]["function"]["name"] == "calculate"
    # the second generation saw the model's call and the tool's result
    second = [c for c in backend.calls if c[0]["content"] == "0"][1]
    assert [m["role"] for m in second] == ["user", "assistant", "tool"]
    assert res[1].calls == 0 and res[1].steps == 1
    assert res[2].finish_reason == "tool_steps" and res[2].steps == 3 and res[2].calls == 3
    assert res[3].text == "Answer: recovered." and len(res[3].errors) == 1
    assert "error: the call is not valid JSON" in res[3].turns[1]["content"]
    assert res[4].errors and "not allowed" in res[4].turns[1]["content"]
    assert res[5].errors and "bad arguments" in res[5].errors[0]
    s = summarize_tool_use([r.to_answer() for r in res])
    assert s["calls"] == 1 + 3 + 1 + 1 + 1 and s["errors"] == 3 and s["stopped_at_step_limit"] == 1
    assert s["used_tools"]["count"] == 5
    json.dumps(s)
