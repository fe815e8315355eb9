"""docs/architecture.md stays true: its examples run, its recipe snippet validates, its
core layer is the one the import-rule test enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

DOC = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


@pytest.mark.parametrize("code", blocks("python"), ids=lambda c: c.split("\n")[0][:40])
def test_python_example_runs(code, tmp_path, monkeypatch):
    from sftflow.io import write_examples
    from sftflow.schema import Example
    monkeypatch.chdir(tmp_path)
    # the score example reads a curated file, as it would in a run folder
    write_examples(tmp_path / "RUN" / "curate" / "kept.jsonl",
                   [Example.single(f"question {i}?", "word " * i) for i in range(1, 7)])
    exec(compile(code, str(DOC), "exec"), {"__name__": "architecture_example"})


def test_the_examples_are_all_there():
    assert len(blocks("python")) == 4      # a curation step, a score, a probe, a backend


def test_yaml_snippet_is_a_valid_eval_section():
    from sftflow.evaluate.config import EvalConfig
    (snippet,) = blocks("yaml")
    cfg = EvalConfig(**yaml.safe_load(snippet)["eval"])
    assert "house_format" in [p.name for p in cfg.all_probes()]


def test_core_layer_matches_the_import_rule_test():
    from test_import_rules import CORE
    text = DOC.read_text(encoding="utf-8")
    bullet = text[text.index("- **Core modules**"):text.index("- **A stage package**")]
    named = set(re.findall(r"`([a-z_]+)`", bullet))
    assert named == CORE, f"in the document only: {named - CORE}; in the test only: {CORE - named}"
