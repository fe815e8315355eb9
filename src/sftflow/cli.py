"""The command line: a table of verbs -> library functions. Parsing only.

Each stage keeps its verbs beside its code in ``<stage>/commands.py`` with a
``register(app)`` function; this file only lists those modules, so adding a stage is
one line here and no stage's options leak into another's.
"""

from __future__ import annotations

import importlib
import sys

import typer

from .config import ConfigError
from .schema import RecordError

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                  help="sftflow: generate, curate, select, train, evaluate and report, end to end.")

STAGE_COMMANDS = (
    "sftflow.data_commands",      # convert, inspect
    "sftflow.generate.commands",  # generate self-instruct|paraphrase|roundtrip|backtranslate
    "sftflow.curate.commands",    # curate, stats, check-leak, mix
    "sftflow.select.commands",    # score, select, experiment select-vs-random
    "sftflow.train.commands",     # train
    "sftflow.evaluate.commands",  # eval, judge
    "sftflow.report.commands",    # report
    "sftflow.pipeline.commands",    # run, demo
)


def _register_all() -> None:
    for module in STAGE_COMMANDS:
        importlib.import_module(module).register(app)


def main() -> None:
    _register_all()
    from .evaluate.run import EvalFailed
    from .train.sft import NonFiniteLoss
    try:
        app()
    except (ConfigError, RecordError) as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        sys.exit(2)
    except (EvalFailed, NonFiniteLoss) as e:
        typer.secho(f"failed: {e}", fg="red", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
