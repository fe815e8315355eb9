"""CLI verbs `convert` and `inspect`: data in, and what the model will be trained on."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..io import read_examples, write_examples, write_rejected
from .options import model_option


def convert_cmd(
    inputs: list[Path] = typer.Argument(..., help="input files (last argument is the output)"),
    fmt: str = typer.Option("auto", "--format", help="input format: auto, messages, sharegpt, alpaca, "
                                                     "prompt_completion, sftflow"),
    skip_invalid: bool = typer.Option(False, "--skip-invalid", help="write bad records to OUT.rejected.jsonl"),
):
    """Convert IN... OUT to sftflow records (OUT: .jsonl or .parquet)."""
    if len(inputs) < 2:
        raise typer.BadParameter("give at least one input and the output path")
    *ins, out = inputs
    if out.suffix.lower() not in (".jsonl", ".parquet"):
        raise typer.BadParameter(f"output {out} must end in .jsonl or .parquet")
    res = read_examples(ins, fmt, skip_invalid=skip_invalid)
    n = write_examples(out, res.examples)
    msg = f"wrote {n} records to {out}"
    if res.rejected:
        rej = out.with_name(out.stem + ".rejected.jsonl")
        write_rejected(rej, res.rejected)
        msg += f"; {len(res.rejected)} invalid records written to {rej}"
    typer.echo(msg)


def inspect_cmd(
    data: list[Path] = typer.Argument(..., help="data files"),
    model: Optional[str] = model_option("model whose tokenizer and template to use"),
    n: int = typer.Option(3, "-n", help="examples to print"),
    train_on: str = typer.Option("assistant", help="assistant | last | all"),
    max_length: Optional[int] = typer.Option(None, help="truncate like training would"),
    template: Optional[str] = typer.Option(None, help="fallback template: alpaca | chatml"),
    fmt: str = typer.Option("auto", "--format"),
):
    """Show examples with trained tokens marked, then token statistics."""
    from ..chat import EncodeError
    from ..chat.inspect_view import show_inspection
    from ..models import load_tokenizer
    tok = load_tokenizer(model)
    examples = read_examples(data, fmt).examples
    try:
        show_inspection(examples, tok, n=n, train_on=train_on, max_length=max_length, template=template)
    except EncodeError as e:
        raise typer.BadParameter(str(e)) from None
