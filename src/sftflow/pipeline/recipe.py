"""One YAML recipe chains the stages: generate -> curate -> select -> train -> eval -> report.

The recipe's sections are the stages' own typed configs, so the schema of a recipe
is exactly the union of what each stage accepts. Stages hand off through files: each
writes into ``<output_dir>/<stage>/`` and updates ``RunState`` (which training file
is current, where the trained model is), so any stage can be rerun or replaced.

Three sets are fixed *first*, before any stage touches the data: train, validation
(chooses the checkpoint and drives early stopping) and test (read once, by the eval
stage). Each is a file the recipe names or a seeded share of the training files, split
by ``metadata["group"]`` so no group crosses sets (``sftflow.splits``). The test ids
go into ``data/manifest.json``, and the eval stage refuses a test set that overlaps
anything the run trained or selected on.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from ..config import StrictModel, dump_yaml, load_config
from ..costs import CostSection, Ledger
from ..engine import EngineConfig
from ..io.atomic import atomic_write_text
from ..io import load_examples, read_examples, write_examples, write_manifest, write_rejected
from ..models import DEFAULT_MODEL
from ..splits import check_test_unseen, split_by_group
from ..curate.config import CurateConfig
from ..generate.config import GenerateConfig
from ..evaluate.config import EvalConfig
from ..report.config import ReportConfig
from ..select.config import SelectConfig
from ..train.config import TrainConfig


class DataSection(StrictModel):
    train: list[str] = Field(default_factory=list, description="training files (any supported format)")
    validation: list[str] = Field(default_factory=list,
                                  description="files that choose checkpoints; empty = a seeded share of train")
    test: list[str] = Field(default_factory=list,
                            description="files reported on once at the end; empty = a seeded share of train")
    validation_fraction: float = Field(0.1, ge=0, lt=1, description="share of train groups (no validation file)")
    test_fraction: float = Field(0.1, ge=0, lt=1, description="share of train groups (no test file)")
    format: str = "auto"
    skip_invalid: bool = False


class Recipe(StrictModel):
    name: str = "run"
    model: str = DEFAULT_MODEL
    seed: int = 0
    output_dir: str | None = None
    data: DataSection = Field(default_factory=DataSection)
    generate: GenerateConfig | None = None
    curate: CurateConfig | None = None
    select: SelectConfig | None = None
    train: TrainConfig | None = None
    eval: EvalConfig | None = None
    report: ReportConfig | None = None
    cost: CostSection | None = Field(None, description="prices; costs.json and metrics.json then state the cost")
    engine: EngineConfig | None = Field(None, description="where the data stages run (generate, curate, "
                                                          "select's scoring); a stage's own engine wins")

    @model_validator(mode="after")
    def _run_engine_to_stages(self):
        # The run's engine goes to each data stage that does not name its own.
        if self.engine is not None:
            for section in (self.generate, self.curate, self.select and self.select.score):
                if section is not None and "engine" not in section.model_fields_set:
                    section.engine = self.engine.model_copy()
        return self


# stage name -> "module:function"; each function is run_stage(cfg, state) -> None.
STAGE_RUNNERS: dict[str, str] = {
    "generate": "sftflow.pipeline.stages.generate:run_stage",
    "curate": "sftflow.pipeline.stages.curate:run_stage",
    "select": "sftflow.pipeline.stages.select:run_stage",
    "train": "sftflow.pipeline.stages.train:run_stage",
    "eval": "sftflow.pipeline.stages.evaluate:run_stage",
    "report": "sftflow.pipeline.stages.report:run_stage",
}
STAGE_ORDER = ("generate", "curate", "select", "train", "eval", "report")


@dataclass
class RunState:
    recipe: Recipe
    out_dir: Path
    train_path: Path | None = None      # current training data (sftflow JSONL)
    validation_path: Path | None = None  # chooses checkpoints; fixed before any stage runs
    test_path: Path | None = None       # reported on once by the eval stage; fixed before any stage runs
    model_dir: Path | None = None       # trained model or adapter, once trained
    artifacts: dict[str, Any] = field(default_factory=dict)  # stage -> what it wrote
    ledger: Ledger = field(default_factory=Ledger)          # compute, tokens and API use per stage

    @property
    def eval_path(self) -> Path | None:
        """What training evaluates on while it runs: the validation set (never the test set)."""
        return self.validation_path

    def training_inputs(self) -> list[Path]:
        """Every file that trained or chose: the data as read, each stage's output, validation."""
        paths = [self.out_dir / "data" / "train.jsonl", self.train_path, self.validation_path]
        for stage in ("generate", "curate", "select"):
            paths += [self.out_dir / stage / n for n in ("train.jsonl", "kept.jsonl", "selected.jsonl")]
        seen, out = set(), []
        for p in paths:
            if p is not None and Path(p).exists() and Path(p) not in seen:
                seen.add(Path(p))
                out.append(Path(p))
        return out

    def check_test_unseen(self, test_files: list[str]) -> None:
        """Raise ``LeakedTestSet`` when the test files overlap anything that trained or chose."""
        test = load_examples(test_files)
        check_test_unseen(test, {str(p): load_examples([p]) for p in self.training_inputs()})

    def stage_dir(self, stage: str) -> Path:
        d = self.out_dir / stage
        d.mkdir(parents=True, exist_ok=True)
        return d


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    return load_config(Recipe, path, overrides)


def _read(files: list[str], data: DataSection):
    res = read_examples(files, data.format, skip_invalid=data.skip_invalid)
    return res.examples, res.rejected


def prepare_data(state: RunState) -> None:
    """Read the recipe's data once, fix train / validation / test, write each as JSONL.

    A set with its own files is read from them; otherwise it is a seeded share of the
    training files' groups. The manifest lists every test id, so anyone can check later
    that nothing the run trained on was reported on.
    """
    data = state.recipe.data
    if not data.train:
        return
    d = state.stage_dir("data")
    train, rejected = _read(data.train, data)
    given = {}
    for name in ("validation", "test"):
        if getattr(data, name):
            given[name], bad = _read(getattr(data, name), data)
            rejected += bad
    if rejected:
        write_rejected(d / "rejected.jsonl", rejected)
    splits = split_by_group(train, validation=0.0 if "validation" in given else data.validation_fraction,
                            test=0.0 if "test" in given else data.test_fraction, seed=state.recipe.seed)
    splits.validation = given.get("validation", splits.validation)
    splits.test = given.get("test", splits.test)
    state.train_path = d / "train.jsonl"
    write_examples(state.train_path, splits.train)
    for name in ("validation", "test"):     # an empty set (fraction 0, no file) has no path
        rows = getattr(splits, name)
        if rows:
            write_examples(d / f"{name}.jsonl", rows)
        setattr(state, f"{name}_path", d / f"{name}.jsonl" if rows else None)
    # The given files can overlap each other; a run that reports on its training data is refused here.
    check_test_unseen(splits.test, {"train": splits.train, "validation": splits.validation})
    counts = {**splits.summary(), "rejected": len(rejected)}
    write_manifest(d, stage="data", inputs=[*data.train, *data.validation, *data.test], config=data,
                   counts=counts, extra={"seed": state.recipe.seed, "test_ids": [e.id for e in splits.test]})
    state.artifacts["data"] = counts


def account(state: RunState) -> dict:
    """Write ``costs.json`` (and the cost and model disclosure into the eval's metrics.json)."""
    import json
    from ..models import describe_model
    ledger = state.ledger
    result = state.out_dir / "train" / "train_result.json"
    if result.exists() and state.recipe.train is not None:
        t = state.recipe.train
        ledger.add_training(json.loads(result.read_text()), t.batch_size, t.gradient_accumulation_steps)
    gens = state.out_dir / "eval" / "generations.jsonl"
    if gens.exists():
        rows = [json.loads(x) for x in gens.read_text().splitlines() if x.strip()]
        for side in ("base", "tuned"):
            ledger.add_generated(f"eval:{side}", [r[side] for r in rows if isinstance(r.get(side), dict)])
    summary = ledger.write(state.out_dir, state.recipe.cost)
    metrics_path = state.out_dir / "eval" / "metrics.json"
    if metrics_path.exists():
        m = json.loads(metrics_path.read_text())
        m["cost"] = summary
        m["models"] = {side: describe_model(m[key]) for side, key in (("base", "base"), ("tuned", "model"))
                       if m.get(key)}
        atomic_write_text(metrics_path, json.dumps(m, indent=2))
    return summary


def run_recipe(recipe: Recipe, out_dir: str | Path | None = None) -> RunState:
    out = Path(out_dir or recipe.output_dir or Path("runs") / recipe.name)
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(recipe, out / "recipe.resolved.yaml")
    state = RunState(recipe=recipe, out_dir=out)
    try:
        with state.ledger.stage("data"):
            prepare_data(state)
        for stage in STAGE_ORDER:
            cfg = getattr(recipe, stage, None)
            if cfg is None:
                continue
            if stage == "report":
                account(state)        # the report shows the cost of everything before it
            module, func = STAGE_RUNNERS[stage].split(":")
            with state.ledger.stage(stage):
                getattr(importlib.import_module(module), func)(cfg, state)
    finally:
        account(state)
    return state
