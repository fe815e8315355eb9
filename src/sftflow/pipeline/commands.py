"""`sftflow run RECIPE.yaml` and `sftflow demo`."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from .recipe import load_recipe, run_recipe


def run_cmd(
    recipe: Path = typer.Argument(..., help="recipe YAML"),
    set_: list[str] = typer.Option([], "--set", help="override: section.key=value (e.g. train.lr=1e-4)"),
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="run folder [runs/<name>]"),
    check: bool = typer.Option(False, "--check", help="validate the recipe and exit"),
):
    """Run the stages a recipe names: generate -> curate -> select -> train -> eval -> report."""
    r = load_recipe(recipe, set_)
    if check:
        stages = [s for s in ("generate", "curate", "select", "train", "eval", "report") if getattr(r, s, None)]
        typer.echo(f"{recipe}: valid; stages: {', '.join(stages) or '(none)'}")
        return
    state = run_recipe(r, output)
    typer.echo(f"run folder: {state.out_dir}")


def demo_cmd(
    output: Optional[Path] = typer.Option(None, "-o", "--output", help="run folder [runs/demo-<time>]"),
    epochs: float = typer.Option(1.0, help="training epochs"),
    max_steps: int = typer.Option(30, help="optimizer steps of 8 examples (-1: whole epochs)"),
    limit: Optional[int] = typer.Option(None, help="evaluate on the first N held-out prompts [40]"),
    report: bool = typer.Option(True, "--report/--no-report", help="write the HTML report"),
):
    """Fine-tune SmolLM2-135M-Instruct on the shipped finance data and show base vs tuned."""
    from .demo import run_demo
    out = output or Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S")
    code = run_demo(out, epochs=epochs, max_steps=max_steps, limit=limit, report=report)
    raise typer.Exit(code)


def register(app: typer.Typer) -> None:
    app.command("run")(run_cmd)
    app.command("demo")(demo_cmd)
