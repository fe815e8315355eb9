"""Stale embedding artefacts are caught: sidecar references carry hashes of the array and of the
record each row was computed from; cache rows of the wrong width are computed again; JSON
embedding rows an older sftflow left in the score cache are removed."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest
from typer.testing import CliRunner

from sftflow.cli import app
from sftflow.embed import EmbeddingCache
from sftflow.schema import Example, RecordError
from sftflow.select.cache import ScoreCache
from sftflow.select.scorers import attach_embeddings, load_embeddings


def records(n=4, salt=""):
    return [Example.single(f"Question {i}{salt}?", f"Answer {i}.") for i in range(n)]


def scored(tmp_path, n=4, salt=""):
    exs = records(n, salt)
    emb = np.random.default_rng(len(salt)).normal(size=(n, 8)).astype(np.float32)
    attach_embeddings(exs, emb, sidecar=tmp_path / "s.embeddings.npy", embedder=None, method="sbert")
    return exs, emb


def test_a_sidecar_round_trips(tmp_path):
    exs, emb = scored(tmp_path)
    assert np.array_equal(load_embeddings(exs, tmp_path), emb)


def test_a_sidecar_another_run_overwrote_is_refused_or_recomputed(tmp_path, capsys):
    exs, emb = scored(tmp_path)
    scored(tmp_path, salt="b")                       # a second score run into the same folder
    with pytest.raises(RecordError, match="not the sidecar it was scored with"):
        load_embeddings(exs, tmp_path)
    got = load_embeddings(exs, tmp_path, recompute=lambda part: np.stack([emb[exs.index(e)] for e in part]))
    assert np.array_equal(got, emb)
    assert "computing its embedding again" in capsys.readouterr().err


def test_a_record_edited_after_scoring_is_refused(tmp_path):
    exs, _ = scored(tmp_path)
    exs[2].messages[0]["content"] = "An edited question?"
    with pytest.raises(RecordError, match=f"record {exs[2].id}: its text changed"):
        load_embeddings(exs, tmp_path)


@pytest.mark.parametrize("row", [-1, 4, "1", 1.0, True])
def test_a_row_outside_the_sidecar_is_an_error_not_another_row(tmp_path, row):
    exs, _ = scored(tmp_path)
    exs[0].metadata["scores"]["embedding"]["row"] = row    # -1 would quietly read the last row
    with pytest.raises(RecordError, match="is not a row of") as e:
        load_embeddings(exs, tmp_path)
    assert e.value.field == "metadata.scores.embedding.row"


def test_references_without_hashes_still_load_with_a_notice(tmp_path, capsys):
    exs, emb = scored(tmp_path)
    for ex in exs:
        for k in ("sidecar_sha", "row_sha"):
            del ex.metadata["scores"]["embedding"][k]
    assert np.array_equal(load_embeddings(exs, tmp_path), emb)
    assert "carry no hashes" in capsys.readouterr().err


def test_cache_rows_of_the_wrong_width_are_computed_again(tmp_path, monkeypatch, capsys):
    import sftflow.embed as E
    calls = []

    def fake(texts, model=None, **kw):
        calls.append(list(texts))
        return np.ones((len(texts), 4), dtype=np.float32) / 2
    monkeypatch.setattr(E, "embed_texts", fake)
    cache = EmbeddingCache(tmp_path)
    cache.embed(["a", "b", "c"])
    with sqlite3.connect(cache.path) as db:               # one row cut short, one of another width
        db.execute("UPDATE embeddings SET vector = ? WHERE text_sha = ?", (b"\0\0\0", E.text_key("a")))
        db.execute("UPDATE embeddings SET vector = ? WHERE text_sha = ?",
                   (np.zeros(6, np.float32).tobytes(), E.text_key("b")))
    out = EmbeddingCache(tmp_path).embed(["a", "b", "c"])
    assert out.shape == (3, 4) and np.allclose(out, 0.5)
    assert calls[-1] == ["a", "b"]
    assert "not 4 wide" in capsys.readouterr().err


def legacy_cache(path):
    c = ScoreCache(path)
    c.put_many({"loss_last|m|abc": {"loss": 1.0}})
    c.close()
    with sqlite3.connect(path) as db:                     # as an older sftflow stored embeddings
        db.executemany("INSERT INTO scores VALUES (?, ?)",
                       [(f"embedding|emb:default|{i:016x}", "[" + ", ".join(["0.125"] * 384) + "]")
                        for i in range(50)])


def test_cache_info_counts_and_prune_removes_old_json_embeddings(tmp_path):
    db = tmp_path / "scores.sqlite"
    legacy_cache(db)
    cli = CliRunner()
    res = cli.invoke(app, ["cache", "info", str(db)])
    assert res.exit_code == 0 and "old JSON embeddings, removed by prune: 50" in " ".join(res.output.split())
    res = cli.invoke(app, ["cache", "prune", str(db), "--legacy"])
    assert res.exit_code == 0, res.output
    assert "50 rows removed" in res.output
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT key FROM scores").fetchall() == [("loss_last|m|abc",)]


def test_the_score_cache_drops_old_json_embeddings_when_it_opens(tmp_path, capsys):
    db = tmp_path / "scores.sqlite"
    legacy_cache(db)
    c = ScoreCache(db)
    assert len(c) == 1 and c.get_many(["loss_last|m|abc"])
    assert "removed 50 embedding rows" in capsys.readouterr().err
