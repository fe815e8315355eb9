"""CLI verbs ``eval`` and ``judge``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from ..config import ConfigError
from ..evaluate.config import EvalConfig
from .flags import config_flags, with_flags
from .options import config_option, out_option, set_option, stage_config

EVAL_FLAGS = config_flags(
    EvalConfig,
    skip={"probes": "probe mappings: set them in --config", "extra_probes": "--probes FILE reads them"},
    names={"choice.tasks": ("--choice",)})


@with_flags(EVAL_FLAGS)
def eval_cmd(
    config: Optional[Path] = config_option(),
    out: Path = out_option(Path("eval")),
    probes: Optional[Path] = typer.Option(None, "--probes", help="YAML file of extra probes "
                                          "(added to extra_probes)"),
    set_: Optional[list[str]] = set_option("choice.fail_drop=3"),
    given: dict | None = None,
):
    """Evaluate a tuned model (vs its base): loss, probes, forgetting, judge; exit 1 when a gate fails."""
    cfg = stage_config(EvalConfig, config, "eval", given or {}, set_, "eval options")
    if not cfg.model:
        raise ConfigError("eval needs the tuned model: --model PATH (or model: in --config)")
    from ..probes import load_probes
    from ..evaluate.run import evaluate
    if probes:
        cfg.extra_probes = list(cfg.extra_probes) + load_probes(probes)
    metrics = evaluate(cfg, out_dir=out)
    print_summary(metrics)
    typer.echo(f"wrote {out / 'metrics.json'} and {out / 'generations.jsonl'}")
    if metrics["status"] == "fail":
        raise typer.Exit(1)


def judge_cmd(
    a: Path = typer.Option(..., "--a", help="JSONL of answers (the reference side, e.g. base)"),
    b: Path = typer.Option(..., "--b", help="JSONL of answers (the candidate side, e.g. tuned)"),
    backend: str = typer.Option("transformers", "--backend", help="transformers, openai or fake"),
    model: Optional[str] = typer.Option(None, "--model", help="judge model"),
    mode: str = typer.Option("pairwise", "--mode", help="pairwise or single"),
    prompt: Optional[Path] = typer.Option(None, "--prompt", help="judge prompt file"),
    out: Path = out_option(Path("judge")),
):
    """Judge two files of answers (rows with question/prompt and answer/text): B vs A."""
    from ..backends import get_backend
    from ..judge import judge_pairwise, judge_single, render_conversation
    from ..evaluate.run import clean_json
    from ..io import write_jsonl

    qa, ans_a = read_answers(a)
    qb, ans_b = read_answers(b)
    if len(qa) != len(qb) or list(map(render_conversation, qa)) != list(map(render_conversation, qb)):
        raise typer.BadParameter(f"{a} and {b} must hold the same questions in the same order")
    be = get_backend(backend, model=model)
    if mode == "pairwise":
        summary, rows = judge_pairwise(be, qa, ans_b, ans_a, prompt=str(prompt) if prompt else None)
    else:
        summary, rows = judge_single(be, qa, {"a": ans_a, "b": ans_b}, prompt=str(prompt) if prompt else None)
    out.mkdir(parents=True, exist_ok=True)
    write_jsonl(out / "judgments.jsonl", rows)
    (out / "judge.json").write_text(json.dumps(clean_json(summary), indent=2))
    typer.echo(json.dumps(clean_json(summary)))


def _fmt(v, pct: bool = False) -> str:
    if v is None:
        return "-"
    return f"{100 * v:.1f}%" if pct else f"{v:.4f}"


def print_summary(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    t = Table(title="sftflow eval: base vs tuned")
    t.add_column("metric")
    t.add_column("base", justify="right")
    t.add_column("tuned", justify="right")
    loss = metrics.get("loss") or {}
    for key in ("loss", "perplexity"):
        t.add_row(f"held-out {key}", _fmt((loss.get("base") or {}).get(key)),
                  _fmt((loss.get("tuned") or {}).get(key)))
    for name, p in (metrics.get("probes") or {}).items():
        cell = lambda s: "-" if not p.get(s) else (  # noqa: E731
            f"{_fmt(p[s]['rate'], True)} [{_fmt(p[s]['low'], True)}, {_fmt(p[s]['high'], True)}]")
        t.add_row(f"probe {name}", cell("base"), cell("tuned"))
    for name, c in (metrics.get("choice") or {}).items():
        for k in ("acc", "acc_norm"):
            t.add_row(f"{name} {k}", _fmt((c.get("base") or {}).get(k), True),
                      _fmt((c.get("tuned") or {}).get(k), True))
    con.print(t)
    j = metrics.get("judge")
    if j and j.get("mode") == "pairwise":
        con.print(f"judge (tuned vs base, {j['n']} pairs, {j['unparsed']} unparsed): "
                  f"win {_fmt(j['win'], True)} [{_fmt(j['win_low'], True)}, {_fmt(j['win_high'], True)}], "
                  f"tie {_fmt(j['tie'], True)}, loss {_fmt(j['loss'], True)}")
    elif j:
        con.print(f"judge grades: base {_fmt(j['base']['mean'])}, tuned {_fmt(j['tuned']['mean'])} "
                  f"({j['unparsed']} unparsed)")
    color = {"pass": "green", "warn": "yellow", "fail": "red"}[metrics["status"]]
    con.print(f"[{color}]status: {metrics['status']}[/{color}]")
    for r in metrics.get("reasons", []):
        con.print(f"  - {r}")



def read_answers(path: Path) -> tuple[list, list[str]]:
    """Questions and answers from a JSONL: ``question``/``prompt`` and ``answer``/``text``."""
    from ..schema import RecordError

    from ..io import iter_jsonl

    qs, ans = [], []
    for n, rec in iter_jsonl(path):
        if not isinstance(rec, dict):
            raise RecordError(f"expected a JSON object, got {type(rec).__name__}", path=str(path), line=n)
        q = rec.get("question", rec.get("prompt"))
        if isinstance(q, list) and not all(isinstance(m, dict) and isinstance(m.get("role"), str) for m in q):
            raise RecordError("'prompt' messages need a 'role' each", path=str(path), line=n, field="prompt")
        # chat messages stay a conversation: the judge reads the system prompt and earlier turns
        a = rec.get("answer", rec.get("text"))
        if not isinstance(q, (str, list)) or not q:
            raise RecordError("missing 'question' (or 'prompt')", path=str(path), line=n, field="question")
        if not isinstance(a, str):
            raise RecordError("missing 'answer' (or 'text')", path=str(path), line=n, field="answer")
        qs.append(q)
        ans.append(a)
    return qs, ans
