"""Statistics: entropy, task types, shares, token lengths, files and plots."""

from __future__ import annotations

import json
import math

import pytest

from sftflow.curate.describe import compute_stats, shannon_entropy, write_stats
from sftflow.task_types import task_type
from sftflow.schema import Example


def test_entropy_values():
    assert shannon_entropy({"a": 1, "b": 1}) == 1.0
    assert shannon_entropy({"a": 4}) == 0.0
    assert shannon_entropy({"a": 1, "b": 1, "c": 1, "d": 1}) == 2.0
    assert shannon_entropy({"a": 3, "b": 1}) == pytest.approx(-(0.75 * math.log2(0.75) + 0.25 * math.log2(0.25)))
    assert shannon_entropy({}) == 0.0


@pytest.mark.parametrize("text,kind", [
    ("Write a Python function that reverses a list.", "coding"),
    ("Summarize the following article in one sentence.", "summarization"),
    ("Translate 'good morning' into French.", "translation"),
    ("Is this review positive or negative? Great food!", "classification"),
    ("Write a short poem about autumn.", "creative_writing"),
    ("Who painted the Mona Lisa?", "open_qa"),
    ("Calculate 17 * 23.", "math"),
    ("Hello there", "other"),
    ("x " * 400 + "\n\nTL;DR:", "summarization"),   # the instruction after a long document counts
])
def test_task_type_heuristic(text, kind):
    assert task_type(text) == kind


def test_compute_stats_exact_shares(smol_tokenizer, tmp_path):
    exs = [Example.single("Who painted the Mona Lisa?", "Leonardo da Vinci painted it.", metadata={"_source": "a"}),
           Example.single("who painted the mona lisa", "It was Leonardo.", metadata={"_source": "a"}),
           Example.single("Write a short poem about autumn.", "Leaves fall softly down.", metadata={"_source": "b"}),
           Example(messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                             {"role": "user", "content": "Can you hack a bank?"},
                             {"role": "assistant", "content": "I cannot help with that."}])]
    s = compute_stats(exs, tokenizer=smol_tokenizer, embed_method="tfidf")
    assert s["records"] == 4
    assert s["sources"] == {"a": 2, "b": 1, "unknown": 1}
    assert s["multi_turn_share"] == 0.25 and s["refusal_share"] == 0.25
    assert s["exact_duplicate_share"] == 0.25
    assert s["task_types"] == {"open_qa": 3, "creative_writing": 1}
    assert s["task_entropy_bits"] == round(shannon_entropy({"x": 3, "y": 1}), 4)
    n = len(smol_tokenizer("Who painted the Mona Lisa?", add_special_tokens=False)["input_ids"])
    assert s["instruction_tokens"]["max"] >= n and s["instruction_tokens"]["count"] == 4
    assert s["embedding_clusters"]["sampled"] == 4
    write_stats(s, tmp_path)
    on_disk = json.loads((tmp_path / "stats.json").read_text())
    assert "_lengths" not in on_disk and on_disk["records"] == 4
    for png in ("lengths.png", "tasks.png"):
        assert (tmp_path / png).read_bytes()[:4] == b"\x89PNG"


def test_stats_reuse_length_measurements_without_tokenizer():
    ex = Example.single("a b", "c d")
    ex.metadata["curate"] = {"length": {"instruction_tokens": 7, "response_tokens": 11, "total_tokens": 18}}
    s = compute_stats([ex], tokenizer=object(), embed_method="none")   # a tokenizer call would fail
    assert s["instruction_tokens"]["median"] == 7 and s["response_tokens"]["max"] == 11
    assert "embedding_clusters" not in s
