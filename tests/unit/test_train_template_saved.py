"""A run that trained with a template other than the tokenizer's own saves that template into
the output tokenizer, so inference renders what training rendered; train_result.json records
how tool calls were written."""

import json

from _chat_families import CONVERSATIONS, TOOLS

from sftflow.io import write_examples
from sftflow.schema import Example
from sftflow.tools.template import TOOL_CHATML
from sftflow.train.config import TrainConfig
from sftflow.train.model_setup import with_training_template
from sftflow.train.sft import train


def test_output_tokenizer_carries_the_template_training_used(tiny_model_dir, tmp_path):
    from transformers import AutoTokenizer
    (tmp_path / "tool_chatml.jinja").write_text(TOOL_CHATML)
    records = [Example(messages=CONVERSATIONS["tool_round_trip"], tools=TOOLS, metadata={"k": k}) for k in range(6)]
    write_examples(tmp_path / "train.jsonl", records)
    write_examples(tmp_path / "eval.jsonl", records[:2])
    cfg = TrainConfig(model=tiny_model_dir, data=[str(tmp_path / "train.jsonl")],
                      eval=[str(tmp_path / "eval.jsonl")], template=str(tmp_path / "tool_chatml.jinja"),
                      max_steps=1, batch_size=2, lora_r=2, lora_alpha=4)
    res = train(cfg, out_dir=tmp_path / "run", quiet=True)
    saved = AutoTokenizer.from_pretrained(tmp_path / "run")
    assert AutoTokenizer.from_pretrained(tiny_model_dir).chat_template != TOOL_CHATML
    assert saved.chat_template == TOOL_CHATML
    recorded = json.loads((tmp_path / "run" / "train_result.json").read_text())["extra"]["chat_formats"]
    assert recorded == res.extra["chat_formats"] == {"tool_format": "auto", "tools": {"native": 6}}


def test_the_tokenizers_own_template_is_left_alone(smol_tokenizer):
    own = smol_tokenizer.chat_template
    assert with_training_template(smol_tokenizer, None).chat_template == own
