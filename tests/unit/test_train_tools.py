"""Training on tool-call and reasoning records: a tiny random model trains, and a batch's
supervised tokens decode to exactly the calls, traces and answers."""

import json
import math

import pytest
from _chat_families import TOOLS, family_tokenizer, templates_dir

from sftflow.chat import encode_many
from sftflow.io import read_examples, write_examples
from sftflow.schema import Example
from sftflow.train.collate import PadCollator
from sftflow.train.config import TrainConfig
from sftflow.train.sft import train

pytest.importorskip("trl")
CITIES = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Hanoi", "Dakar"]


def record(k: int) -> Example:
    city = CITIES[k % len(CITIES)]
    return Example(tools=TOOLS, messages=[
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "reasoning_content": f"Look up {city}.", "content": None, "tool_calls": [
            {"id": f"c{k}", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]},
        {"role": "tool", "tool_call_id": f"c{k}", "content": f"TOOLSAYS {k} degrees"},
        {"role": "assistant", "reasoning_content": "Report it.", "content": f"{city}: {k} degrees."}])


def expected_supervised(k: int) -> str:
    city = CITIES[k % len(CITIES)]
    return (f'<think>\nLook up {city}.\n</think>\n\n<tool_call>\n{{"name": "get_weather", "arguments": '
            f'{{"city": "{city}"}}}}\n</tool_call><|im_end|>'
            f"<think>\nReport it.\n</think>\n\n{city}: {k} degrees.<|im_end|>")


@pytest.fixture(scope="module")
def qwen3_tiny(smol_tokenizer, tmp_path_factory):
    from conftest import build_tiny_model
    tpl = (templates_dir() / "qwen3.jinja").read_text()
    tok = family_tokenizer(smol_tokenizer, tpl)
    tok.chat_template = tpl
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-qwen3"), tok)), tok


def test_batch_supervises_exactly_calls_reasoning_and_answers(qwen3_tiny):
    _, tok = qwen3_tiny
    encoded, skipped = encode_many([record(k) for k in range(4)], tok)
    assert not skipped and len(encoded) == 4
    batch = PadCollator(pad_token_id=tok.pad_token_id)([e.to_dict() for e in encoded])
    for k, (ids, labels) in enumerate(zip(batch["input_ids"], batch["labels"])):
        sup = tok.decode([int(t) for t, lab in zip(ids, labels) if lab != -100])
        assert sup == expected_supervised(k)
        assert "TOOLSAYS" in tok.decode(ids) and "TOOLSAYS" not in sup        # the result is context only


def test_tiny_model_trains_on_tool_records(qwen3_tiny, tmp_path):
    model_dir, _ = qwen3_tiny
    write_examples(tmp_path / "train.jsonl", [record(k) for k in range(12)])
    write_examples(tmp_path / "eval.jsonl", [record(k) for k in range(12, 16)])
    cfg = TrainConfig(model=model_dir, data=[str(tmp_path / "train.jsonl")], eval=[str(tmp_path / "eval.jsonl")],
                      max_steps=3, logging_steps=1, batch_size=4, learning_rate=5e-2, lora_r=4, lora_alpha=8)
    res = train(cfg, out_dir=tmp_path / "run", quiet=True)
    assert res.steps == 3
    losses = [json.loads(l)["loss"] for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
              if "loss" in json.loads(l)]
    assert losses and all(math.isfinite(x) for x in losses)
    kept = read_examples(tmp_path / "run" / "data" / "train.jsonl").examples     # written with tools
    assert kept[0].tools == TOOLS and kept[0].messages[1]["tool_calls"][0]["function"]["name"] == "get_weather"


def test_scoring_sees_the_tools_the_record_offers(qwen3_tiny):
    from sftflow.models import load_model
    from sftflow.nll import LossOptions, example_losses
    model_dir, tok = qwen3_tiny
    model = load_model(model_dir)
    with_tools, without = record(1), Example(messages=record(1).messages)
    a, b = example_losses(model, tok, [with_tools, without], LossOptions(train_on="last"))
    assert a.n_tokens == b.n_tokens and a.length > b.length        # the tools block is in the context
