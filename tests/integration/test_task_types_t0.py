"""Task types measured on real records of known type: the T0 sample's templates."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest

from sftflow.task_types import classify_task_types, load_prototypes, task_type_names

# Each T0 template asks one kind of task; the prototypes were written for sftflow, none
# is a T0 prompt.
T0_TYPES = {"ag_news_classify": "classification", "wiki_qa_exercise": "classification",
            "yelp_review_full_format_star": "classification", "yelp_review_full_on_a_scale": "classification",
            "xsum_DOC_tldr": "summarization", "xsum_summarize_DOC": "summarization",
            "wiki_qa_Jeopardy_style": "question_generation"}


def t0(shared_data, per_template: int | None = None):
    """Prompts and their template's type; ``per_template`` takes a seeded sample of each
    (the embedder runs at a few hundred sentences a second on a shared CPU)."""
    texts, gold = [], []
    for f in sorted((shared_data / "t0-sample").glob("*.jsonl")):
        rows = [json.loads(line)["prompt"] for line in f.open(encoding="utf-8")]
        if per_template is not None and len(rows) > per_template:
            rows = random.Random(f.stem).sample(rows, per_template)
        texts += rows
        gold += [T0_TYPES[f.stem]] * len(rows)
    return texts, gold


def accuracy(pred, gold):
    return sum(p == g for p, g in zip(pred, gold)) / len(gold)


def test_prototype_set_covers_every_type_and_is_not_t0(shared_data):
    protos = load_prototypes()
    per = Counter(t for t, _ in protos)
    assert set(T0_TYPES.values()) <= set(per) and min(per.values()) >= 6
    texts, _ = t0(shared_data)
    assert not {p for _, p in protos} & set(texts)
    assert "other" in task_type_names()


def test_embedding_nearest_prototype_accuracy_on_t0(shared_data, capsys):
    texts, gold = t0(shared_data, per_template=25)
    acc = {m: accuracy(classify_task_types(texts, method=m), gold) for m in ("sbert", "tfidf", "keywords")}
    with capsys.disabled():
        print(f"\ntask-type accuracy on {len(gold)} T0 records (25 per template): " +
              ", ".join(f"{m} {a:.1%}" for m, a in acc.items()))
    assert acc["sbert"] >= 0.90
    assert acc["sbert"] > acc["keywords"]


@pytest.mark.parametrize("prompt,kind", [
    ("Write a Python function that returns the n-th Fibonacci number.", "coding"),
    ("Translate into German: the weather is lovely today.", "translation"),
    ("What is 12 times 14?", "math"),
    ("Give me five ideas for a rainy afternoon with kids.", "brainstorming"),
])
def test_obvious_instructions(prompt, kind):
    assert classify_task_types([prompt])[0] == kind
