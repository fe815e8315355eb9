"""select-vs-random end to end on a tiny random model, and its statistics on known numbers."""

from __future__ import annotations

import json

import pytest

from sftflow import Example
from sftflow.io import write_examples
from sftflow.pipeline.experiment import (ExperimentConfig, diff_ci, load_experiment_config, mean_ci,
                                       run_experiment, verdict)


def test_mean_ci_matches_t_interval():
    s = mean_ci([1.0, 2.0, 3.0])
    # mean 2, sd 1, t(0.975, 2) = 4.302653, half = 4.302653 / sqrt(3)
    assert s["mean"] == 2.0 and s["sd"] == pytest.approx(1.0)
    assert s["high"] - 2.0 == pytest.approx(4.302653 / 3 ** 0.5, rel=1e-5)
    assert mean_ci([5.0])["low"] is None
    assert mean_ci([2.0, 2.0, 2.0])["low"] == mean_ci([2.0, 2.0, 2.0])["high"] == 2.0


def test_welch_difference_and_verdict():
    d = diff_ci([1.0, 1.1, 0.9], [2.0, 2.2, 1.8])
    assert d["diff"] == pytest.approx(-1.0)
    assert d["high"] < 0
    assert verdict(d) == "selection beats random"
    same = diff_ci([1.0, 1.2, 0.8], [1.1, 0.9, 1.0])
    assert same["low"] < 0 < same["high"]
    assert verdict(same).startswith("no better than random")
    assert verdict(diff_ci([3.0, 3.1, 2.9], [1.0, 1.1, 0.9])) == "selection is worse than random"


def test_needs_three_random_arms():
    from sftflow.config import ConfigError
    with pytest.raises(ConfigError, match="random_arms"):
        load_experiment_config(None, pool=["x.jsonl"], budget=5, random_arms=2)


def test_select_vs_random_runs_end_to_end(tmp_path, tiny_model_dir):
    pool = [Example.single(f"Item {i}: repeat the word {w}.", f"{w} {w} {w}" + "!" * (i % 3))
            for i, w in enumerate(["alpha", "beta", "gamma", "delta", "omega", "kappa", "sigma", "tau",
                                   "rho", "zeta", "eta", "theta", "iota", "lambda", "mu", "nu"])]
    held = [Example.single(f"Repeat the word {w}.", f"{w} {w} {w}") for w in ["pi", "chi", "psi", "phi"]]
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "held.jsonl", held)
    cfg = ExperimentConfig.model_validate({
        "pool": [str(tmp_path / "pool.jsonl")], "heldout": [str(tmp_path / "held.jsonl")],
        "budget": 6, "random_arms": 3, "model": tiny_model_dir,
        "select": {"score": {"scores": ["ppl", "ifd"], "precision": "fp32",
                             "cache": str(tmp_path / "c.sqlite")},
                   "selection": {"method": "topk", "order_by": "ppl"}},
        "train": {"method": "full", "max_steps": 2, "batch_size": 2, "learning_rate": 1e-3,
                  "logging_steps": 1},
        "eval": {"choice": None, "generate": True, "max_new_tokens": 4, "batch_size": 4,
                 "openings": [{"name": "apology", "texts": ["Sorry", "I apologise"]}]},
    })
    out = tmp_path / "exp"
    res = run_experiment(cfg, out)
    assert res["subset_size"] == 6
    runs = res["runs"]
    assert [r["arm"] for r in runs].count("selected") == 3 and [r["arm"] for r in runs].count("random") == 3
    assert len({r["train_file"] for r in runs if r["arm"] == "random"}) == 3    # three different subsets
    assert all(r["heldout_loss"] is not None and r["train_examples"] == 6 for r in runs)
    sel_losses = [r["heldout_loss"] for r in runs if r["arm"] == "selected"]
    assert res["arms"]["selected"]["heldout_loss"]["mean"] == pytest.approx(sum(sel_losses) / 3)
    assert any(k.startswith("probe:") for k in runs[0])                           # probes were run
    # an unwanted opening's probability, per run and paired over the 4 prompts (lower is better)
    assert all(0 < r["opening:apology"] < 1 and len(r["per_prompt"]["opening:apology"]) == 4 for r in runs)
    po = res["paired"]["selected"]["opening:apology"]
    assert po["n"] == 4 and po["diff"] == pytest.approx(res["arms"]["selected"]["opening:apology"]["mean"]
                                                        - res["arms"]["random"]["opening:apology"]["mean"])
    assert res["verdicts"]["selected"]["opening:apology"]["paired"] == verdict(po, lower_is_better=True)
    # the verdict is the one its own interval gives, and the table says the same
    d = res["difference"]["selected"]["heldout_loss"]
    assert d["low"] is not None and d["low"] <= d["diff"] <= d["high"]
    expected = ("selection beats random" if d["high"] < 0 else
                "selection is worse than random" if d["low"] > 0 else
                "no better than random (the interval of the difference contains 0)")
    assert res["verdict"] == expected
    assert f"verdict (held-out loss): {expected}" in (out / "table.md").read_text()
    # held-out loss paired over prompts: the same difference of token-weighted losses, with an interval
    pl = res["paired"]["selected"]["heldout_loss"]
    assert pl["n"] == 4 and pl["diff"] == pytest.approx(d["diff"])
    assert "verdict (held-out loss, paired over prompts): " + res["verdict_paired"] in (out / "table.md").read_text()
    assert (out / "select_vs_random.png").stat().st_size > 1000
    assert "| heldout_loss |" in (out / "table.md").read_text()
    saved = json.loads((out / "results.json").read_text())
    assert saved["difference"]["selected"]["heldout_loss"]["diff"] == pytest.approx(
        res["arms"]["selected"]["heldout_loss"]["mean"] - res["arms"]["random"]["heldout_loss"]["mean"])

    # Resumable: a rerun reuses every finished run instead of training again.
    import sftflow.train.sft as sft
    def no_training(*a, **k):
        raise AssertionError("a finished run was trained again")
    orig, sft.train = sft.train, no_training
    for done in (out / "runs").glob("*/result.json"):     # a result saved before per-prompt losses existed
        saved_run = json.loads(done.read_text())
        saved_run["per_prompt"].pop("heldout_loss")
        done.write_text(json.dumps(saved_run))
    try:
        again = run_experiment(cfg, out)
        # A different eval section re-evaluates the trained runs; it never trains again.
        import sftflow.evaluate.run as ev
        calls = []
        orig_eval = ev.evaluate

        def counting(*a, **k):
            calls.append(k["model"])
            return orig_eval(*a, **k)

        ev.evaluate = counting
        try:
            cfg2 = cfg.model_copy(update={"eval": cfg.eval.model_copy(update={"max_new_tokens": 3})})
            third = run_experiment(cfg2, out)
        finally:
            ev.evaluate = orig_eval
    finally:
        sft.train = orig
    assert again["difference"] == res["difference"] and again["paired"] == res["paired"]
    assert len(calls) == 6 and len(set(calls)) == 6                   # each trained run, once
    assert [r["steps"] for r in third["runs"]] == [r["steps"] for r in runs]
    assert all(r["eval_config"]["max_new_tokens"] == 3 for r in third["runs"])


def test_experiment_verdict_reads_the_welch_interval_of_the_runs(tmp_path, monkeypatch):
    """Known held-out losses per run: the arms, the Welch interval and the verdict follow exactly."""
    from scipy.stats import ttest_ind

    import sftflow.pipeline.experiment as exp
    import sftflow.select.pipeline as sp

    losses = {"selected": [1.0, 1.1, 0.9], "random": [2.0, 2.2, 1.8]}

    def fake_run(cfg, arm, r, train_file, heldout_file, run_dir, **kw):
        return {"arm": arm, "run": r, "train_file": str(train_file), "heldout_loss": losses[arm][r],
                "probe:refusal": 0.5}

    class Sel:
        summary = {}

    def fake_score(files, out, cfg, model=None):
        from sftflow.io import read_examples, write_examples
        write_examples(out, read_examples(files).examples)

    def fake_select(scored, out_dir, cfg, config_for_manifest=None):
        from sftflow.io import read_examples, write_examples
        Sel.selected = read_examples([scored]).examples[:4]
        write_examples(out_dir / "selected.jsonl", Sel.selected)
        return Sel

    monkeypatch.setattr(exp, "_run_one", fake_run)
    monkeypatch.setattr(sp, "score_file", fake_score)
    monkeypatch.setattr(sp, "select_file", fake_select)
    pool = [Example.single(f"q{i}", f"a{i}") for i in range(12)]
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "held.jsonl", pool[:2])
    cfg = ExperimentConfig.model_validate({"pool": [str(tmp_path / "pool.jsonl")],
                                           "heldout": [str(tmp_path / "held.jsonl")], "budget": 4,
                                           "random_arms": 3, "model": "unused"})
    (tmp_path / "out" / "select").mkdir(parents=True)
    res = run_experiment(cfg, tmp_path / "out")
    ci = ttest_ind(losses["selected"], losses["random"], equal_var=False).confidence_interval(0.95)
    d = res["difference"]["selected"]["heldout_loss"]
    assert (d["low"], d["high"]) == pytest.approx((ci.low, ci.high))
    assert d["diff"] == pytest.approx(-1.0)
    assert res["verdict"] == "selection beats random"
    assert res["arms"]["random"]["heldout_loss"]["mean"] == pytest.approx(2.0)
    losses["selected"], losses["random"] = losses["random"], losses["selected"]
    assert run_experiment(cfg, tmp_path / "out")["verdict"] == "selection is worse than random"
    losses["selected"] = [1.0, 2.5, 1.6]
    assert run_experiment(cfg, tmp_path / "out")["verdict"].startswith("no better than random")


def _fake_training(calls):
    """Stands in for sft.train: records the call and writes what a finished run leaves."""
    def fake_train(tcfg, train_file, heldout_file, out_dir, quiet=True):
        from sftflow.io import read_examples
        calls.append((str(train_file), tcfg.learning_rate))
        out_dir.mkdir(parents=True, exist_ok=True)
        n = len(read_examples([train_file]).examples)
        (out_dir / "train_result.json").write_text(json.dumps(
            {"train_examples": n, "steps": 1, "eval_loss": 1.0 + n / 100, "merged_dir": None,
             "output_dir": str(out_dir)}))
    return fake_train


def test_arm_fingerprints_recompute_changed_arms_and_reuse_the_rest(tmp_path, monkeypatch):
    from sftflow.train import sft
    calls: list = []
    monkeypatch.setattr(sft, "train", _fake_training(calls))
    pool = [Example.single(f"Question {i} about {w}?", f"Answer: {w} number {i}.")
            for i, w in enumerate(["rates", "loans", "taxes", "fees", "bonds", "cards", "rent", "wages",
                                   "stocks", "funds", "banks", "debts"])]
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "held.jsonl", pool[:2])
    base = {"pool": [str(tmp_path / "pool.jsonl")], "heldout": [str(tmp_path / "held.jsonl")], "budget": 4,
            "random_arms": 3, "model": "unused", "train": {"learning_rate": 1e-3},
            "select": {"score": {"scores": ["embedding"], "embedding_method": "tfidf", "use_cache": False},
                       "selection": {"method": "kcenter", "budget": 4}}}
    out = tmp_path / "exp"
    first = run_experiment(ExperimentConfig.model_validate(base), out)
    assert len(calls) == 6 and all(r["fingerprint"] for r in first["runs"])
    run_experiment(ExperimentConfig.model_validate(base), out)          # same inputs: every run reused
    assert len(calls) == 6
    third = run_experiment(ExperimentConfig.model_validate({**base, "budget": 5}), out)
    assert len(calls) == 12                                            # a new budget: every arm again
    assert all(r["train_examples"] == 5 for r in third["runs"])
    assert {r["fingerprint"] for r in third["runs"]}.isdisjoint({r["fingerprint"] for r in first["runs"]})
    run_experiment(ExperimentConfig.model_validate({**base, "budget": 5, "train": {"learning_rate": 2e-3}}),
                   out)
    assert len(calls) == 18 and {lr for _, lr in calls[12:]} == {2e-3}   # a changed recipe, too


def test_paired_difference_is_a_t_interval_over_prompts():
    from scipy.stats import ttest_1samp

    from sftflow.pipeline.experiment import paired_diff
    arm = [[1, 0, 1, None, 1, 0]]
    rnd = [[0, 0, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 0, 1]]
    d = [1 - 1 / 3, 0.0, 1 - 2 / 3, 1.0, -1 / 3]          # prompt 4 has no outcome for the arm: left out
    ci = ttest_1samp(d, 0.0).confidence_interval(0.95)
    p = paired_diff(arm, rnd)
    assert p["n"] == 5 and p["diff"] == pytest.approx(sum(d) / 5)
    assert (p["low"], p["high"]) == pytest.approx((ci.low, ci.high))
    assert paired_diff([[1, 1]], [[0, 0], [0, 0], [0, 0]]) == {"n": 2, "diff": 1.0, "low": 1.0, "high": 1.0}


def test_held_out_loss_per_prompt_pairs_to_the_token_weighted_difference(tmp_path):
    """Each prompt's loss sum over the run's mean answer length: their mean is the token-weighted
    held-out loss, so the paired difference is the difference of the two runs' losses."""
    from sftflow.pipeline.experiment import paired_diff
    from sftflow.pipeline.experiment_runs import per_prompt_outcomes

    def run(losses, tokens=(10, 30, 20)):
        d = tmp_path / f"run{len(list(tmp_path.iterdir()))}"
        d.mkdir()
        (d / "loss_per_example.jsonl").write_text("".join(
            json.dumps({"id": f"p{i}", "tuned_loss": x, "tokens": t}) + "\n"
            for i, (x, t) in enumerate(zip(losses, tokens))))
        return per_prompt_outcomes(ExperimentConfig.model_validate(
            {"pool": ["p"], "heldout": ["h"], "budget": 2, "model": "m", "eval": {"generate": False}}), d)["heldout_loss"]

    arm = run([1.0, 2.0, 0.5])
    assert sum(arm) / 3 == pytest.approx((10 * 1.0 + 30 * 2.0 + 20 * 0.5) / 60)    # token-weighted
    rnd = [run([1.5, 2.0, 1.0]), run([1.0, 2.5, 1.0]), run([2.0, 2.0, 0.5])]
    weighted = [(10 * a + 30 * b + 20 * c) / 60 for a, b, c in ([1.5, 2.0, 1.0], [1.0, 2.5, 1.0], [2.0, 2.0, 0.5])]
    p = paired_diff([arm], rnd)
    assert p["n"] == 3 and p["diff"] == pytest.approx(sum(arm) / 3 - sum(weighted) / 3)
    assert p["low"] < p["diff"] < p["high"]
    # a prompt whose loss could not be measured (flagged: no loss) is left out, not counted as 0
    assert run([1.0, None, 0.5])[1] is None


def test_audit_counts_known_bad_records_against_the_hypergeometric_law():
    from scipy.stats import hypergeom

    from sftflow.pipeline.experiment import audit_selection
    marks = {f"r{i}": ("apology" if i % 10 < 3 else None) for i in range(100)}      # 30 bad of 100
    clean = [i for i in marks if marks[i] is None][:20]
    a = audit_selection(marks, {"rule": clean[:18] + ["r0", "r1"]})
    arm = a["arms"]["rule"]
    assert (a["bad_in_pool"], arm["bad"], arm["n"], arm["by_kind"]) == (30, 2, 20, {"apology": 2})
    assert arm["random_expected"] == pytest.approx(6.0)
    assert arm["p_random_as_few"] == pytest.approx(hypergeom(100, 30, 20).cdf(2))
    assert arm["random_range"] == [int(hypergeom(100, 30, 20).ppf(0.025)), int(hypergeom(100, 30, 20).ppf(0.975))]
    assert arm["low"] < 0.1 < arm["high"]


def _planted_experiment(tmp_path, selections: list[dict]) -> ExperimentConfig:
    """12 records, the first 4 marked planted; arms chosen by tf-idf embeddings (no model)."""
    pool = [Example.single(f"Question {i}?", f"Answer: {i}.", metadata={"planted": "apology"} if i < 4 else {})
            for i in range(12)]
    write_examples(tmp_path / "pool.jsonl", pool)
    write_examples(tmp_path / "held.jsonl", pool[:2])
    return ExperimentConfig.model_validate({
        "pool": [str(tmp_path / "pool.jsonl")], "heldout": [str(tmp_path / "held.jsonl")], "budget": 4,
        "random_arms": 3, "model": "unused", "audit_key": "planted",
        "select": {"score": {"scores": ["embedding"], "embedding_method": "tfidf", "use_cache": False}},
        "selections": selections})


def test_audit_key_never_reaches_the_scorers_and_is_counted(tmp_path, monkeypatch):
    from sftflow.train import sft
    monkeypatch.setattr(sft, "train", _fake_training([]))
    cfg = _planted_experiment(tmp_path, [{"name": "cover", "method": "kcenter", "budget": 4},
                                         {"name": "spread", "method": "kcenter", "budget": 4, "seed": 1}])
    res = run_experiment(cfg, tmp_path / "exp")
    for f in ("pool.jsonl", "select/scored.jsonl", "select/cover/selected.jsonl", "random/subset_0.jsonl"):
        assert "planted" not in (tmp_path / "exp" / f).read_text()
    assert res["audit"]["bad_in_pool"] == 4 and set(res["audit"]["arms"]) == {
        "cover", "spread", "random_0", "random_1", "random_2"}
    assert set(res["difference"]) == {"cover", "spread"} and res["verdict"].startswith("cover: ")
    assert "Known-bad records in the pool: 4 of 12" in (tmp_path / "exp" / "table.md").read_text()


def test_select_only_audits_the_arms_without_training(tmp_path, monkeypatch):
    from sftflow.train import sft

    def no_training(*a, **k):
        raise AssertionError("select_only trained a model")
    monkeypatch.setattr(sft, "train", no_training)
    cfg = _planted_experiment(tmp_path, [{"name": "cover", "method": "kcenter", "budget": 4}])
    import yaml
    from typer.testing import CliRunner

    from sftflow.cli import app
    (tmp_path / "exp.yaml").write_text(yaml.safe_dump(cfg.model_dump(exclude={"select_only"})))
    cli = CliRunner().invoke(app, ["experiment", "select-vs-random", "--config", str(tmp_path / "exp.yaml"),
                                   "--select-only", "-o", str(tmp_path / "exp")])
    assert cli.exit_code == 0, cli.output
    assert "nothing was trained" in cli.output and "verdict: not trained (select_only)" in cli.output
    res = json.loads((tmp_path / "exp" / "results.json").read_text())
    assert res["select_only"] and "runs" not in res and not (tmp_path / "exp" / "runs").exists()
    assert set(res["audit"]["arms"]) == {"cover", "random_0", "random_1", "random_2"}
    assert sum(res["audit"]["arms"]["cover"]["by_kind"].values()) == res["audit"]["arms"]["cover"]["bad"]
    table = (tmp_path / "exp" / "table.md").read_text()
    assert "nothing was trained" in table and "Known-bad records in the pool: 4 of 12" in table
    assert json.loads((tmp_path / "exp" / "manifest.json").read_text())["counts"]["runs"] == 0


def test_table_shows_small_probabilities_instead_of_zero():
    from sftflow.pipeline.experiment_stats import arms_table
    arms = {"sel": {"opening:a": {"mean": 8.79e-08, "low": None, "high": None, "n": 1}},
            "random": {"opening:a": {"mean": 1.7e-4, "low": -2e-4, "high": 5e-4, "n": 3}}}
    diffs = {"sel": {"opening:a": {"diff": -1.7e-4, "low": None, "high": None}}}
    paired = {"sel": {"opening:a": {"diff": -1.72e-4, "low": -2.23e-4, "high": -1.21e-4, "n": 72}}}
    row = arms_table(["opening:a"], arms, diffs, paired, 0.95).splitlines()[-1]
    assert "8.79e-08" in row and "-0.000172 [-0.000223, -0.000121] (n=72)" in row
    assert "0.0000" not in row
