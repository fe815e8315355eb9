"""What the model will be trained on: examples with trained tokens marked, then token statistics.

The body of `sftflow inspect`; the verb only reads the files and loads the tokenizer.
"""

from __future__ import annotations

import sys
from typing import Optional

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .encode import IGNORE_INDEX, EncodeError, ExampleTooLong, NoSupervisedTokens, encode


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


def show_inspection(examples, tok, *, n: int = 3, train_on: str = "assistant",
                    max_length: Optional[int] = None, template: Optional[str] = None,
                    console: Optional[Console] = None, color: Optional[bool] = None) -> dict:
    """Print the first `n` examples with trained tokens marked, then a statistics table.

    Examples that cannot be trained on (too long, nothing supervised) are counted as skipped;
    any other encoding error is raised as `EncodeError` naming the example id.
    Returns the statistics shown.
    """
    console = console or Console()
    color = sys.stdout.isatty() if color is None else color
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
            raise EncodeError(f"example {ex.id}: {e}") from None
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
    console.print(_statistics_table(stats, reasons, color))
    return stats


def _statistics_table(stats: dict, reasons: dict[str, int], color: bool) -> Table:
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
    return table
