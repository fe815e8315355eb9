"""`sftflow generate self-instruct | paraphrase | roundtrip | backtranslate`.

The four verbs share one backend group and the top-level options, generated from
GenerateConfig; each adds the section of its own method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from ..config import validate
from ..generate.config import (BackendConfig, BacktranslateConfig, GenerateConfig, RewriteConfig,
                               SelfInstructConfig, ValidationConfig)
from .flags import ENGINE_NAMES, config_flags, in_section, with_flags
from .options import out_option

OUT = out_option(help="output folder (records, rejects, dead letters, cache, manifest)")
INPUT_IS_ARGUMENT = {"input": "the INPUT argument"}

# The backend group, declared once for the four verbs.
BACKEND_FLAGS = in_section(config_flags(BackendConfig, names={"kind": ("--backend",)}), "backend")
COMMON_FLAGS = config_flags(
    GenerateConfig, only=("seed", "show_progress", "engine"),
    names={"show_progress": ("--show-progress", "--quiet"), **ENGINE_NAMES}) + BACKEND_FLAGS
# Method-specific sections; a verb leaves out what only the other rewrite method reads.
SELF_INSTRUCT_FLAGS = in_section(config_flags(SelfInstructConfig), "self_instruct")
VALIDATION_FLAGS = in_section(config_flags(ValidationConfig, names={"embed_method": ("--embed",)}),
                              "validation")
PARAPHRASE_FLAGS = in_section(config_flags(
    RewriteConfig, skip={**INPUT_IS_ARGUMENT, "pivot": "roundtrip only"},
    names={"styles": ("--style", "--styles")}), "rewrite") + VALIDATION_FLAGS
ROUNDTRIP_FLAGS = in_section(config_flags(
    RewriteConfig, skip={**INPUT_IS_ARGUMENT, "styles": "paraphrase only", "k": "paraphrase only"}),
    "rewrite") + VALIDATION_FLAGS
BACKTRANSLATE_FLAGS = in_section(config_flags(BacktranslateConfig, skip=INPUT_IS_ARGUMENT), "backtranslate")


def generate_config(method: str, given: dict[str, Any]) -> GenerateConfig:
    return validate(GenerateConfig, {**given, "method": method}, "command line")


def run_and_report(cfg: GenerateConfig, out: Path) -> dict[str, Any]:
    from ..pipeline.stages.generate import run_generate
    counts = run_generate(cfg, out)
    parts = [f"{counts.get('records', 0)} records", f"{counts.get('rejected', 0)} rejected",
             f"{counts.get('requests', 0)} requests ({counts.get('cache_hits', 0)} from cache)",
             f"{counts.get('retries', 0)} retries", f"{counts.get('dead_lettered', 0)} dead-lettered"]
    if counts.get("tokens_per_second"):
        parts.append(f"{counts['tokens_per_second']:.1f} tokens/s")
    typer.echo(", ".join(parts) + f" -> {out}")
    if counts.get("dead_lettered"):
        typer.secho(f"{counts['dead_lettered']} requests failed for good: see {out}/dead_letter.jsonl; "
                    "run the same command again to retry them", fg="yellow", err=True)
    return counts


def with_input(given: dict[str, Any], section: str, path: Path) -> dict[str, Any]:
    return {**given, section: {**given.get(section, {}), "input": str(path)}}


@with_flags(SELF_INSTRUCT_FLAGS, COMMON_FLAGS)
def self_instruct_cmd(out: Path = OUT, given: dict | None = None):
    """Self-Instruct: bootstrap instructions from seed tasks, then instances; resumable."""
    cfg = generate_config("self-instruct", given or {})
    counts = run_and_report(cfg, out)
    n = cfg.self_instruct.n
    if counts.get("instructions", 0) < n:
        typer.secho(f"only {counts.get('instructions', 0)} of {n} new instructions passed the filters "
                    f"in {counts.get('rounds')} rounds (see rejected.jsonl)", fg="yellow", err=True)


@with_flags(PARAPHRASE_FLAGS, COMMON_FLAGS)
def paraphrase_cmd(input: Path = typer.Argument(..., help="records whose instructions to rewrite (any format)"),
                   out: Path = OUT, given: dict | None = None):
    """Rewrite each instruction k ways in different styles, keeping the response."""
    run_and_report(generate_config("paraphrase", with_input(given or {}, "rewrite", input)), out)


@with_flags(ROUNDTRIP_FLAGS, COMMON_FLAGS)
def roundtrip_cmd(input: Path = typer.Argument(..., help="records whose instructions to round-trip "
                                                         "(any format)"),
                  out: Path = OUT, given: dict | None = None):
    """Translate each instruction to a pivot language and back."""
    run_and_report(generate_config("roundtrip", with_input(given or {}, "rewrite", input)), out)


@with_flags(BACKTRANSLATE_FLAGS, COMMON_FLAGS)
def backtranslate_cmd(input: Path = typer.Argument(..., help="unlabelled texts: .txt (blank-line separated) "
                                                             "or JSONL"),
                      out: Path = OUT, given: dict | None = None):
    """Instruction backtranslation (Humpback): write the instruction each text answers, then self-curate."""
    run_and_report(generate_config("backtranslate", with_input(given or {}, "backtranslate", input)), out)
