"""Config fields and CLI flags cannot drift: every field of a verb's config has a flag, every flag a field.

Each verb with a config names, here, the config class its flags set and the sections it must
cover in full; options that set no config field are listed per verb with the reason.
"""

from __future__ import annotations

import pytest
import typer
import yaml
from pydantic import BaseModel

from sftflow.cli import COMMANDS, app
from sftflow.cli.flags import collect
from sftflow.cli.select import load_select_config
from sftflow.cli.train import build_train_config
from sftflow.config import ConfigError
from sftflow.curate.config import CurateConfig, LeakageParams
from sftflow.evaluate.config import EvalConfig
from sftflow.generate.config import GenerateConfig
from sftflow.pipeline.experiment import ExperimentConfig
from sftflow.report.config import ReportConfig
from sftflow.select.config import ScoreConfig, SelectConfig
from sftflow.train.config import TrainConfig

CONFIG_OPTIONS = {"--config", "--set"}          # the file and its overrides: every key, by path
OUT = {"-o", "--out"}                           # where results go: a run's place, not its settings
WHOLE = ()                                      # the whole config class

# verb -> (config class, sections that need a flag for every field, options that set no field)
SCHEMAS = {
    "train": (TrainConfig, [WHOLE], CONFIG_OPTIONS | {
        # --launcher accelerate: how processes start, not what is trained
        "--launcher", "--num-processes", "--accelerate-config", "--num-machines", "--machine-rank",
        "--main-process-ip", "--main-process-port"}),
    "curate": (CurateConfig, [WHOLE], CONFIG_OPTIONS | OUT | {
        "--recipe",         # the old name of --config
        "--eval",           # adds the leakage step against these files, beyond setting leakage.eval
        "--format",         # how the input files are read
        "--quiet"}),        # terminal output
    "check-leak": (LeakageParams, [WHOLE], OUT),
    "score": (SelectConfig, [("score",), ("novelty",), ("quality",)], CONFIG_OPTIONS | OUT | {"--format", "--quiet"}),
    "select": (SelectConfig, [("selection",)], CONFIG_OPTIONS | OUT),
    "eval": (EvalConfig, [WHOLE], CONFIG_OPTIONS | OUT | {"--probes"}),   # --probes FILE -> extra_probes
    "report": (ReportConfig, [WHOLE], OUT),
    "generate self-instruct": (GenerateConfig, [("backend",), ("self_instruct",)], OUT),
    "generate paraphrase": (GenerateConfig, [("backend",), ("rewrite",), ("validation",)], OUT),
    "generate roundtrip": (GenerateConfig, [("backend",), ("rewrite",), ("validation",)], OUT),
    "generate backtranslate": (GenerateConfig, [("backend",), ("backtranslate",)], OUT),
    "experiment select-vs-random": (ExperimentConfig, [WHOLE], CONFIG_OPTIONS | OUT),
}
# Verbs with no stage config behind them: their options are the function's own parameters.
NO_CONFIG = {"convert", "inspect", "stats", "mix", "judge", "run", "demo", "cache info", "cache prune"}


def verbs(table=COMMANDS, prefix=""):
    for name, target in table.items():
        if isinstance(target, dict):
            yield from verbs(target, f"{prefix}{name} ")
        else:
            yield f"{prefix}{name}", target


def click_command(verb: str):
    cmd = typer.main.get_command(app)
    for part in verb.split():
        cmd = cmd.commands[part]
    return cmd


def option_names(verb: str) -> set[str]:
    return {o for p in click_command(verb).params for o in (*p.opts, *p.secondary_opts)
            if o.startswith("-")} - {"--help"}


def leaf_fields(model: type[BaseModel], path=()) -> set[tuple[str, ...]]:
    out = set()
    for name, info in model.model_fields.items():
        tp = info.annotation
        inner = [a for a in getattr(tp, "__args__", (tp,)) if isinstance(a, type) and issubclass(a, BaseModel)]
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            inner = [tp]
        out |= leaf_fields(inner[0], path + (name,)) if inner and not str(tp).startswith("list") else {path + (name,)}
    return out


def resolves(model: type[BaseModel], path: tuple[str, ...]) -> bool:
    return path in leaf_fields(model)


def test_every_verb_is_accounted_for():
    assert {v for v, _ in verbs()} == set(SCHEMAS) | NO_CONFIG


@pytest.mark.parametrize("verb", sorted(SCHEMAS))
def test_each_flag_sets_a_field_and_each_field_has_a_flag(verb):
    model, sections, own = SCHEMAS[verb]
    fn = dict(verbs())[verb]
    flags = fn.flags
    for f in flags:
        assert resolves(model, f.path), f"{verb}: {f.decls} sets {'.'.join(f.path)}, not a field of {model.__name__}"
    flagged = {f.path for f in flags}
    for section in sections:
        for path in leaf_fields(model):
            if path[:len(section)] != section or path in flagged:
                continue
            assert any(path[:i] in fn.skipped for i in range(1, len(path) + 1)), \
                f"{verb}: field {'.'.join(path)} has no flag and no stated reason"
    generated = {d for f in flags for decl in f.decls for d in decl.split("/")}
    stray = option_names(verb) - generated - own
    assert not stray, f"{verb}: options {sorted(stray)} set no config field and are not listed as such"
    assert not (own - option_names(verb)), f"{verb}: listed options {sorted(own - option_names(verb))} are gone"


def test_a_stale_alias_fails_on_import():
    from sftflow.cli.flags import config_flags
    with pytest.raises(ValueError, match="no field 'lr'"):
        config_flags(TrainConfig, names={"lr": ("--lr",)})


def given(verb: str, args: list[str]) -> dict:
    ctx = click_command(verb).make_context(verb, args)
    return collect(dict(verbs())[verb].flags, ctx.params)


def test_train_short_names_map_to_their_fields():
    cfg = build_train_config([], None, [], given("train", [
        "--lr", "1e-3", "--grad-accum", "4", "-o", "out/x", "--format", "alpaca", "--bf16", "false",
        "--eval", "a.jsonl", "--eval", "b.jsonl", "--lora-target-modules", "q_proj"]))
    assert cfg.learning_rate == 1e-3 and cfg.gradient_accumulation_steps == 4 and cfg.output_dir == "out/x"
    assert cfg.format == "alpaca" and cfg.bf16 is False and cfg.eval == ["a.jsonl", "b.jsonl"]
    assert cfg.lora_target_modules == ["q_proj"]
    assert build_train_config([], None, [], given("train", ["--bf16", "auto"])).bf16 == "auto"


def test_a_flag_can_turn_off_what_the_file_turned_on(tmp_path):
    f = tmp_path / "t.yaml"
    f.write_text(yaml.safe_dump({"merge": True, "packing": True, "group_by_length": True, "lora_r": 4}))
    kept = build_train_config([], f, [], given("train", []))
    assert kept.merge and kept.packing and kept.lora_r == 4          # no flag: the file's value stays
    off = build_train_config([], f, [], given("train", ["--no-merge", "--no-packing", "--no-group-by-length"]))
    assert not off.merge and not off.packing and not off.group_by_length and off.lora_r == 4
    # --set comes last and wins over both
    assert build_train_config([], f, ["lora_r=8"], given("train", ["--lora-r", "2"])).lora_r == 8


def test_a_recipe_file_gives_its_train_section(tmp_path):
    f = tmp_path / "recipe.yaml"
    f.write_text(yaml.safe_dump({"model": "m", "train": {"lora_r": 4}}))
    assert build_train_config(["d.jsonl"], f, [], {}).lora_r == 4


def test_a_bad_choice_is_refused_by_the_parser():
    with pytest.raises(Exception, match="lora|full"):
        click_command("train").make_context("train", ["--method", "qlora"])


def test_score_and_select_flags_land_in_their_sections():
    cfg = load_select_config(None, [], given("score", ["in.jsonl", "-o", "o.jsonl",
        "--scores", "ppl,ifd", "--scores", "embedding", "--no-cache", "--embed", "tfidf",
        "--curated", "c.jsonl", "--novelty-folds", "3", "--quality-model", "q"]))
    assert cfg.score.scores == ["ppl", "ifd", "embedding"] and cfg.score.use_cache is False
    assert cfg.score.embedding_method == "tfidf"
    assert cfg.novelty.curated == ["c.jsonl"] and cfg.novelty.folds == 3 and cfg.quality.model_dir == "q"
    sel = load_select_config(None, [], given("select", ["s.jsonl", "-o", "o", "--by", "ifd", "--ascending", "--budget", "5",
                                                        "--max-per-group", "2", "--quota-by", "task"])).selection
    assert sel.order_by == "ifd" and sel.descending is False and sel.budget == 5 and isinstance(sel.budget, int)
    assert sel.quota.max_per_group == 2 and sel.quota.by == "task"
    assert load_select_config(None, [], given("select", ["s.jsonl", "-o", "o", "--by", "ppl", "--budget", "0.25"])).selection.budget == 0.25


def test_generate_verbs_share_one_backend_group():
    from sftflow.cli.generate import BACKEND_FLAGS
    for verb in ("self-instruct", "paraphrase", "roundtrip", "backtranslate"):
        fn = COMMANDS["generate"][verb]
        assert [f for f in fn.flags if f.path[0] == "backend"] == list(BACKEND_FLAGS)
    g = given("generate paraphrase", ["in.jsonl", "-o", "o", "--backend", "openai", "--model", "m", "--quiet", "--style", "terse",
                                      "--embed", "tfidf", "--max-retries", "0"])
    assert g == {"backend": {"kind": "openai", "model": "m", "max_retries": 0}, "show_progress": False,
                 "rewrite": {"styles": ["terse"]}, "validation": {"embed_method": "tfidf"}}


def test_eval_choice_and_judge_flags_build_their_sections():
    from sftflow.cli.options import stage_config
    cfg = stage_config(EvalConfig, None, "eval", given("eval", [
        "--model", "t", "--choice", "a.jsonl", "--judge-backend", "fake", "--no-generate"]), [], "eval")
    assert cfg.choice.tasks == ["a.jsonl"] and cfg.judge.backend == "fake" and cfg.generate is False


def test_an_unknown_set_key_is_a_config_error():
    with pytest.raises(ConfigError, match="did you mean 'lora_r'"):
        build_train_config([], None, ["lora_rank=8"], {})


def test_remaining_short_names_map_to_their_fields():
    from pathlib import Path
    g = given("score", ["in.jsonl", "-o", "o.jsonl", "--quality-labels", "l.jsonl", "--embed", "sbert"])
    assert g == {"quality": {"labels": "l.jsonl"}, "score": {"embedding_method": "sbert"}}
    assert load_select_config(None, [], g).quality.labels == "l.jsonl"
    ctx = click_command("curate").make_context("curate", ["in.jsonl", "-o", "o", "--recipe", "r.yaml"])
    assert ctx.params["config"] == Path("r.yaml")
    assert given("curate", ["in.jsonl", "-o", "o", "--near-dedup-threshold", "0.8", "--no-stats"]) == {
        "near_dedup": {"threshold": 0.8}, "stats": False}
    assert given("check-leak", ["t.jsonl", "--eval", "e.jsonl", "--minhash-threshold", "1"]) == {
        "eval": ["e.jsonl"], "minhash_threshold": 1.0}


def test_flags_not_typed_leave_the_config_defaults(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import sftflow.select.pipeline as pipeline
    seen = {}

    def fake_score_file(data, out, cfg, **_):
        seen["cfg"] = cfg
        return {"written": 0}

    monkeypatch.setattr(pipeline, "score_file", fake_score_file)
    res = CliRunner().invoke(app, ["score", "in.jsonl", "-o", str(tmp_path / "o.jsonl"), "--quiet"])
    assert res.exit_code == 0, res.output
    cfg = seen["cfg"]
    assert cfg.score.scores == ScoreConfig().scores and cfg.novelty is None and cfg.quality is None
    res = CliRunner().invoke(app, ["score", "in.jsonl", "-o", str(tmp_path / "o.jsonl"), "--scores", "ppl"])
    assert res.exit_code == 0 and seen["cfg"].score.scores == ["ppl"]


def test_help_never_prints_a_missing_default():
    # A required field has no default to show: help says nothing rather than "PydanticUndefined".
    from typer.testing import CliRunner
    for verb in ("experiment select-vs-random", "train", "curate", "score", "select", "eval", "generate"):
        res = CliRunner().invoke(app, [*verb.split(), "--help"], terminal_width=200)
        assert res.exit_code == 0, verb
        assert "Undefined" not in res.output, verb
