"""Chat rendering, loss masks, and tokenization with labels."""

from .encode import (IGNORE_INDEX, Encoded, ExampleTooLong, NoSupervisedTokens, assistant_spans, encode,
                     encode_many, encode_turns, expand_per_turn)
from .fallbacks import FALLBACK_TEMPLATES
from .render import EncodeError, TemplateCannotShow, TemplateError, render, resolve_template
from .spans import HistoryRewritten
from .tool_fallback import TOOL_FORMATS, ToolFormat, summarize_formats

__all__ = ["FALLBACK_TEMPLATES", "IGNORE_INDEX", "TOOL_FORMATS", "EncodeError", "Encoded", "ExampleTooLong",
           "HistoryRewritten", "NoSupervisedTokens", "TemplateCannotShow", "TemplateError", "ToolFormat",
           "assistant_spans", "encode", "encode_many", "encode_turns", "expand_per_turn", "render",
           "resolve_template", "summarize_formats"]
