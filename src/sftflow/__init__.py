"""sftflow: supervised fine-tuning end to end, from data to a measurably better model."""

__version__ = "0.1.0"

from .schema import Example, RecordError  # noqa: E402


def encode(messages, tokenizer, *, tools=None, train_on="assistant", max_length=None, template=None):
    """Tokenize a conversation with exact labels; see ``sftflow.chat.encode``."""
    from .chat import encode as _encode
    return _encode(messages, tokenizer, tools=tools, train_on=train_on, max_length=max_length,
                   template=template)


__all__ = ["Example", "RecordError", "encode", "__version__"]
