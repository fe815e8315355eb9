"""What the model will be trained on: examples with trained tokens marked, then token statistics.

The body of `sftflow inspect`; the verb only reads the files and loads the tokenizer.
Reasoning traces, tool calls and tool results are shown distinctly (on a terminal by
colour, in plain output by ``<reasoning>``, ``<call>`` and ``<result>`` tags around the
text), trained tokens as ever in green or ``[[ ]]``, and the statistics count each.
"""

from __future__ import annotations

import sys
import warnings
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from .encode import IGNORE_INDEX, EncodeError, encode_many
from .render import string_leaves

STYLES = {None: ("bold black on green", "dim"), "reasoning": ("bold black on cyan", "cyan"),
          "call": ("bold black on yellow", "yellow"), "result": ("bold white on red", "magenta")}


def kind_spans(text: str, messages: list[dict[str, Any]]) -> list[tuple[int, int, str]]:
    """Character spans of reasoning traces, tool-call text and tool results in a rendering.
    Each turn's pieces are searched from where the previous turn's pieces ended, so text
    repeated across turns is attributed in conversation order."""
    spans: list[tuple[int, int, str]] = []
    pos = 0
    for m in messages:
        pieces = [(m["content"].strip(), "result" if m["role"] == "tool" else None)]
        pieces.append((m.get("reasoning_content", "").strip(), "reasoning"))
        for c in m.get("tool_calls", []):
            pieces += [(s, "call") for s in [c["function"]["name"]] + string_leaves(c["function"]["arguments"])]
        end = pos
        for piece, kind in pieces:
            at = text.find(piece, pos) if piece else -1
            if at < 0:
                continue
            end = max(end, at + len(piece))
            if kind:
                spans.append((at, at + len(piece), kind))
        pos = end
    return spans


def _kind_at(s: int, e: int, spans) -> str | None:
    return next((k for a, b, k in spans if s < b and e > a), None)


def render_marked(enc, tokenizer, color: bool, spans=()) -> Text | str:
    """Trained tokens highlighted (terminal) or wrapped in [[ ]] (plain); reasoning, tool
    calls and tool results in their own colour or tags."""
    pieces: list[tuple[str, bool, str | None]] = []
    offsets = tokenizer(enc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"] \
        if spans else [(0, 0)] * len(enc.input_ids)
    if len(offsets) != len(enc.input_ids):       # tokenized in two pieces at a turn boundary
        offsets = [(0, 0)] * len(enc.input_ids)
    for tid, lab, (s, e) in zip(enc.input_ids, enc.labels, offsets):
        tok = tokenizer.decode([tid])
        key = (lab != IGNORE_INDEX, _kind_at(s, e, spans) if e > s else None)
        if pieces and pieces[-1][1:] == key:
            pieces[-1] = (pieces[-1][0] + tok, *key)
        else:
            pieces.append((tok, *key))
    if color:
        t = Text()
        for s, trained, kind in pieces:
            t.append(s, style=STYLES[kind][0 if trained else 1])
        return t
    out = []
    for s, trained, kind in pieces:
        s = f"[[{s}]]" if trained else s
        out.append(f"<{kind}>{s}</{kind}>" if kind else s)
    return "".join(out)


def _count_trained_kinds(enc, tokenizer, spans, stats: dict) -> None:
    if not spans:
        return
    offsets = tokenizer(enc.text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    if len(offsets) != len(enc.input_ids):       # tokenized in two pieces at a turn boundary
        offsets = [(0, 0)] * len(enc.input_ids)
    for lab, (s, e) in zip(enc.labels, offsets):
        kind = _kind_at(s, e, spans) if e > s else None
        if kind and lab != IGNORE_INDEX:
            stats[f"trained {kind} tokens"] += 1


def show_inspection(examples, tok, *, n: int = 3, train_on: str = "assistant",
                    max_length: int | None = None, template: str | None = None,
                    console: Console | None = None, color: bool | None = None) -> dict:
    """Print the first `n` examples with trained tokens marked, then a statistics table.

    Examples that cannot be trained on (too long, nothing supervised) are counted as skipped;
    any other encoding error is raised as `EncodeError` naming the example id. An example a
    template trains one turn at a time shows one block per turn. Returns the statistics shown.
    """
    console = console or Console()
    color = sys.stdout.isatty() if color is None else color
    stats = {"examples": len(examples), "tokens": 0, "supervised": 0, "truncated": 0, "skipped": 0,
             "longest": 0, "reasoning traces": 0, "tool calls": 0, "tool results": 0,
             "trained reasoning tokens": 0, "trained call tokens": 0, "trained result tokens": 0}
    reasons: dict[str, int] = {}
    shown = 0
    for ex in examples:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")          # the per-turn notice: shown in the block title
                encs, skipped = encode_many([ex], tok, train_on=train_on, max_length=max_length, template=template)
        except EncodeError as e:
            raise EncodeError(f"example {ex.id}: {e}") from None
        stats["reasoning traces"] += sum(bool(m.get("reasoning_content")) for m in ex.messages)
        stats["tool calls"] += sum(len(m.get("tool_calls", [])) for m in ex.messages)
        stats["tool results"] += sum(m["role"] == "tool" for m in ex.messages)
        for _, reason in skipped:
            stats["skipped"] += 1
            name = reason.split(":")[0].split(" ")[0]
            reasons[name] = reasons.get(name, 0) + 1
        for enc in encs:
            spans = kind_spans(enc.text, ex.messages[:enc.turn + 1] if enc.turn is not None else ex.messages)
            _count_trained_kinds(enc, tok, spans, stats)
            stats["tokens"] += len(enc)
            stats["supervised"] += enc.n_supervised
            stats["truncated"] += enc.truncated
            stats["longest"] = max(stats["longest"], len(enc))
            if shown < n:
                shown += 1
                turn = f" (turn {enc.turn}, trained one turn at a time)" if enc.turn is not None else ""
                console.rule(f"example {ex.id}{turn} — {len(enc)} tokens, {enc.n_supervised} trained"
                             + (" (truncated)" if enc.truncated else ""))
                if color:
                    console.print(render_marked(enc, tok, True, spans))
                else:
                    print(render_marked(enc, tok, False, spans))
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
    for k in ("truncated", "skipped", "longest", "reasoning traces", "tool calls", "tool results",
              "trained reasoning tokens", "trained call tokens", "trained result tokens"):
        table.add_row(k, str(stats[k]))
    for r, c in reasons.items():
        table.add_row(f"  skipped: {r}", str(c))
    return table
