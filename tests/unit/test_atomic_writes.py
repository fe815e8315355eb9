"""An output write that dies half-way leaves the previous output whole and no temporary behind.

The fault: the disk fills after a few bytes (``OSError(ENOSPC)`` from ``write``), for
every file opened for writing under the test's folder; for Parquet, whose writer is
C++, the writer itself writes half a file and dies. Either way the reader must see
the old file, byte for byte, and the folder must hold nothing else.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
from pathlib import Path

import numpy as np
import pytest

from sftflow.io import write_examples, write_jsonl, write_manifest
from sftflow.io.atomic import atomic_dir, atomic_write_json, atomic_write_text
from sftflow.schema import Example


class _FillsUp:
    def __init__(self, f, budget):
        self._f, self._left = f, budget

    def write(self, data):
        if len(data) > self._left:
            self._f.write(data[: self._left])
            self._f.flush()
            raise OSError(errno.ENOSPC, "No space left on device")
        self._left -= len(data)
        return self._f.write(data)

    def __getattr__(self, k):
        return getattr(self._f, k)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


@pytest.fixture
def disk_full(monkeypatch, tmp_path):
    """Call it to make every write-mode open under tmp_path fail after ``budget`` bytes."""
    real = builtins.open

    def arm(budget=20):
        def fake_open(file, mode="r", *a, **kw):
            f = real(file, mode, *a, **kw)
            if any(c in mode for c in "wax") and str(Path(str(file)).resolve()).startswith(str(tmp_path)):
                return _FillsUp(f, budget)
            return f
        monkeypatch.setattr(builtins, "open", fake_open)
        monkeypatch.setattr(io, "open", fake_open)
    return arm


def only(folder: Path) -> set[str]:
    return {p.name for p in folder.rglob("*")}


def test_manifest_survives_a_failed_rewrite(tmp_path, disk_full):
    write_manifest(tmp_path, stage="t", counts={"n": 1})
    before = (tmp_path / "manifest.json").read_bytes()
    disk_full()
    with pytest.raises(OSError):
        write_manifest(tmp_path, stage="t", counts={"n": 2})
    assert (tmp_path / "manifest.json").read_bytes() == before and only(tmp_path) == {"manifest.json"}


def test_jsonl_output_survives_a_failed_rewrite_and_leaves_no_temporary(tmp_path, disk_full):
    out = tmp_path / "records.jsonl"
    write_jsonl(out, [{"i": i} for i in range(3)])
    before = out.read_bytes()
    disk_full()
    with pytest.raises(OSError):
        write_jsonl(out, [{"i": i} for i in range(100)])
    assert out.read_bytes() == before and only(tmp_path) == {"records.jsonl"}


def test_parquet_output_is_renamed_into_place_complete(tmp_path, monkeypatch):
    import pyarrow.parquet as pq
    out = tmp_path / "records.parquet"
    write_examples(out, [Example.single("q", "a")])
    before = out.read_bytes()

    def dies_half_way(table, where, *a, **kw):
        Path(where).write_bytes(b"PAR1 half a file")
        raise OSError(errno.EIO, "killed")
    monkeypatch.setattr(pq, "write_table", dies_half_way)
    with pytest.raises(OSError):
        write_examples(out, [Example.single("q2", "a2")])
    assert out.read_bytes() == before and only(tmp_path) == {"records.parquet"}


def test_quality_model_survives_a_failed_save(tmp_path, disk_full):
    from sftflow.select.quality import QualityModel
    m = QualityModel(coef=np.ones(4), intercept=0.5, calibration={"method": "sigmoid", "a": -1.0, "b": 0.0})
    path = m.save(tmp_path)
    before = path.read_bytes()
    disk_full()
    m.intercept = 9.0
    with pytest.raises(OSError):
        m.save(tmp_path)
    assert path.read_bytes() == before and only(tmp_path) == {"quality.json"}


def test_atomic_helpers_replace_whole_or_not_at_all(tmp_path, disk_full):
    p = tmp_path / "metrics.json"
    atomic_write_json(p, {"a": 1})
    atomic_write_text(tmp_path / "t.txt", "old")
    with pytest.raises(TypeError):               # unserialisable: fails before touching the file
        atomic_write_json(p, {"a": object()})
    disk_full(5)
    with pytest.raises(OSError):
        atomic_write_text(tmp_path / "t.txt", "a much longer new text")
    assert json.loads(p.read_text()) == {"a": 1} and (tmp_path / "t.txt").read_text() == "old"
    assert only(tmp_path) == {"metrics.json", "t.txt"}


def test_a_folder_appears_complete_or_not_at_all(tmp_path):
    target = tmp_path / "adapter"
    with atomic_dir(target) as d:
        (d / "weights.bin").write_bytes(b"v1")
    with pytest.raises(RuntimeError), atomic_dir(target) as d:
        (d / "weights.bin").write_bytes(b"v2-partial")
        raise RuntimeError("killed while saving")
    assert (target / "weights.bin").read_bytes() == b"v1" and only(tmp_path) == {"adapter", "weights.bin"}
    with atomic_dir(target) as d:
        (d / "weights.bin").write_bytes(b"v2")
    assert (target / "weights.bin").read_bytes() == b"v2" and only(tmp_path) == {"adapter", "weights.bin"}


def test_a_kill_between_the_two_renames_of_a_folder_swap_is_undone(tmp_path):
    target = tmp_path / "model"
    aside = tmp_path / ".model.old-123-abcd"       # what a kill between the renames leaves
    aside.mkdir()
    (aside / "config.json").write_text("{}")
    with atomic_dir(target) as d:
        assert (target / "config.json").exists()    # the old folder is back before anything else
        (d / "config.json").write_text('{"new": 1}')
    assert json.loads((target / "config.json").read_text()) == {"new": 1} and not aside.exists()


def test_temporaries_of_a_killed_writer_are_removed_but_a_live_ones_kept(tmp_path):
    import os
    import subprocess
    import sys
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f".out.json.tmp-{dead}-0000aaaa"
    live = tmp_path / f".out.json.tmp-{os.getppid()}-0000bbbb"
    stale.write_text("half")
    live.write_text("being written")
    atomic_write_json(tmp_path / "out.json", {"ok": True})
    assert not stale.exists() and live.exists()


def test_files_staged_into_a_run_folder_arrive_whole_and_weights_last(tmp_path):
    from sftflow.io.atomic import staged_into
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    with pytest.raises(RuntimeError), staged_into(run) as d:
        (d / "adapter_config.json").write_text("{}")
        raise RuntimeError("killed while saving")
    assert only(run) == {"checkpoints"}
    moved = []
    import os as _os
    real = _os.replace

    def spy(a, b):
        moved.append(Path(b).name)
        return real(a, b)
    _os.replace = spy
    try:
        with staged_into(run) as d:
            (d / "adapter_model.safetensors").write_bytes(b"w")
            (d / "adapter_config.json").write_text("{}")
            (d / "tokenizer.json").write_text("{}")
    finally:
        _os.replace = real
    assert moved[-1] == "adapter_model.safetensors"
    assert only(run) == {"checkpoints", "adapter_model.safetensors", "adapter_config.json", "tokenizer.json"}


# Outputs whose writers need a model run to reach; the atomic helper is checked above, this
# keeps their call sites on it (a bare write_text or np.save to a path is not atomic).
OUTPUT_WRITERS = ["evaluate/run.py", "pipeline/experiment.py", "select/quality.py", "select/pipeline.py",
                  "select/scorers.py", "train/sft.py", "io/writers.py", "io/manifest.py",
                  "pipeline/recipe.py", "pipeline/demo.py", "costs.py"]


@pytest.mark.parametrize("module", OUTPUT_WRITERS)
def test_output_writers_write_through_the_atomic_helper(module):
    import re
    src = (Path(__file__).resolve().parents[2] / "src" / "sftflow" / module).read_text()
    bare = re.findall(r"^.*(?:\.write_text\(|\.write_bytes\(|np\.save\((?!f,)|json\.dump\().*$", src, re.M)
    assert bare == [], f"{module}: not atomic: {bare}"
