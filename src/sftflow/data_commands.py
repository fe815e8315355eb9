"""`convert` and `inspect` moved to ``sftflow.cli.data``; these names stay importable from here."""

from .chat.inspect_view import render_marked  # noqa: F401
from .cli.data import convert_cmd, inspect_cmd  # noqa: F401
