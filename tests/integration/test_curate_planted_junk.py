"""Default curation on a real mix with planted junk: the real records stay, the junk goes.

The T0 sample (labels, True/False, star ratings, extracted questions, one-sentence
summaries) gets junk of six kinds planted inside its own files, each junk record made
from a real one: empty, punctuation-only, degenerate repetition, truncated mid-sentence,
chat-template markers leaking into the answer, and the prompt echoed back. ``curate``
runs with no options. A real record counts as kept unless a quality filter rejects it:
the sample holds each xsum and yelp document under two templates, and removing the
second copy is the dedup steps' job (counted and printed apart).
"""

from __future__ import annotations

import json
import random
from collections import Counter

from sftflow.curate.config import CurateConfig
from sftflow.curate.pipeline import curate

DEDUP = ("exact_dedup", "near_dedup")
KINDS = ("empty", "punctuation", "repetition", "truncated", "template_marker", "echo")
PER_KIND = 20


def plant(kind: str, rec: dict, rng: random.Random) -> dict:
    prompt, answer = rec["prompt"], rec["completion"].replace("<|endoftext|>", "")
    if kind == "empty":
        bad = rng.choice(["", " ", "\n"])
    elif kind == "punctuation":
        bad = rng.choice(["...", "?!", " - ", "***", ". . .", "—"])
    elif kind == "repetition":
        ws = (answer if len(answer.split()) >= 3 else prompt).split()
        start = rng.randrange(max(1, len(ws) - 3))
        bad = " ".join(ws[start:start + rng.randint(1, 3)] * rng.randint(12, 30))
    elif kind == "truncated":
        cut = int(len(answer) * rng.uniform(0.35, 0.8))
        bad = answer[:cut].rstrip(" .,;")
    elif kind == "template_marker":
        bad = rng.choice([f"{answer}<|im_end|>\n<|im_start|>user\nThanks", f"<|im_start|>assistant\n{answer}",
                          f"[INST] {answer} [/INST]", f"{answer}\n### Human: and another one?",
                          f"<|eot_id|>{answer}"])
    else:  # echo
        bad = prompt if rng.random() < 0.5 else prompt[: int(len(prompt) * rng.uniform(0.85, 1.0))]
    return {"prompt": prompt, "completion": bad + "<|endoftext|>", "planted": kind}


def test_defaults_keep_real_records_and_reject_planted_junk(shared_data, smol_tokenizer, tmp_path, capsys):
    rng = random.Random(0)
    files = {f.name: [json.loads(x) for x in f.open(encoding="utf-8")]
             for f in sorted((shared_data / "t0-sample").glob("*.jsonl"))}
    long_answers = [(n, r) for n, rows in files.items() for r in rows if len(r["completion"].split()) >= 8]
    any_answers = [(n, r) for n, rows in files.items() for r in rows]
    n_real = sum(len(rows) for rows in files.values())
    for kind in KINDS:
        pool = long_answers if kind in ("truncated", "repetition") else any_answers
        for name, rec in rng.sample(pool, PER_KIND):
            files[name].append(plant(kind, rec, rng))
    paths = []
    for name, rows in files.items():
        rng.shuffle(rows)
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        paths.append(tmp_path / name)

    res = curate(paths, tmp_path / "out", CurateConfig(stats=False), tokenizer=smol_tokenizer, progress=False)

    n_in = n_real + PER_KIND * len(KINDS)
    assert len(res.kept) + len(res.rejected) == n_in == res.n_input          # every record accounted for
    kept_lines = (tmp_path / "out" / "kept.jsonl").read_text().splitlines()
    rej_lines = (tmp_path / "out" / "rejected.jsonl").read_text().splitlines()
    assert len(kept_lines) + len(rej_lines) == n_in

    def planted(meta):
        return meta.get("planted")
    real_quality_rej = [r for r in res.rejected if not planted(r.record["metadata"]) and r.step not in DEDUP]
    real_dup = [r for r in res.rejected if not planted(r.record["metadata"]) and r.step in DEDUP]
    junk_kept = Counter(planted(e.metadata) for e in res.kept if planted(e.metadata))
    junk_caught = Counter(planted(r.record["metadata"]) for r in res.rejected
                          if planted(r.record["metadata"]) and r.step not in DEDUP)
    junk_by_dedup = Counter(planted(r.record["metadata"]) for r in res.rejected
                            if planted(r.record["metadata"]) and r.step in DEDUP)
    real_kept_share = 1 - len(real_quality_rej) / n_real
    junk_share = sum(junk_caught.values()) / (PER_KIND * len(KINDS))
    per_kind = {k: junk_caught[k] / PER_KIND for k in KINDS}
    with capsys.disabled():
        print(f"\nplanted-junk curate on T0: {n_in} in, {len(res.kept)} kept, {len(res.rejected)} rejected")
        print(f"  real records kept by the quality filters: {real_kept_share:.1%} "
              f"({n_real - len(real_quality_rej)}/{n_real}); removed as the other template's duplicate: "
              f"{len(real_dup)}")
        print(f"  junk rejected by quality filters: {junk_share:.1%}; per kind: "
              + ", ".join(f"{k} {v:.0%}" for k, v in per_kind.items()))
        print(f"  junk kept: {dict(junk_kept)}; junk removed only by dedup: {dict(junk_by_dedup)}")
        if real_quality_rej:
            print("  real records rejected:", Counter(r.step for r in real_quality_rej))
    assert real_kept_share >= 0.95
    assert junk_share >= 0.90
    assert min(per_kind.values()) >= 0.75, per_kind
    # the real records that go are second copies of a document, never a filter's mistake
    # (at most one per document shown under two templates: 200 xsum and 200 yelp pairs)
    assert len(real_dup) <= 400
