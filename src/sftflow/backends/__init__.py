"""LLM backends: local transformers, OpenAI-compatible HTTP, and a fake one for tests."""

from .base import Backend, Completion, FakeBackend, GenParams

__all__ = ["Backend", "Completion", "FakeBackend", "GenParams", "get_backend"]


def get_backend(kind: str, model: str | None = None, **options) -> Backend:
    """Build a backend by name: 'transformers', 'openai' or 'fake'."""
    if kind == "fake":
        return FakeBackend(model=model or "fake-model", **options)
    if kind == "transformers":
        from .transformers_backend import TransformersBackend
        return TransformersBackend(model=model, **options)
    if kind == "openai":
        from .openai_backend import OpenAIBackend
        return OpenAIBackend(model=model, **options)
    raise ValueError(f"unknown backend {kind!r}; expected transformers, openai or fake")
