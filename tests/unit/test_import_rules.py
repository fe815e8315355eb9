"""The import rules of docs/architecture.md, checked on the source with ``ast``.

Layers, bottom to top:

- core: the record type, config, I/O, models, chat rendering and masks, per-example
  losses, embeddings, diversity, task types, splits, intervals, errors, turn checks,
  run costs, callable tools, the execution engine (local or Ray), LLM backends and the
  test server. Core imports core only.
- stages, in pipeline order: generate, curate, select, train, evaluate, report. A stage
  imports core and the public names of *earlier* stages, never a later one.
- ``sftflow.pipeline`` orchestrates the stages; nothing imports it but the CLI.
- the CLI (``sftflow.cli``, ``sftflow.__main__``, ``sftflow.data_commands``).

Every import counts, also the ones inside functions: a lazy import is still a
dependency, it only fails later. A module that fits no layer fails the test, so a
new top-level module is placed on purpose.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "sftflow"

CORE = {"schema", "config", "io", "models", "chat", "nll", "embed", "diversity", "task_types", "splits",
        "intervals", "probes", "judge", "errors", "turns", "costs", "tools", "engine", "backends", "testing", "data"}
STAGES = ("generate", "curate", "select", "train", "evaluate", "report")
ORCHESTRATOR = "pipeline"
CLI = {"cli", "__main__", "data_commands"}

# Known breaks of the rules in code outside the report, kept visible until fixed:
# strict, so a fix turns the case red until its mark is removed.
KNOWN = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str, str]]:
    """(line, imported sftflow module, imported name or '') for every import in the file."""
    mod = module_name(path)
    package = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, "") for a in node.names if a.name.split(".")[0] == "sftflow"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "sftflow":
                continue
            for a in node.names:
                # `from sftflow import models` imports the module sftflow.models
                if target == "sftflow" or (node.module is None and node.level):
                    found.append((node.lineno, f"{target}.{a.name}", ""))
                else:
                    found.append((node.lineno, target, a.name))
    return found


def layer(module: str) -> str:
    """'core', 'stage:<name>', 'pipeline', 'cli' or 'root' for a dotted sftflow module."""
    parts = module.split(".")
    if len(parts) == 1:
        return "root"
    top = parts[1]
    if top in CORE:
        return "core"
    if top in STAGES:
        return f"stage:{top}"
    if top == ORCHESTRATOR:
        return "pipeline"
    if top in CLI:
        return "cli"
    return "unknown"


def violations(path: Path) -> list[str]:
    mod = module_name(path)
    mine = layer(mod)
    assert mine != "unknown", (f"{mod} fits no layer of docs/architecture.md: place it in CORE, STAGES or CLI "
                               "in this test and in the document")
    bad = []
    for line, target, name in imports_of(path):
        theirs = layer(target)
        where = f"{path.relative_to(SRC.parent)}:{line}: imports {target}" + (f".{name}" if name else "")
        if theirs == "unknown":
            bad.append(f"{where} (a module that does not exist or fits no layer)")
        elif theirs == "cli" and mine != "cli":
            bad.append(f"{where} (only the CLI imports the CLI)")
        elif theirs == "pipeline" and mine not in ("pipeline", "cli"):
            bad.append(f"{where} (only the CLI imports the orchestrator)")
        elif mine in ("core", "root") and theirs.startswith("stage:"):
            bad.append(f"{where} (a core module imports no stage)")
        elif mine.startswith("stage:") and theirs.startswith("stage:") and theirs != mine:
            if STAGES.index(theirs[6:]) > STAGES.index(mine[6:]):
                bad.append(f"{where} (a stage imports earlier stages only)")
            elif name.startswith("_") or any(p.startswith("_") for p in target.split(".")):
                bad.append(f"{where} (another stage's private name)")
    return bad


MODULES = sorted(SRC.rglob("*.py"))


def _case(path: Path):
    mod = module_name(path)
    if mod in KNOWN:
        return pytest.param(path, id=mod, marks=pytest.mark.xfail(strict=True, reason=KNOWN[mod]))
    return pytest.param(path, id=mod)


@pytest.mark.parametrize("path", [_case(p) for p in MODULES])
def test_module_follows_the_import_rules(path):
    bad = violations(path)
    assert not bad, "\n".join(bad)


def test_known_breaks_name_modules_that_exist():
    assert set(KNOWN) <= {module_name(p) for p in MODULES}, "a module named in KNOWN is gone: drop its entry"


def test_the_checker_sees_every_kind_of_break(tmp_path, monkeypatch):
    """A made-up tree with one break of each rule: the checker names every one."""
    pkg = tmp_path / "sftflow"
    files = {
        "__init__.py": "",
        "schema.py": "from .report import build\n",                   # core imports a stage
        "curate/__init__.py": "",
        "curate/steps.py": "def f():\n    from ..train.sft import train\n",   # later stage, lazily
        "train/__init__.py": "",
        "train/sft.py": "from sftflow.pipeline.recipe import RunState\n"    # the orchestrator
                        "from ..curate.steps import _private\n"             # a private name
                        "from ..cli import app\n",                          # the CLI
        "report/__init__.py": "",
        "report/build.py": "from ..curate.steps import Step\nfrom .. import schema\n",   # fine
        "pipeline/__init__.py": "",
        "pipeline/recipe.py": "from ..train import sft\n",                  # fine
        "cli.py": "import sftflow.pipeline.recipe\n",                       # fine
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    monkeypatch.setattr(sys.modules[__name__], "SRC", pkg)
    found = {module_name(p): violations(p) for p in sorted(pkg.rglob("*.py"))}
    assert [v.split("(")[-1] for v in found["sftflow.schema"]] == ["a core module imports no stage)"]
    assert [v.split("(")[-1] for v in found["sftflow.curate.steps"]] == ["a stage imports earlier stages only)"]
    assert sorted(v.split("(")[-1] for v in found["sftflow.train.sft"]) == [
        "another stage's private name)", "only the CLI imports the CLI)", "only the CLI imports the orchestrator)"]
    clean = set(found) - {"sftflow.schema", "sftflow.curate.steps", "sftflow.train.sft"}
    assert all(found[m] == [] for m in clean), {m: found[m] for m in clean}
