import json
from collections import Counter

import pytest

from sftflow.evaluate.choice import (ChoiceItem, build_context, forgetting, load_task, read_jsonl_task,
                                     score_items)
from sftflow.schema import RecordError

ITEMS = [
    ChoiceItem("What is the capital of France?", ["Paris", "Rome", "Berlin", "Madrid"], 0),
    ChoiceItem("What is 2 + 2?", ["4", "22", "five", "3"], 0),
    ChoiceItem("Which word means happy?", ["joyful", "sad", "café au lait", "tired"], 2),
    ChoiceItem("Which is a colour?", ["blue", "naïve élève", "run", "quickly"], 0),
    ChoiceItem("Which animal barks?", ["dog", "cat", "fish", "bird"], 0),
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    from sftflow.models import load_model, load_tokenizer
    return load_model(tiny_model_dir), load_tokenizer(tiny_model_dir)


def direct_loglik(model, tok, context: str, continuation: str) -> float:
    """One sequence at a time, no padding: the plain transformers computation."""
    import torch
    whole = tok(context + continuation, add_special_tokens=False)["input_ids"]
    n_ctx = len(tok(context, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logits = model(torch.tensor([whole])).logits[0].float()
    logp = torch.log_softmax(logits, -1)
    return float(sum(logp[i - 1, whole[i]] for i in range(n_ctx, len(whole))))


@pytest.mark.parametrize("k,share", [(0, True), (2, True), (2, False)])
def test_acc_and_acc_norm_equal_direct_transformers_computation(tiny, k, share):
    import numpy as np
    model, tok = tiny
    res = score_items(model, tok, ITEMS, num_fewshot=k, seed=3, batch_size=3, share_context=share)
    hits = Counter()
    for i, it in enumerate(ITEMS):
        ctx = build_context(ITEMS, i, k, 3)
        ll = np.array([direct_loglik(model, tok, ctx, " " + c) for c in it.choices])
        assert res["items"][i]["loglik"] == pytest.approx(list(ll), abs=2e-3)
        hits["acc"] += int(np.argmax(ll) == it.answer)
        hits["acc_norm"] += int(np.argmax(ll / np.array([len(c) for c in it.choices])) == it.answer)
        hits["acc_bytes"] += int(np.argmax(ll / np.array([len(c.encode()) for c in it.choices])) == it.answer)
    for key in ("acc", "acc_norm", "acc_bytes"):
        assert res[key] == hits[key] / len(ITEMS), key
    assert res["n"] == len(ITEMS)


def test_fewshot_context_is_seeded_and_excludes_the_question():
    ctx = build_context(ITEMS, 1, 2, seed=0)
    assert ctx.endswith("Question: What is 2 + 2?\nAnswer:")
    assert ctx.count("Question:") == 3 and "2 + 2?\nAnswer: 4" not in ctx
    assert ctx == build_context(ITEMS, 1, 2, seed=0)


def test_task_file_formats_and_errors(tmp_path):
    f = tmp_path / "t.jsonl"
    f.write_text("\n".join(json.dumps(r) for r in [
        {"question": "a?", "choices": ["x", "y"], "answer": 1},
        {"question": "b?", "choices": ["x", "y", "z"], "answer": "z"},
        {"question": "c?", "choices": ["x", "y"], "answer": "B"}]) + "\n")
    assert [it.answer for it in read_jsonl_task(f)] == [1, 2, 1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "a?", "choices": ["x", "y"], "answer": 0}) + "\n"
                   + json.dumps({"question": "b?", "choices": ["x", "y"], "answer": 5}) + "\n")
    with pytest.raises(RecordError, match=r"bad.jsonl: line 2: field 'answer'.*out of range"):
        read_jsonl_task(bad)
    with pytest.raises(RecordError, match="no such task"):
        load_task(str(tmp_path / "missing.jsonl"))


def test_shipped_general_knowledge_task():
    name, items = load_task("general_knowledge")
    assert name == "general_knowledge" and len(items) >= 200
    assert all(len(it.choices) == 4 and len(set(it.choices)) == 4 for it in items)
    from sftflow.evaluate.choice import shipped_task_path
    cats = Counter(json.loads(line)["category"] for line in shipped_task_path(name).read_text().splitlines())
    assert set(cats) == {"science", "history", "geography", "arithmetic", "language"}
    assert min(cats.values()) >= 35
    # answers are spread over positions, so a position bias cannot score well
    assert max(Counter(it.answer for it in items).values()) < 0.4 * len(items)


def test_forgetting_thresholds():
    base = {"t1": {"acc": 0.60}, "t2": {"acc": 0.50}, "t3": {"acc": 0.40}}
    tuned = {"t1": {"acc": 0.59}, "t2": {"acc": 0.47}, "t3": {"acc": 0.34}}
    fg = forgetting(base, tuned)
    assert {k: v["status"] for k, v in fg["tasks"].items()} == {"t1": "pass", "t2": "warn", "t3": "fail"}
    assert fg["status"] == "fail"
    assert fg["tasks"]["t2"]["delta_points"] == pytest.approx(-3.0)
    assert forgetting(base, tuned, warn_drop=10, fail_drop=20)["status"] == "pass"


def test_loglikelihoods_match_lm_evaluation_harness(tiny):
    """lm-evaluation-harness (a dev dependency, so this runs in ``make test``) scores the
    same (context, continuation) pairs to the same numbers with its HFLM."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM
    model, tok = tiny
    res = score_items(model, tok, ITEMS, num_fewshot=1, seed=0, batch_size=4)
    pairs = [(build_context(ITEMS, i, 1, 0), " " + c) for i, it in enumerate(ITEMS) for c in it.choices]
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=4, device="cpu")
    peer = [ll for ll, _ in lm.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=p, idx=i)
                                             for i, p in enumerate(pairs)], disable_tqdm=True)]
    ours = [x for r in res["items"] for x in r["loglik"]]
    assert ours == pytest.approx(peer, abs=2e-3)


@pytest.mark.slow
def test_lm_eval_task_with_local_data(tmp_path, tiny):
    """An lm-evaluation-harness task over a local JSON file loads offline and scores."""
    data = tmp_path / "data.jsonl"
    data.write_text('{"q": "Capital of France?", "opts": ["Paris", "Rome", "Oslo"], "gold": 0}\n'
                    '{"q": "2+2?", "opts": ["5", "4", "22"], "gold": 1}\n')
    (tmp_path / "mini_mc.yaml").write_text(
        "task: mini_mc\ndataset_path: json\ndataset_kwargs:\n  data_files:\n"
        f"    test: {data}\ntest_split: test\noutput_type: multiple_choice\n"
        'doc_to_text: "Question: {{q}}\\nAnswer:"\ndoc_to_choice: "{{opts}}"\ndoc_to_target: gold\n'
        "metric_list:\n  - metric: acc\n    higher_is_better: true\n")
    name, items = load_task("lm_eval:mini_mc", [str(tmp_path)])
    assert name == "lm_eval:mini_mc"
    assert [(it.prompt(), it.choices, it.answer) for it in items] == [
        ("Question: Capital of France?\nAnswer:", ["Paris", "Rome", "Oslo"], 0),
        ("Question: 2+2?\nAnswer:", ["5", "4", "22"], 1)]
    res = score_items(*tiny, items, num_fewshot=1)
    assert res["n"] == 2 and 0 <= res["acc"] <= 1
