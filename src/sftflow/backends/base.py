"""One interface for every way sftflow talks to an LLM.

A request is a chat (a list of ``{role, content}``); a backend returns one
``Completion`` per request, in order. Backends that can return log-probabilities do
so in ``Completion.logprobs``. A request that failed for good comes back with
``finish_reason == "error"`` and the error text, never as a made-up answer.
"""

from __future__ import annotations

from dataclasses import dataclass, field, asdict
from typing import Any, Callable, Protocol, runtime_checkable


@dataclass
class GenParams:
    max_new_tokens: int = 256
    temperature: float = 0.0          # 0 means greedy
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    seed: int = 0
    logprobs: bool = False            # ask for per-token log-probabilities where the backend has them

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Completion:
    text: str
    finish_reason: str = "stop"       # "stop" (end-of-turn or stop string), "length", "error"
    completion_tokens: int = 0
    prompt_tokens: int = 0
    logprobs: list[float] | None = None
    error: str | None = None
    cached: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Backend(Protocol):
    name: str
    model: str

    def generate(self, requests: list[list[dict[str, str]]], params: GenParams) -> list[Completion]:
        ...


class FakeBackend:
    """Deterministic backend for tests: ``responder(messages) -> str``."""

    name = "fake"

    def __init__(self, responder: Callable[[list[dict[str, str]]], str] | None = None,
                 model: str = "fake-model"):
        self.model = model
        self.responder = responder or (lambda msgs: "ok: " + msgs[-1]["content"][:50])
        self.calls: list[list[dict[str, str]]] = []

    def generate(self, requests, params):
        out = []
        for msgs in requests:
            self.calls.append(msgs)
            text = self.responder(msgs)
            for s in params.stop:
                if s in text:
                    text = text[: text.index(s)]
            out.append(Completion(text=text, finish_reason="stop",
                                  completion_tokens=len(text.split())))
        return out
