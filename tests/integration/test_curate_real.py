"""Curation on real records nobody here wrote: the T0 sample and the Self-Instruct seed tasks."""

from __future__ import annotations

import json

import pytest

from sftflow.curate.config import CurateConfig, LeakageParams, NearDedupParams
from sftflow.curate.contamination import find_leaks
from sftflow.curate.dedup import NearDedup
from sftflow.curate.filters import words
from sftflow.curate.pipeline import curate
from sftflow.curate.describe import compute_stats
from sftflow.io import load_examples, write_examples
from sftflow.schema import Example


def shingles(text: str, n: int = 5) -> set:
    w = words(text)
    return {tuple(w[i:i + n]) for i in range(len(w) - n + 1)} or {tuple(w)}


def exact_pairs(exs: list[Example], threshold: float) -> set[tuple[int, int]]:
    """Brute-force ground truth: every pair whose exact word-5-gram Jaccard reaches the threshold."""
    sets = [shingles(e.prompt) for e in exs]
    out = set()
    for i in range(len(sets)):
        for j in range(i + 1, len(sets)):
            inter = len(sets[i] & sets[j])
            if inter and inter / (len(sets[i]) + len(sets[j]) - inter) >= threshold:
                out.add((i, j))
    return out


def seed_examples(shared_data) -> list[Example]:
    exs = []
    for line in (shared_data / "self-instruct" / "seed_tasks.jsonl").open(encoding="utf-8"):
        rec = json.loads(line)
        inst = rec["instances"][0]
        prompt = rec["instruction"] + (f"\n\n{inst['input']}" if inst["input"].strip() else "")
        exs.append(Example.single(prompt, inst["output"], metadata={"_source": "self-instruct",
                                                                    "seed_id": rec["id"]}))
    return exs


@pytest.mark.parametrize("pair", [("xsum_DOC_tldr", "xsum_summarize_DOC"),
                                  ("yelp_review_full_format_star", "yelp_review_full_on_a_scale")])
def test_t0_templates_of_one_source_are_near_duplicates(shared_data, pair):
    exs = [e for name in pair for e in load_examples(shared_data / "t0-sample" / f"{name}.jsonl")]
    truth = exact_pairs(exs, 0.7)
    assert len(truth) >= 150          # the same documents under two prompt templates
    res = NearDedup(NearDedupParams()).run(exs)
    removed = {exs.index(e) for e in exs} - {exs.index(e) for e in res.kept}
    # precision: every removed record has a kept partner at exact Jaccard >= 0.7 (checked again here)
    kept_by_id = {e.id: e for e in res.kept}
    for r in res.rejected:
        rep = kept_by_id[r.value["duplicate_of"]]
        a, b = shingles(r.record["messages"][0]["content"]), shingles(rep.prompt)
        assert len(a & b) / len(a | b) == pytest.approx(r.value["similarity"], abs=1e-4)
    # recall against brute force: records a perfect keep-first dedup would remove
    in_pair = {j for _, j in truth}
    assert len(removed & in_pair) / len(in_pair) >= 0.97
    # cluster ids are written to metadata: a removed record's cluster is the kept representative
    for r in res.rejected:
        assert r.record["metadata"]["curate"]["near_dedup"]["cluster"] == r.value["duplicate_of"]
        assert kept_by_id[r.value["duplicate_of"]].metadata["curate"]["near_dedup"]["cluster_size"] >= 2


def test_default_curate_on_t0_explains_every_removal(shared_data, smol_tokenizer, tmp_path):
    files = sorted((shared_data / "t0-sample").glob("*.jsonl"))
    res = curate(files, tmp_path, CurateConfig(stats_embed="tfidf", stats_tasks="keywords"), tokenizer=smol_tokenizer,
                 progress=False)
    n_in = sum(len(f.read_text(encoding="utf-8").splitlines()) for f in files)
    kept = (tmp_path / "kept.jsonl").read_text().splitlines()
    rej = [json.loads(x) for x in (tmp_path / "rejected.jsonl").read_text().splitlines()]
    assert len(kept) + len(rej) == n_in == res.n_input
    steps = {r["step"] for r in rej}
    # labels, True/False, star ratings and one-sentence summaries are what these tasks ask
    # for: the quality filters keep every real record; what goes is the same document
    # under a second template (xsum twice, yelp twice), removed as a near duplicate
    assert steps <= {"exact_dedup", "near_dedup"} and "near_dedup" in steps
    assert all(r["reason"] for r in rej)
    stats = json.loads((tmp_path / "stats.json").read_text())
    assert stats["records"] == len(kept) and stats["near_duplicate_share"] == 0.0
    dups = sum(r["step"] in ("exact_dedup", "near_dedup") for r in rej)
    assert stats["input_duplicate_share"] == round(dups / n_in, 4) and dups > 100
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert len(man["inputs"]) == len(files)


def test_self_instruct_seeds_curate_and_stats(shared_data, smol_tokenizer, tmp_path):
    exs = seed_examples(shared_data)
    write_examples(tmp_path / "seeds.jsonl", exs)
    cfg = CurateConfig.model_validate({"length": {"min_response": 1}, "empty": {"min_response_chars": 1},
                                       "stats": False})
    res = curate([tmp_path / "seeds.jsonl"], tmp_path / "out", cfg, tokenizer=smol_tokenizer, progress=False)
    assert len(res.kept) + len(res.rejected) == 175
    # hand-written, diverse seed tasks: no duplicates of either kind
    assert not [r for r in res.rejected if r.step in ("exact_dedup", "near_dedup")]
    stats = compute_stats(exs, tokenizer=smol_tokenizer, embed_method="tfidf")
    assert len(stats["task_types"]) >= 8 and stats["task_entropy_bits"] > 2.5
    assert stats["embedding_clusters"]["clusters"] > 100


def test_leakage_between_seed_halves_and_copies(shared_data):
    exs = seed_examples(shared_data)
    train, evals = exs[:150], exs[150:]
    assert not find_leaks(train, evals, LeakageParams()).leaks
    leaked = train + [Example.single("Please answer: " + evals[3].prompt, "whatever it is")]
    rep = find_leaks(leaked, evals, LeakageParams())
    assert rep.leaked_train == [150] and rep.leaks[0].eval_id == evals[3].id


def test_recipe_stage_hands_on_kept_file(shared_data, smol_path, tmp_path):
    from sftflow.pipeline.recipe import load_recipe, run_recipe
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"name: t\nmodel: {smol_path}\n"
        f"data:\n  train: [{shared_data / 't0-sample' / 'xsum_DOC_tldr.jsonl'}, "
        f"{shared_data / 't0-sample' / 'xsum_summarize_DOC.jsonl'}]\n  test_fraction: 0.1\n"
        "curate:\n  stats: false\n")
    state = run_recipe(load_recipe(recipe), tmp_path / "run")
    assert state.train_path == tmp_path / "run" / "curate" / "kept.jsonl"
    man = json.loads((tmp_path / "run" / "curate" / "manifest.json").read_text())
    # the held-out split was checked: its documents' other-template twins leak and are removed
    assert man["counts"]["rejected_by_step"]["leakage"] > 0
    assert man["counts"]["input"] == 320   # 400 less a tenth for validation and a tenth for test
    assert state.artifacts["curate"]["kept"] == len(load_examples(state.train_path))


def test_semantic_dedup_and_diversity_on_seeds(shared_data, smol_tokenizer, tmp_path):
    exs = seed_examples(shared_data)[:60]
    # reworded copies of three seed instructions: same meaning, different words
    para = [Example.single("Could you tell me " + exs[i].prompt[0].lower() + exs[i].prompt[1:], exs[i].response)
            for i in (3, 10, 20)]
    write_examples(tmp_path / "in.jsonl", exs + para)
    cfg = CurateConfig.model_validate({
        "steps": ["semantic_dedup", "diversity"], "stats": False,
        "semantic_dedup": {"threshold": 0.85},
        "diversity": {"algorithm": "k_center", "budget": 40, "method": "tfidf"}})
    res = curate([tmp_path / "in.jsonl"], tmp_path / "out", cfg, tokenizer=smol_tokenizer, progress=False)
    sem = [r for r in res.rejected if r.step == "semantic_dedup"]
    assert {r.value["duplicate_of"] for r in sem} >= {exs[i].id for i in (3, 10, 20)}
    assert all(r.value["similarity"] >= 0.85 for r in sem)
    assert len(res.kept) == 40
    assert all("k_center_rank" in e.metadata["curate"]["diversity"] for e in res.kept)
    assert (tmp_path / "out" / "cache" / "embeddings.sqlite").exists()   # resumable
