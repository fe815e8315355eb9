"""The command line: one table of verbs -> functions. Parsing only.

Each verb is a module-level function in ``sftflow/cli/<stage>.py`` whose flags are
generated from that stage's typed config (``cli/flags.py``), so a config field and its
flag cannot drift; ``tests/unit/test_cli_flags.py`` checks both ways. Verb modules
import only configs at the top: torch and transformers load inside the verb that runs,
so ``sftflow --help`` and a config error answer at once.
"""

from __future__ import annotations

import sys

import typer

from ..errors import BAD_INPUT, RUN_FAILED
from . import cache, curate, data, evaluate, generate, pipeline, report, select, train

COMMANDS = {
    "convert": data.convert_cmd,
    "inspect": data.inspect_cmd,
    "generate": {
        "self-instruct": generate.self_instruct_cmd,
        "paraphrase": generate.paraphrase_cmd,
        "roundtrip": generate.roundtrip_cmd,
        "backtranslate": generate.backtranslate_cmd,
    },
    "curate": curate.curate_cmd,
    "stats": curate.stats_cmd,
    "check-leak": curate.check_leak_cmd,
    "mix": curate.mix_cmd,
    "score": select.score_cmd,
    "select": select.select_cmd,
    "train": train.train_cmd,
    "eval": evaluate.eval_cmd,
    "judge": evaluate.judge_cmd,
    "report": report.report_cmd,
    "run": pipeline.run_cmd,
    "demo": pipeline.demo_cmd,
    "experiment": {
        "select-vs-random": pipeline.select_vs_random_cmd,
    },
    "cache": {"info": cache.info_cmd, "prune": cache.prune_cmd},
}

GROUP_HELP = {
    "generate": "Generate training data with a model.",
    "experiment": "Experiments that test whether a choice pays off.",
    "cache": "Show or shrink the response, score and embedding caches.",
}


def build_app(table: dict = COMMANDS, help_text: str | None = None) -> typer.Typer:
    """A typer app from a verb table; a nested mapping is a group of sub-verbs."""
    new = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                      help=help_text)
    for name, target in table.items():
        if isinstance(target, dict):
            new.add_typer(build_app(target, GROUP_HELP[name]), name=name)
        else:
            new.command(name)(target)
    return new


app = build_app(help_text="sftflow: generate, curate, select, train, evaluate and report, end to end.")


def _register_all() -> None:
    """Kept for callers that registered the verbs themselves: the app is built on import."""


def main() -> None:
    try:
        app()
    except BAD_INPUT as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except RUN_FAILED as e:
        typer.secho(f"failed: {e}", fg="red", err=True)
        sys.exit(1)
