"""`sftflow cache info|prune`: caches shown with their rows, shrunk to a size or an age, oldest first."""

from __future__ import annotations

import sqlite3
import time

from typer.testing import CliRunner

from sftflow.backends import Completion, GenParams
from sftflow.backends.cache import ResponseCache, cache_key
from sftflow.cli import app


def fill(path, n, created=None):
    c = ResponseCache(path)
    for i in range(n):
        msgs = [{"role": "user", "content": f"prompt {i} " + "x" * 400}]
        c.put(cache_key("fake", "m", GenParams(), msgs), "fake", "m", GenParams(), msgs,
              Completion("answer " + "y" * 400))
    c.close()
    if created is not None:
        with sqlite3.connect(path) as db:
            db.execute("UPDATE responses SET created = ?", (created,))


def test_info_lists_rows_and_prune_keeps_the_newest_within_the_cap(tmp_path):
    db = tmp_path / "cache.sqlite"
    fill(db, 2000)
    cli = CliRunner()
    res = cli.invoke(app, ["cache", "info", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "cache.sqlite" in res.output and "responses: 2000" in res.output
    res = cli.invoke(app, ["cache", "prune", str(db), "--max-mb", "0.5"])
    assert res.exit_code == 0, res.output
    total = sum(p.stat().st_size for p in tmp_path.glob("cache.sqlite*"))
    assert total <= 500_000
    with sqlite3.connect(db) as c:
        left = [r[0] for r in c.execute("SELECT messages FROM responses")]
    assert 0 < len(left) < 2000
    assert any('prompt 1999 ' in m for m in left) and not any('prompt 0 ' in m for m in left)


def test_prune_by_age_removes_only_old_rows(tmp_path):
    old, new = tmp_path / "a" / "cache.sqlite", tmp_path / "b" / "cache.sqlite"
    fill(old, 10, created=time.time() - 40 * 86400)
    fill(new, 10)
    res = CliRunner().invoke(app, ["cache", "prune", str(old), str(new), "--older-than-days", "30"])
    assert res.exit_code == 0, res.output
    assert len(ResponseCache(old)) == 0 and len(ResponseCache(new)) == 10


def test_prune_without_a_limit_is_refused(tmp_path):
    res = CliRunner().invoke(app, ["cache", "prune", str(tmp_path)])
    assert res.exit_code == 2 and "--max-mb" in res.output
