"""Chat rendering, loss masks, and tokenization with labels."""

from .encode import (IGNORE_INDEX, EncodeError, Encoded, ExampleTooLong, NoSupervisedTokens,
                     TemplateError, assistant_spans, encode, encode_many, render, resolve_template)
from .fallbacks import FALLBACK_TEMPLATES

__all__ = ["IGNORE_INDEX", "EncodeError", "Encoded", "ExampleTooLong", "NoSupervisedTokens",
           "TemplateError", "assistant_spans", "encode", "encode_many", "render", "resolve_template",
           "FALLBACK_TEMPLATES"]
