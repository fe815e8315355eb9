"""One YAML recipe chains the stages: generate -> curate -> select -> train -> eval -> report.

The recipe's sections are the stages' own typed configs, so the schema of a recipe
is exactly the union of what each stage accepts. Stages hand off through files: each
writes into ``<output_dir>/<stage>/`` and updates ``RunState`` (which training file
is current, where the trained model is), so any stage can be rerun or replaced.

Evaluation data is set aside *first*, before any stage touches the training data
(a seeded split when the recipe gives no eval file), so curation and selection can
never leak it into training.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

from ..config import StrictModel, dump_yaml, load_config
from ..io import read_examples, write_examples, write_rejected
from ..models import DEFAULT_MODEL
from ..splits import split_heldout
from ..curate.config import CurateConfig
from ..generate.config import GenerateConfig
from ..evaluate.config import EvalConfig
from ..report.config import ReportConfig
from ..select.config import SelectConfig
from ..train.config import TrainConfig


class DataSection(StrictModel):
    train: list[str] = Field(default_factory=list, description="training files (any supported format)")
    eval: list[str] = Field(default_factory=list, description="held-out files; empty = seeded split")
    format: str = "auto"
    eval_fraction: float = Field(0.1, gt=0, lt=1)
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
    eval_path: Path | None = None       # held-out data, fixed before any stage runs
    model_dir: Path | None = None       # trained model or adapter, once trained
    artifacts: dict[str, Any] = field(default_factory=dict)  # stage -> what it wrote

    def stage_dir(self, stage: str) -> Path:
        d = self.out_dir / stage
        d.mkdir(parents=True, exist_ok=True)
        return d


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    return load_config(Recipe, path, overrides)


def prepare_data(state: RunState) -> None:
    """Read the recipe's data once, set the held-out part aside, write both as JSONL."""
    data = state.recipe.data
    if not data.train:
        return
    d = state.stage_dir("data")
    res = read_examples(data.train, data.format, skip_invalid=data.skip_invalid)
    if res.rejected:
        write_rejected(d / "rejected.jsonl", res.rejected)
    train = res.examples
    if data.eval:
        heldout = read_examples(data.eval, data.format, skip_invalid=data.skip_invalid).examples
    else:
        train, heldout = split_heldout(train, data.eval_fraction, state.recipe.seed)
    state.train_path = d / "train.jsonl"
    state.eval_path = d / "eval.jsonl"
    write_examples(state.train_path, train)
    write_examples(state.eval_path, heldout)
    state.artifacts["data"] = {"train": len(train), "eval": len(heldout),
                               "rejected": len(res.rejected)}


def run_recipe(recipe: Recipe, out_dir: str | Path | None = None) -> RunState:
    out = Path(out_dir or recipe.output_dir or Path("runs") / recipe.name)
    out.mkdir(parents=True, exist_ok=True)
    dump_yaml(recipe, out / "recipe.resolved.yaml")
    state = RunState(recipe=recipe, out_dir=out)
    prepare_data(state)
    for stage in STAGE_ORDER:
        cfg = getattr(recipe, stage, None)
        if cfg is None:
            continue
        module, func = STAGE_RUNNERS[stage].split(":")
        getattr(importlib.import_module(module), func)(cfg, state)
    return state
