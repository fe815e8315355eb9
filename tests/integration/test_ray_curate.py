"""curate on a 2-CPU Ray cluster writes the files a local run writes, byte for byte."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ray = pytest.importorskip("ray")

from ray_pool import STEPS, pool, write_shards  # noqa: E402

from sftflow.curate.config import CurateConfig  # noqa: E402
from sftflow.curate.pipeline import curate  # noqa: E402
from sftflow.engine import EngineConfig  # noqa: E402

@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    return write_shards(pool(), tmp_path_factory.mktemp("pool"), shards=3)


def _config(engine: str, **near) -> CurateConfig:
    return CurateConfig(steps=STEPS, stats=False, plots=False, refusal={"drop": True},
                        near_dedup={"threshold": 0.6, **near},
                        engine=EngineConfig(kind=engine, batch_size=64))


def _run(shards, out, engine: str, **near):
    return curate(shards, out, _config(engine, **near), progress=False)


def _counts(out):
    counts = json.loads((out / "manifest.json").read_text())["counts"]
    for s in counts["steps"]:
        s.pop("seconds")
    return counts


@pytest.mark.parametrize("keep", ["first", "longest_response"])
def test_ray_curate_writes_the_local_files(cluster, shards, tmp_path, keep):
    local = _run(shards, tmp_path / "local", "local", keep=keep)
    on_ray = _run(shards, tmp_path / "ray", "ray", keep=keep)
    by_step = {s["step"]: s["rejected"] for s in _counts(tmp_path / "local")["steps"]}
    # The pool exercises every kind of removal, including near-dup chains.
    assert by_step["exact_dedup"] > 0 and by_step["near_dedup"] > 0 and by_step["refusal"] > 0
    assert any("group" in r.reason for r in local.rejected)
    assert [e.id for e in on_ray.kept] == [e.id for e in local.kept]
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert _counts(tmp_path / "ray") == _counts(tmp_path / "local")
    assert len(on_ray.kept) + len(on_ray.rejected) == on_ray.n_input


def test_ray_keeps_the_highest_scored_record_of_each_cluster_as_locally(cluster, tmp_path):
    import random
    rng = random.Random(0)
    exs = pool()
    for ex in exs:
        ex.metadata.setdefault("scores", {})["q"] = round(rng.random(), 6)
    scored = write_shards(exs, tmp_path / "scored", shards=3)
    near = {"keep": "highest_score", "score_key": "scores.q"}
    cfg = {e: CurateConfig(steps=["near_dedup"], stats=False, plots=False, near_dedup={"threshold": 0.6, **near},
                           engine=EngineConfig(kind=e, batch_size=64)) for e in ("local", "ray")}
    local = curate(scored, tmp_path / "local", cfg["local"], progress=False)
    curate(scored, tmp_path / "ray", cfg["ray"], progress=False)
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    # The policy was applied, not the first-seen rule: some cluster keeps a later, better-scored record.
    score = {e.id: e.metadata["scores"]["q"] for e in exs}
    first_seen = {e.id: i for i, e in enumerate(exs)}
    dups = [(r.record["id"], r.value["duplicate_of"]) for r in local.rejected]
    assert dups and all(score[kept] >= score[dup] for dup, kept in dups)
    assert any(first_seen[kept] > first_seen[dup] for dup, kept in dups)


def test_ray_curate_reads_a_bad_line_as_a_read_reject(cluster, shards, tmp_path):
    bad = shards[0].parent / "bad"
    bad.mkdir(exist_ok=True)
    (bad / "part-00000.jsonl").write_text(shards[0].read_text() + "{not json\n")
    (bad / "part-00001.jsonl").write_text(shards[1].read_text())
    # The local reader takes the files; the Ray one the folder of shards (or a glob).
    local = _run(sorted(bad.glob("*.jsonl")), tmp_path / "local", "local")
    on_ray = _run([bad], tmp_path / "ray", "ray")
    assert [r.reason for r in on_ray.rejected if r.step == "read"] == \
        [r.reason for r in local.rejected if r.step == "read"]
    assert (tmp_path / "ray" / "rejected.jsonl").read_bytes() == (tmp_path / "local" / "rejected.jsonl").read_bytes()


def test_local_curate_does_not_import_ray(shards, tmp_path):
    code = ("import sys; from sftflow.curate.pipeline import curate; from sftflow.curate.config import "
            f"CurateConfig; curate({[str(p) for p in shards]!r}, {str(tmp_path)!r}, "
            "CurateConfig(stats=False, plots=False, steps=['empty', 'exact_dedup', 'near_dedup']), "
            "progress=False); assert 'ray' not in sys.modules, 'ray was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cli_engine_flags_reach_the_curate_config(cluster, shards, tmp_path):
    from typer.testing import CliRunner

    from sftflow.cli import app
    out = tmp_path / "cli"
    res = CliRunner().invoke(app, ["curate", *map(str, shards), "-o", str(out), "--engine", "ray",
                                   "--engine-batch-size", "64", "--no-stats", "--no-plots", "--quiet",
                                   "--set", "steps=[empty,exact_dedup]"])
    assert res.exit_code == 0, res.output
    engine = json.loads((out / "manifest.json").read_text())["config"]["engine"]
    assert engine["kind"] == "ray" and engine["batch_size"] == 64


def test_a_recipe_engine_reaches_every_data_stage_unless_a_stage_names_its_own():
    from sftflow.pipeline.recipe import Recipe
    r = Recipe(engine={"kind": "ray", "address": "auto"}, curate={}, generate={},
               select={"score": {"engine": {"kind": "local"}}})
    assert r.curate.engine.kind == "ray" and r.curate.engine.address == "auto"
    assert r.generate.engine.kind == "ray"
    assert r.select.score.engine.kind == "local"
    assert Recipe(curate={}).curate.engine.kind == "local"


def test_a_worker_killed_mid_run_loses_and_doubles_nothing(cluster, shards, tmp_path, monkeypatch):
    import ray.cloudpickle

    import ray_pool
    from sftflow.curate import pipeline

    ray.cloudpickle.register_pickle_by_value(ray_pool)   # the workers cannot import the test folder
    marker = tmp_path / "died"
    real = pipeline.build_steps

    def with_a_dying_worker(cfg, **kw):
        steps = real(cfg, **kw)
        return [ray_pool.DyingEmptyFilter(cfg.empty, str(marker))] + steps[1:]

    _run(shards, tmp_path / "local", "local")
    monkeypatch.setattr(pipeline, "build_steps", with_a_dying_worker)
    on_ray = _run(shards, tmp_path / "ray", "ray")
    assert marker.exists(), "no worker died: the test did not test a retry"
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name
    assert len(on_ray.kept) + len(on_ray.rejected) == on_ray.n_input


def test_semantic_dedup_embeds_on_actors_and_finds_the_local_duplicates(cluster, shards, tmp_path):
    def run(engine):
        cfg = CurateConfig(steps=["semantic_dedup"], stats=False, plots=False,
                           semantic_dedup={"threshold": 0.9},
                           engine=EngineConfig(kind=engine, batch_size=256, actors=1))
        res = curate(shards, tmp_path / engine, cfg, progress=False)
        return res, {r.record["id"]: r.value for r in res.rejected}

    local, local_dups = run("local")
    on_ray, ray_dups = run("ray")
    assert local_dups, "the pool has no semantic duplicates at 0.9: the test would test nothing"
    assert [e.id for e in on_ray.kept] == [e.id for e in local.kept]
    assert {k: v["duplicate_of"] for k, v in ray_dups.items()} == {k: v["duplicate_of"] for k, v in local_dups.items()}
    for k, v in local_dups.items():    # float32 vectors from other batches: equal to rounding
        assert ray_dups[k]["similarity"] == pytest.approx(v["similarity"], abs=1e-3)
    first = json.loads((tmp_path / "ray" / "manifest.json").read_text())["engine"]
    assert first["embedded"] > 0
    # A rerun into the same folder reads every vector back from the run's embedding cache.
    again, again_dups = run("ray")
    assert json.loads((tmp_path / "ray" / "manifest.json").read_text())["engine"]["embedded"] == 0
    assert [e.id for e in again.kept] == [e.id for e in on_ray.kept] and again_dups.keys() == ray_dups.keys()


def test_ray_curate_without_collecting_counts_what_it_wrote(cluster, shards, tmp_path):
    local = curate(shards, tmp_path / "local", _config("local"), progress=False, collect=False)
    on_ray = curate(shards, tmp_path / "ray", _config("ray"), progress=False, collect=False)
    assert not isinstance(on_ray.kept, list), "the Ray run collected its records into the driver"
    for name, count in (("kept.jsonl", on_ray.kept_count), ("rejected.jsonl", on_ray.rejected_count)):
        assert count == len((tmp_path / "ray" / name).read_text().splitlines()) > 0, name
    assert (on_ray.kept_count, on_ray.rejected_count, on_ray.n_input) == \
        (local.kept_count, local.rejected_count, local.n_input)


def test_end_of_turn_on_ray_actors_judges_as_locally(cluster, shards, tmp_path, sharp_model_dir):
    # One model load per actor; the same records rejected for the same reasons as locally,
    # and every probability within float noise of the local one (other batches, other padding).
    def run(engine, min_prob, out):
        cfg = CurateConfig(steps=["end_of_turn"], stats=False, plots=False,
                           end_of_turn={"model": sharp_model_dir, "min_prob": min_prob, "batch_size": 4},
                           engine=EngineConfig(kind=engine, batch_size=64, actors=2))
        res = curate(shards, tmp_path / out, cfg, progress=False)
        probs = {e.id: e.metadata["curate"]["end_of_turn"]["eot_prob"] for e in res.kept}
        probs.update({r.record["id"]: r.record["metadata"]["curate"]["end_of_turn"]["eot_prob"]
                      for r in res.rejected})
        return res, probs

    # The threshold is the median probability, so about half the records go.
    _, first = run("local", 0.0, "probe")
    median = sorted(first.values())[len(first) // 2]
    local, local_p = run("local", median, "local")
    on_ray, ray_p = run("ray", median, "ray")
    assert local.rejected and local.kept, "the threshold splits nothing: the test would test nothing"
    assert [e.id for e in on_ray.kept] == [e.id for e in local.kept]
    assert [(r.record["id"], r.reason) for r in on_ray.rejected] == [(r.record["id"], r.reason) for r in local.rejected]
    assert ray_p.keys() == local_p.keys()
    for k, v in local_p.items():
        assert ray_p[k] == pytest.approx(v, rel=2e-3), k
