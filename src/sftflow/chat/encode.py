"""Turn a conversation into ``input_ids`` and ``labels`` with exactly the right loss mask.

How the supervised spans are found (all in character offsets of one rendering):

1. ``full`` = the whole conversation rendered with the model's chat template, exactly
   as at inference.
2. For each assistant turn *i*, ``gp`` = the conversation before it rendered *with the
   generation prompt*: that is the text the model sees at inference right before it
   starts writing turn *i*. It must be a prefix of ``full``; if it is not, the
   template is not prefix-stable at that turn (e.g. a generation prompt that pre-fills
   ``<think>`` the full render never contains) and we refuse, naming the turn.
3. The model's output for turn *i* starts at ``len(gp)``. Its content must appear there
   (templates that rewrite content, e.g. strip earlier reasoning, are refused for
   that turn). The output ends after the end-of-turn marker: the text the template
   writes right after an assistant turn when it is last (found by rendering a unique
   sentinel in place of the content), cut where ``full`` diverges from it (a template
   that appends EOS only after the final turn closes middle turns with less), minus
   trailing whitespace, which the model never has to generate.
4. Tokens are mapped to spans through the fast tokenizer's offset mapping; a token
   is supervised when it overlaps a supervised span.

We never tokenize prompt and answer separately (BPE merges across the seam make the
two disagree) and never search the token stream for marker tokens (they also occur
inside content). Padding labels are decided by the attention mask in the collator,
never by comparing with the pad id: SmolLM2's pad token *is* its ``<|im_end|>``.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from .fallbacks import FALLBACK_TEMPLATES

TrainOn = Literal["assistant", "last", "all"]
IGNORE_INDEX = -100
_SENTINEL = "SFTFLOWSENTINEL7f3a"


class EncodeError(ValueError):
    """Base class for examples that cannot be encoded."""


class TemplateError(EncodeError):
    """The chat template cannot give a trustworthy mask."""


class NoSupervisedTokens(EncodeError):
    """After truncation nothing is left to learn from."""


class ExampleTooLong(EncodeError):
    """Even the final exchange alone does not fit ``max_length``."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    attention_mask: list[int]
    text: str = ""
    spans: list[tuple[int, int]] = field(default_factory=list)   # supervised char spans
    truncated: bool = False
    dropped_turns: int = 0

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels,
                "attention_mask": self.attention_mask}


_warned: set[int] = set()


def resolve_template(tokenizer, template: str | None = None) -> str:
    """The Jinja template to render with: a named fallback, or the tokenizer's own."""
    if template:
        if template in FALLBACK_TEMPLATES:
            return FALLBACK_TEMPLATES[template]
        if "{%" in template or "{{" in template:
            return template          # a literal Jinja template
        raise TemplateError(f"unknown template {template!r}; expected one of "
                            f"{', '.join(FALLBACK_TEMPLATES)} or a Jinja string")
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):        # some tokenizers ship several named templates
        own = own.get("default") or next(iter(own.values()))
    if own:
        return own
    if id(tokenizer) not in _warned:
        _warned.add(id(tokenizer))
        warnings.warn("tokenizer has no chat template; using the 'chatml' fallback "
                      "(choose one explicitly with --template alpaca|chatml)", stacklevel=3)
    return FALLBACK_TEMPLATES["chatml"]


def render(tokenizer, messages: list[dict[str, str]], template: str, *,
           add_generation_prompt: bool = False) -> str:
    if not messages:
        return ""
    try:
        return tokenizer.apply_chat_template(messages, chat_template=template, tokenize=False,
                                             add_generation_prompt=add_generation_prompt)
    except Exception as e:  # jinja errors raised by the template itself ("System role not supported")
        raise TemplateError(f"chat template failed to render: {type(e).__name__}: {e}") from None


def _common_prefix_len(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def assistant_spans(messages: list[dict[str, str]], tokenizer, template: str,
                    train_on: TrainOn = "assistant") -> tuple[str, list[tuple[int, int]]]:
    """Render the conversation and return (text, supervised character spans)."""
    full = render(tokenizer, messages, template)
    if train_on == "all":
        return full, [(0, len(full))]
    turns = [i for i, m in enumerate(messages) if m["role"] == "assistant"]
    if train_on == "last":
        turns = turns[-1:]
    elif train_on != "assistant":
        raise ValueError(f"train_on must be 'assistant', 'last' or 'all', not {train_on!r}")
    spans = []
    for i in turns:
        gp = render(tokenizer, messages[:i], template, add_generation_prompt=True) if i else ""
        if not full.startswith(gp):
            at = _common_prefix_len(gp, full)
            raise TemplateError(
                f"chat template is not prefix-stable at turn {i} (assistant): the prompt rendered "
                f"with the generation prompt diverges from the full conversation at character {at} "
                f"({gp[at:at + 30]!r} vs {full[at:at + 30]!r}); training on this rendering would not "
                "match inference")
        start = len(gp)
        content = messages[i]["content"]
        pos = full.find(content, start) if content else start
        if pos < 0 and content.strip():
            content = content.strip()          # templates that trim content (Gemma)
            pos = full.find(content, start)
        if pos < 0:
            raise TemplateError(
                f"chat template changes the content of turn {i} (assistant) when rendering the whole "
                "conversation (e.g. it strips earlier reasoning); its tokens cannot be supervised "
                "faithfully. Use train_on='last' or a training template")
        content_end = pos + len(content)
        probe = render(tokenizer, messages[:i] + [{"role": "assistant", "content": _SENTINEL}], template)
        closing = probe[probe.rindex(_SENTINEL) + len(_SENTINEL):]
        cut = _common_prefix_len(closing, full[content_end:])
        if cut < len(closing):
            # Middle turns may close with less than the final one (EOS only after the last
            # turn). Supervise a marker whole or not at all: back off to the last whitespace.
            ws = max(closing.rfind(c, 0, cut) for c in " \n\t")
            cut = ws if ws >= 0 else 0
        tail = closing[:cut].rstrip()
        if not tail and i == len(messages) - 1:
            raise TemplateError(
                f"chat template writes nothing after the final assistant turn {i}: the model could not "
                "learn to stop. Use a template that closes turns with an end-of-turn token")
        spans.append((start, content_end + len(tail)))
    return full, spans


def _tokenize_with_labels(text: str, spans, tokenizer) -> tuple[list[int], list[int]]:
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError("sftflow needs a fast tokenizer (offset mapping) to place loss masks")
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = enc["input_ids"], enc["offset_mapping"]
    labels = [IGNORE_INDEX] * len(ids)
    for k, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        for a, b in spans:
            if s < b and e > a:
                labels[k] = ids[k]
                break
    return ids, labels


def _drop_oldest_exchange(messages: list[dict[str, str]]) -> list[dict[str, str]] | None:
    """Remove the oldest complete user->assistant exchange after the system prompt."""
    head = 1 if messages[0]["role"] == "system" else 0
    body = messages[head:]
    last_user = max((i for i, m in enumerate(body) if m["role"] == "user"), default=None)
    if last_user is None or last_user == 0:
        return None
    # find the end of the first exchange: the next user message after the first assistant
    first_asst = next((i for i, m in enumerate(body) if m["role"] == "assistant"), None)
    if first_asst is None:
        return None
    nxt = next((i for i in range(first_asst + 1, len(body)) if body[i]["role"] == "user"), None)
    if nxt is None or nxt > last_user:
        return None
    return messages[:head] + body[nxt:]


def encode(messages: list[dict[str, str]], tokenizer, *, train_on: TrainOn = "assistant",
           max_length: int | None = None, template: str | None = None) -> Encoded:
    """Tokenize one conversation; labels are -100 wherever the model is not trained.

    Truncation drops the oldest complete exchanges first and never cuts the final
    answer; an example whose final exchange alone does not fit raises ``ExampleTooLong``.
    """
    tpl = resolve_template(tokenizer, template)
    msgs = [{"role": m["role"], "content": m["content"]} for m in messages]
    dropped = 0
    while True:
        text, spans = assistant_spans(msgs, tokenizer, tpl, train_on)
        ids, labels = _tokenize_with_labels(text, spans, tokenizer)
        if max_length is None or len(ids) <= max_length:
            break
        shorter = _drop_oldest_exchange(msgs)
        if shorter is None:
            raise ExampleTooLong(f"{len(ids)} tokens > max_length {max_length} even with only the "
                                 "final exchange kept")
        msgs, dropped = shorter, dropped + 1
    enc = Encoded(input_ids=ids, labels=labels, attention_mask=[1] * len(ids), text=text,
                  spans=spans, truncated=dropped > 0, dropped_turns=dropped)
    if enc.n_supervised == 0:
        raise NoSupervisedTokens("no supervised token in this example"
                                 + (f" after dropping {dropped} turns" if dropped else ""))
    return enc


def encode_many(examples, tokenizer, *, train_on: TrainOn = "assistant", max_length: int | None = None,
                template: str | None = None) -> tuple[list[Encoded], list[tuple[Any, str]]]:
    """Encode a list of Examples; returns (encoded, [(example, reason) skipped])."""
    out, skipped = [], []
    for ex in examples:
        msgs = ex.messages if hasattr(ex, "messages") else ex
        try:
            out.append(encode(msgs, tokenizer, train_on=train_on, max_length=max_length,
                              template=template))
        except (ExampleTooLong, NoSupervisedTokens) as e:
            skipped.append((ex, f"{type(e).__name__}: {e}"))
    return out, skipped
