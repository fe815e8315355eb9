"""curate on Ray: outputs written by the workers as shards, and ids checked across files."""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray")

from ray_pool import STEPS, pool, write_shards  # noqa: E402

from sftflow.curate.config import CurateConfig  # noqa: E402
from sftflow.curate.pipeline import curate  # noqa: E402
from sftflow.engine import EngineConfig  # noqa: E402
from sftflow.engine.ray_shards import ShardedRecords  # noqa: E402

def _config(engine: str, **kw) -> CurateConfig:
    return CurateConfig(steps=kw.pop("steps", STEPS), stats=False, plots=False, refusal={"drop": True},
                        near_dedup={"threshold": 0.6}, engine=EngineConfig(kind=engine, batch_size=64, **kw))


def _id_files(folder):
    """Three files with user ids: repeats across files (a3 three times, the int 7 twice)
    and within one (b2), beside ids that are unique."""
    folder.mkdir(parents=True, exist_ok=True)

    def rec(i, tag):
        return {"id": i, "messages": [{"role": "user", "content": f"question {tag} {i}?"},
                                      {"role": "assistant", "content": f"answer {tag} {i}."}], "metadata": {"id": i}}
    files = {"a.jsonl": [f"a{i}" for i in range(10)] + [7],
             "b.jsonl": [f"b{i}" for i in range(6)] + ["a3", "b2", "a5"],
             "c.jsonl": ["c0", "a3", 7, "c1"]}
    paths = []
    for name, ids in files.items():
        p = folder / name
        p.write_text("".join(json.dumps(rec(i, f"{name}{k}")) + "\n" for k, i in enumerate(ids)))
        paths.append(p)
    return paths


@pytest.mark.parametrize("policy", ["error", "reid"])
def test_ids_repeated_across_files_are_caught_as_locally(cluster, tmp_path, policy):
    paths = _id_files(tmp_path / "in")

    def run(engine):
        cfg = _config(engine, steps=["empty"])
        cfg.duplicate_ids = policy
        return curate(paths, tmp_path / engine, cfg, progress=False)

    local = run("local")
    run("ray")
    if policy == "error":
        reasons = [r.reason for r in local.rejected]
        assert len(reasons) == 5 and any("c.jsonl: line 3: field 'id': duplicate id '7': also at" in r
                                         for r in reasons), reasons
    else:
        assert sum("_reid" in e.metadata for e in local.kept) == 5
    for name in ("kept.jsonl", "rejected.jsonl"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes(), name


def test_shards_are_written_by_the_workers_and_read_as_the_local_files(cluster, tmp_path):
    shards = write_shards(pool(), tmp_path / "pool", shards=3)
    local = curate(shards, tmp_path / "local", _config("local"), progress=False)
    on_ray = curate(shards, tmp_path / "ray", _config("ray", shards=True), progress=False)
    out = tmp_path / "ray"
    assert not (out / "kept.jsonl").exists() and not (out / "rejected.jsonl").exists()
    listed = json.loads((out / "manifest.json").read_text())["engine"]["shards"]
    # One kept shard per input file; rejects by step (and filter pass), then by file.
    assert listed["kept"] == [f"part-{k:07d}-00000000.jsonl" for k in range(3)]
    assert sorted(p.name for p in (out / "rejected").iterdir()) == listed["rejected"]
    for name in ("kept", "rejected"):
        joined = b"".join((out / name / part).read_bytes() for part in listed[name])
        assert joined == (tmp_path / "local" / f"{name}.jsonl").read_bytes(), name
    # The result reads the shards on demand instead of holding the records.
    assert isinstance(on_ray.kept, ShardedRecords) and len(on_ray.kept) == len(local.kept)
    assert [e.id for e in on_ray.kept] == [e.id for e in local.kept]
    assert [(r.step, r.reason, r.record) for r in on_ray.rejected] == \
        [(r.step, r.reason, r.record) for r in local.rejected]
    # A second run into the same folder, joined this time, leaves no shard folder behind.
    curate(shards, out, _config("ray"), progress=False)
    assert not (out / "kept").exists() and (out / "kept.jsonl").read_bytes() == \
        (tmp_path / "local" / "kept.jsonl").read_bytes()
