"""`sftflow convert` and `sftflow inspect`: data in, and what the model will be trained on."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from .io import read_examples, write_examples, write_rejected
from .chat import IGNORE_INDEX, EncodeError, ExampleTooLong, NoSupervisedTokens, encode


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


def render_marked(enc, tokenizer, color: bool) -> Text | str:
    """Trained tokens highlighted (terminal) or wrapped in [[ ]] (plain)."""
    pieces: list[tuple[str, bool]] = []
    for tid, lab in zip(enc.input_ids, enc.labels):
        tok = tokenizer.decode([tid])
        trained = lab != IGNORE_INDEX
        if pieces and pieces[-1][1] == trained:
            pieces[-1] = (pieces[-1][0] + tok, trained)
        else:
            pieces.append((tok, trained))
    if color:
        t = Text()
        for s, trained in pieces:
            t.append(s, style="bold black on green" if trained else "dim")
        return t
    return "".join(f"[[{s}]]" if trained else s for s, trained in pieces)


def inspect_cmd(
    data: list[Path] = typer.Argument(..., help="data files"),
    model: Optional[str] = typer.Option(None, help="model whose tokenizer and template to use"),
    n: int = typer.Option(3, "-n", help="examples to print"),
    train_on: str = typer.Option("assistant", help="assistant | last | all"),
    max_length: Optional[int] = typer.Option(None, help="truncate like training would"),
    template: Optional[str] = typer.Option(None, help="fallback template: alpaca | chatml"),
    fmt: str = typer.Option("auto", "--format"),
):
    """Show examples with trained tokens marked, then token statistics."""
    from .models import load_tokenizer
    console = Console()
    color = sys.stdout.isatty()
    tok = load_tokenizer(model)
    examples = read_examples(data, fmt).examples
    stats = {"examples": len(examples), "tokens": 0, "supervised": 0, "truncated": 0, "skipped": 0,
             "longest": 0}
    reasons: dict[str, int] = {}
    shown = 0
    for ex in examples:
        try:
            enc = encode(ex.messages, tok, train_on=train_on, max_length=max_length, template=template)
        except (ExampleTooLong, NoSupervisedTokens) as e:
            stats["skipped"] += 1
            reasons[type(e).__name__] = reasons.get(type(e).__name__, 0) + 1
            continue
        except EncodeError as e:
            raise typer.BadParameter(f"example {ex.id}: {e}") from None
        stats["tokens"] += len(enc)
        stats["supervised"] += enc.n_supervised
        stats["truncated"] += enc.truncated
        stats["longest"] = max(stats["longest"], len(enc))
        if shown < n:
            shown += 1
            console.rule(f"example {ex.id} — {len(enc)} tokens, {enc.n_supervised} trained"
                         + (" (truncated)" if enc.truncated else ""))
            if color:
                console.print(render_marked(enc, tok, True))
            else:
                print(render_marked(enc, tok, False))
    table = Table(title="token statistics" + ("" if color else " (trained tokens in [[ ]])"))
    table.add_column("measure")
    table.add_column("value", justify="right")
    share = stats["supervised"] / stats["tokens"] if stats["tokens"] else 0.0
    for k in ("examples", "tokens", "supervised"):
        table.add_row(k, str(stats[k]))
    table.add_row("supervised share", f"{share:.1%}")
    for k in ("truncated", "skipped", "longest"):
        table.add_row(k, str(stats[k]))
    for r, c in reasons.items():
        table.add_row(f"  skipped: {r}", str(c))
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert_cmd)
    app.command("inspect")(inspect_cmd)
