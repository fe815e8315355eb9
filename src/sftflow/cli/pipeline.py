"""`sftflow run RECIPE.yaml`, `sftflow demo` and `sftflow experiment select-vs-random`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from ..pipeline.experiment import ExperimentConfig
from .flags import config_flags, with_flags
from .options import config_option, out_option, set_option

RECIPE_SECTIONS = "set in the recipe (--config) or with --set {}.KEY=VALUE"
EXPERIMENT_FLAGS = config_flags(
    ExperimentConfig, skip={s: RECIPE_SECTIONS.format(s) for s in ("select", "train", "eval")})


def run_cmd(
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    set_: Optional[list[str]] = set_option("train.learning_rate=1e-4"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="run folder [runs/<name>]"),
    check: bool = typer.Option(False, "--check", help="validate the recipe and exit"),
):
    """Run the stages a recipe names: generate -> curate -> select -> train -> eval -> report."""
    from ..pipeline.recipe import load_recipe, run_recipe
    r = load_recipe(recipe, set_ or [])
    if check:
        stages = [s for s in ("generate", "curate", "select", "train", "eval", "report") if getattr(r, s, None)]
        typer.echo(f"{recipe}: valid; stages: {', '.join(stages) or '(none)'}")
        return
    state = run_recipe(r, output)
    typer.echo(f"run folder: {state.out_dir}")


def demo_cmd(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="run folder [runs/demo-<time>]"),
    epochs: float = typer.Option(1.0, help="training epochs"),
    max_steps: int = typer.Option(30, help="optimizer steps of 4 examples (-1: whole epochs)"),
    limit: Optional[int] = typer.Option(None, help="evaluate on the first N held-out prompts [40]"),
    report: bool = typer.Option(True, "--report/--no-report", help="write the HTML report"),
    without_tools: bool = typer.Option(True, "--without-tools/--tools-only",
                                       help="also train and evaluate the same recipe answering without tools"),
):
    """Fine-tune SmolLM2-135M-Instruct on the shipped finance data and show base vs tuned; exit 1 on a failed gate."""
    import json

    from ..pipeline.demo import run_demo
    out = output or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    code = run_demo(out, epochs=epochs, max_steps=max_steps, limit=limit, report=report,
                    without_tools_arm=without_tools)
    # The evaluation's gate decides, as for `sftflow eval`: a failed gate is exit 1 even
    # when the run itself completed.
    metrics = out / "metrics.json"
    status = json.loads(metrics.read_text()).get("status") if metrics.exists() else None
    if status == "fail":
        typer.secho("demo: the evaluation gate failed (see metrics.json reasons)", fg="red", err=True)
    raise typer.Exit(code or (1 if status == "fail" else 0))


@with_flags(EXPERIMENT_FLAGS)
def select_vs_random_cmd(
    config: Optional[Path] = config_option(),
    out: Path = out_option(Path("runs/select-vs-random")),
    set_: Optional[list[str]] = set_option("train.max_steps=20"),
    given: dict | None = None,
):
    """Train on the selection and on R random subsets of the same size; compare held-out results."""
    from ..pipeline.experiment import load_experiment_config, run_experiment
    cfg = load_experiment_config(config, set_, **(given or {}))
    result = run_experiment(cfg, out)
    typer.echo(result["table"])
    typer.echo(f"verdict: {result['verdict']}\nresults: {out / 'results.json'}")
