"""Rewrite validation: numbers, names, length drift and embedding cosine."""

from __future__ import annotations


from sftflow.generate.config import ValidationConfig
from sftflow.generate.validation import (clean_rewrite, entities, length_ratio, lost_entities,
                                         lost_numbers, numbers, validate_rewrites)

SRC = "Compare the P/E ratio of Apple and Microsoft for 2023 using 1,000 shares at $3.50 each."


def test_numbers_compare_as_values():
    assert numbers(SRC) == {"2023", "1000", "3.5"}
    assert lost_numbers(SRC, "For 2023, compare Apple's and Microsoft's P/E with 1000 shares at 3.5 dollars") == []
    assert lost_numbers(SRC, "Compare Apple and Microsoft for 2022 with 1000 shares at $3.50") == ["2023"]


def test_entities_by_capitalisation():
    assert entities(SRC) == {"P/E", "Apple", "Microsoft"}
    assert entities("Buy NVDA. Then sell it.") == {"NVDA"}            # sentence starts are not names
    assert lost_entities(SRC, "compare the p/e of apple and another firm") == ["Microsoft"]


def test_clean_rewrite_and_ratio():
    assert clean_rewrite('Here is the rewritten instruction: "Summarize this."') == "Summarize this."
    assert clean_rewrite("Instruction: Do it") == "Do it"
    assert length_ratio("a b c d", "a b") == 0.5


def test_validate_each_check_in_order():
    cfg = ValidationConfig(embed_method="tfidf", min_cosine=0.3)
    pairs = [
        (SRC, "Using 1,000 shares at $3.50 each, compare the P/E ratio of Apple and Microsoft for 2023."),
        (SRC, ""),
        (SRC, SRC),
        (SRC, "Compare."),
        (SRC, "Compare the P/E ratio of Apple and Microsoft for 2021 using 1,000 shares at $3.50 each."),
        (SRC, "Compare the P/E ratio of Apple and Google for 2023 using 1,000 shares at $3.50 each."),
        ("Explain 5 tax rules", "Describe five levies"),
    ]
    v = validate_rewrites(pairs, cfg)
    assert [x.step for x in v] == [None, "validate:empty", "validate:unchanged", "validate:length_ratio",
                                   "validate:numbers", "validate:entities", "validate:numbers"]
    assert v[0].ok and v[0].measures["cosine"] > 0.3 and v[0].measures["lost_numbers"] == []
    assert v[4].value == ["2023"] and v[5].value == ["Microsoft"]
    assert v[3].value == round(1 / 16, 3)     # 1 word for 16


def test_validate_cosine_threshold():
    cfg = ValidationConfig(embed_method="tfidf", min_cosine=0.5, check_numbers=False, check_entities=False)
    v = validate_rewrites([("tell me how bonds work", "tell me how bonds work please"),
                           ("tell me how bonds work", "write a poem about cats")], cfg)
    assert v[0].ok and not v[1].ok and v[1].step == "validate:cosine"
    assert v[1].value == v[1].measures["cosine"] < 0.5


def test_sbert_separates_paraphrase_from_unrelated():
    cfg = ValidationConfig(embed_method="sbert", min_cosine=0.6, check_numbers=False, check_entities=False)
    v = validate_rewrites([("How do I open a savings account?", "What are the steps to open a savings account?"),
                           ("How do I open a savings account?", "Write a short poem about autumn leaves.")], cfg)
    assert v[0].ok and v[0].measures["cosine"] > 0.8
    assert not v[1].ok and v[1].measures["cosine"] < 0.3
