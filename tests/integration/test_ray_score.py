"""score on a 2-CPU Ray cluster: the local scores (within 1e-5), and a rerun computes nothing."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from sftflow.engine import EngineConfig  # noqa: E402
from sftflow.io import write_examples  # noqa: E402
from sftflow.schema import Example  # noqa: E402
from sftflow.select.config import ScoreConfig, SelectConfig  # noqa: E402
from sftflow.select.pipeline import score_file  # noqa: E402


def _pool(tmp_path):
    exs = [Example.single(f"Question {i}: what is {i} plus {i * 3}?" + " Explain." * (i % 5),
                          f"Answer: {4 * i}." + " Because adding works so." * (i % 4)) for i in range(24)]
    path = tmp_path / "pool.jsonl"
    write_examples(path, exs)
    return path


def _score(path, out, model_dir, engine: str, cache):
    cfg = SelectConfig(score=ScoreConfig(model=model_dir, scores=["ppl", "ifd"], precision="fp32",
                                         max_length=256, batch_size=4, cache=str(cache),
                                         engine=EngineConfig(kind=engine, batch_size=6, actors=2)))
    report = score_file([path], out, cfg, progress=False)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    return report, rows


def test_ray_scores_equal_local_and_a_rerun_computes_nothing(cluster, tmp_path, tiny_model_dir):
    path = _pool(tmp_path)
    local_report, local = _score(path, tmp_path / "local.jsonl", tiny_model_dir, "local", tmp_path / "a.sqlite")
    ray_report, on_ray = _score(path, tmp_path / "ray.jsonl", tiny_model_dir, "ray", tmp_path / "b.sqlite")
    assert [r["id"] for r in on_ray] == [r["id"] for r in local]
    for a, b in zip(local, on_ray):
        sa, sb = a["metadata"]["scores"], b["metadata"]["scores"]
        for key in ("response_loss", "response_loss_alone", "ppl", "ifd"):
            assert sb[key] == pytest.approx(sa[key], abs=1e-5, rel=1e-5), (a["id"], key)
        assert sb["model"] == sa["model"] and sb["response_tokens"] == sa["response_tokens"]
        assert sb.get("flags") == sa.get("flags")
    # 24 conversations and 24 without their instruction: each computed once, by some actor.
    assert ray_report["scores"]["losses_computed"] == local_report["scores"]["losses_computed"] == 48
    again, rows = _score(path, tmp_path / "ray2.jsonl", tiny_model_dir, "ray", tmp_path / "b.sqlite")
    assert again["scores"]["losses_computed"] == 0
    assert [r["metadata"]["scores"]["ifd"] for r in rows] == [r["metadata"]["scores"]["ifd"] for r in on_ray]


def test_a_run_after_a_killed_one_skips_the_finished_shards(cluster, tmp_path, tiny_model_dir, monkeypatch):
    import ray.cloudpickle
    import ray_pool

    from sftflow.select import ray_score

    ray.cloudpickle.register_pickle_by_value(ray_pool)   # the workers cannot import the test folder
    path = _pool(tmp_path)
    cfg = SelectConfig(score=ScoreConfig(model=tiny_model_dir, scores=["ppl", "ifd"], precision="fp32",
                                         max_length=256, batch_size=4, cache=str(tmp_path / "c.sqlite"),
                                         use_cache=False, engine=EngineConfig(kind="ray", batch_size=6, actors=1)))
    real = ray_score.score_on_ray
    monkeypatch.setattr(ray_score, "score_on_ray",
                        lambda *a, **kw: real(*a, worker=ray_pool.dying_score_worker(3), **kw))
    with pytest.raises(Exception, match="killed at shard 3"):
        score_file([path], tmp_path / "killed.jsonl", cfg, progress=False)
    parts = ray_score.parts_dir(cfg.score)
    finished = len(list(parts.glob("*.json")))
    assert 1 <= finished < 4, finished          # 24 records in shards of 6: some written, not all
    monkeypatch.setattr(ray_score, "score_on_ray", real)
    report = score_file([path], tmp_path / "resumed.jsonl", cfg, progress=False)["scores"]
    # No score cache here: all that is not recomputed came from the finished shards.
    assert report["engine"]["resumed_shards"] == finished
    assert report["losses_computed"] == 2 * 6 * (4 - finished)
    assert not list(parts.glob("*.json")), "a finished run leaves its checkpoints behind"
    _, local = _score(path, tmp_path / "local.jsonl", tiny_model_dir, "local", tmp_path / "l.sqlite")
    rows = [json.loads(line) for line in (tmp_path / "resumed.jsonl").read_text().splitlines()]
    for a, b in zip(local, rows):
        assert b["metadata"]["scores"]["ifd"] == pytest.approx(a["metadata"]["scores"]["ifd"], abs=1e-5)
