"""The ROUGE-L prefilter must never miss a pair above the threshold."""

from __future__ import annotations

import random

import pytest
from rouge_score import rouge_scorer

from sftflow.generate.similarity import RougeIndex


def test_hand_made_scores():
    ix = RougeIndex(0.7)
    ix.add("Summarize the earnings report in two sentences.")
    ix.add("Write a haiku about the sea.")
    ok, score, arg = ix.is_novel("Summarize the earnings report in three sentences.")
    # 6 of 7 tokens in common, in order: F1 = 2*6/(7+7)
    assert (ok, round(score, 4), arg) == (False, round(12 / 14, 4), 0)
    ok, score, arg = ix.is_novel("Translate the sentence into French.")
    assert ok and arg is None and score == 0.0        # nothing could pass: no ROUGE computed at all
    assert ix.rouge_calls == 1


@pytest.mark.parametrize("seed", [0, 1])
def test_prefilter_agrees_with_brute_force(seed):
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(12)]          # small vocabulary: many near-duplicates
    texts = [" ".join(rng.choice(vocab) for _ in range(rng.randint(3, 12))) for _ in range(150)]
    for i in range(0, 150, 5):                    # and some exact or near copies
        words = texts[i].split()
        words[rng.randrange(len(words))] = rng.choice(vocab)
        texts.append(" ".join(words))
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    ix = RougeIndex(0.7)
    seen: list[str] = []
    for t in texts:
        brute = max((scorer.score(s, t)["rougeL"].fmeasure for s in seen), default=0.0)
        novel, score, _ = ix.is_novel(t)
        assert novel == (brute <= 0.7), t
        if brute > 0.7:
            assert score == pytest.approx(brute)
        ix.add(t)
        seen.append(t)
    # and it is cheaper than the quadratic scan
    assert ix.rouge_calls < len(texts) * (len(texts) - 1) / 2 / 3
