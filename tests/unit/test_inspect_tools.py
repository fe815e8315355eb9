"""`sftflow inspect` shows reasoning, tool calls and tool results distinctly and counts them."""

import io

import pytest
from _chat_families import CONVERSATIONS, TOOLS, family_tokenizer, templates_dir
from rich.console import Console

from sftflow.chat.inspect_view import show_inspection
from sftflow.schema import Example

pytest.importorskip("trl")


def inspect(examples, tok, tpl, capsys):
    console = Console(file=io.StringIO(), width=200)
    stats = show_inspection(examples, tok, n=5, template=tpl, console=console, color=False)
    return stats, capsys.readouterr().out, console.file.getvalue()


def test_calls_results_and_reasoning_are_marked_and_counted(smol_tokenizer, capsys):
    tpl = (templates_dir() / "qwen3.jinja").read_text()
    tok = family_tokenizer(smol_tokenizer, tpl)
    ex = Example(messages=CONVERSATIONS["reasoning_with_tools"], tools=TOOLS)
    stats, out, table = inspect([ex], tok, tpl, capsys)
    assert "one turn at a time" not in table                    # a tool loop after one question: one sequence
    assert "<result>RESULT sunny</result>" in out                # shown, and never trained
    assert "<reasoning>[[I need the tool.]]</reasoning>" in out
    assert "<call>[[get_weather]]</call>" in out and "<call>[[Paris]]</call>" in out
    assert (stats["reasoning traces"], stats["tool calls"], stats["tool results"]) == (2, 1, 1)
    assert stats["trained result tokens"] == 0
    assert stats["trained call tokens"] >= 2 and stats["trained reasoning tokens"] >= 5
    assert "tool results" in table and "trained call tokens" in table


def test_plain_examples_still_show_as_before(smol_tokenizer, capsys):
    ex = Example.single("Hi", "Hello there")
    stats, out, _ = inspect([ex], smol_tokenizer, None, capsys)
    assert "[[Hello there<|im_end|>]]" in out and "<call>" not in out
    assert stats["tool calls"] == 0 and stats["supervised"] == 3


def test_examples_trained_per_turn_show_one_block_per_turn(smol_tokenizer, capsys):
    tpl = (templates_dir() / "qwen3.jinja").read_text()
    tok = family_tokenizer(smol_tokenizer, tpl)
    stats, out, table = inspect([Example(messages=CONVERSATIONS["reasoning_every_turn"])], tok, tpl, capsys)
    assert "(turn 1, trained one turn at a time)" in table and "(turn 3, trained one turn at a time)" in table
    assert out.count("<reasoning>[[") == 2 and stats["reasoning traces"] == 2
