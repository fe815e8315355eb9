"""Turn a conversation into ``input_ids`` and ``labels`` with exactly the right loss mask.

How the supervised spans are found (all in character offsets of one rendering; the
per-turn rules are written out in ``spans.py``):

1. ``render.choose_form`` picks the message shape the template reads (reasoning key,
   tool-call arguments as mapping or text, text parts) and refuses a template that
   drops any piece of the record: content, tool calls, tool results, the tools offered.
2. ``full`` = the whole conversation rendered with the model's chat template, exactly
   as at inference, with ``tools`` passed to the template.
3. For each trained assistant turn *i*, the model's output starts where the
   conversation before it, rendered *with the generation prompt*, ends: that is the
   text the model sees right before it writes turn *i*. It runs over the reasoning
   trace, the content and the tool-call text as rendered, then the end-of-turn marker.
   Tool results, system and user turns, role headers, the tools block and generation
   prompts are never inside it.
4. A template that renders history differently from how the model wrote it (earlier
   reasoning stripped, an empty think block only in the final turn) cannot train the
   whole conversation as one sequence: ``encode`` raises ``HistoryRewritten`` and
   ``encode_many`` trains one example per assistant turn instead, each with the
   history exactly as the template renders it at inference (a notice says so).
5. Tokens are mapped to spans through the fast tokenizer's offset mapping. A token
   that straddles a span's start holds prompt and answer text at once. At inference
   the prompt is tokenized on its own and the model's tokens begin exactly where the
   turn does, so for the final trained turn the text is tokenized in two pieces at
   that boundary (the split the generation prompt guarantees). For an earlier turn a
   single sequence cannot hold both tokenizations (the next turn's prompt merges the
   token), so it is ``HistoryRewritten``: one example per turn. A token that runs past
   a span's end is supervised when the text beyond the end is whitespace (written
   with the stop marker); otherwise the turn is refused, named.

We never tokenize prompt and answer separately (BPE merges across the seam make the
two disagree) and never search the token stream for marker tokens (they also occur
inside content). Padding labels are decided by the attention mask in the collator,
never by comparing with the pad id: SmolLM2's pad token *is* its ``<|im_end|>``.
"""

from __future__ import annotations

import bisect
import warnings
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ..schema import RecordError, validate_messages
from .render import EncodeError, TemplateError, choose_form, resolve_template
from .spans import HistoryRewritten, Renderer, turn_span
from .tool_fallback import Formats, ToolFormat, rewrite, split_parallel_calls

TrainOn = Literal["assistant", "last", "all"]
IGNORE_INDEX = -100


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
    turn: int | None = None        # the one assistant turn trained, when expanded per turn
    formats: dict[str, Any] = field(default_factory=dict)   # how tool data and traces were rendered

    @property
    def n_supervised(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)

    def to_dict(self) -> dict[str, list[int]]:
        return {"input_ids": self.input_ids, "labels": self.labels,
                "attention_mask": self.attention_mask}


def _canonical(messages) -> list[dict[str, Any]]:
    try:
        return validate_messages(list(messages))
    except RecordError as e:
        raise EncodeError(f"not a valid conversation: {e}") from None


def _spans(messages: list[dict[str, Any]], tokenizer, template: str, train_on: TrainOn, tools,
           tool_format: ToolFormat) -> tuple[str, list[tuple[int, int]], list[int] | None, Formats]:
    """(text, supervised spans, the trained turns' indices in the rendered messages, formats used)."""
    msgs, tools, formats = rewrite(tokenizer, _canonical(messages), template, tools, tool_format)
    form, full = choose_form(tokenizer, msgs, template, tools)
    if train_on == "all":
        return full, [(0, len(full))], None, formats
    turns = [i for i, m in enumerate(msgs) if m["role"] == "assistant"]
    if train_on == "last":
        turns = turns[-1:]
    elif train_on != "assistant":
        raise ValueError(f"train_on must be 'assistant', 'last' or 'all', not {train_on!r}")
    r = Renderer(tokenizer, msgs, template, form, tools)
    text, spans = full, []
    for i in turns:
        text, a, b = turn_span(r, text, i)
        spans.append((a, b))
    return text, spans, turns, formats


def assistant_spans(messages: list[dict[str, Any]], tokenizer, template: str,
                    train_on: TrainOn = "assistant", *, tools: list[dict] | None = None,
                    tool_format: ToolFormat = "auto") -> tuple[str, list[tuple[int, int]]]:
    """Render the conversation and return (text, supervised character spans)."""
    text, spans, _, _ = _spans(messages, tokenizer, template, train_on, tools, tool_format)
    return text, spans


def _tokenize(text: str, tokenizer, cut: int | None = None) -> tuple[list[int], list[tuple[int, int]]]:
    """Token ids and character offsets; with ``cut``, the two sides are tokenized apart."""
    if cut is None:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return enc["input_ids"], [tuple(o) for o in enc["offset_mapping"]]
    ids_a, off_a = _tokenize(text[:cut], tokenizer)
    ids_b, off_b = _tokenize(text[cut:], tokenizer)
    return ids_a + ids_b, off_a + [(s + cut, e + cut) for s, e in off_b]


def _token_at(offsets, starts: list[int], pos: int) -> int | None:
    """Index of the token whose characters run across ``pos`` (start < pos < end), if any."""
    k = bisect.bisect_right(starts, pos - 1) - 1
    while k >= 0 and offsets[k][1] <= offsets[k][0]:     # zero-width tokens hold no text
        k -= 1
    return k if k >= 0 and offsets[k][0] < pos < offsets[k][1] else None


def _straddle(text: str, offsets, spans) -> tuple[int, str, int, int] | None:
    """(span index, 'start'|'end', token start, token end) of the first token that crosses a
    span edge with text of consequence on both sides; None when there is none."""
    starts = [s for s, _ in offsets]
    for n, (a, b) in enumerate(spans):
        k = _token_at(offsets, starts, a)
        if k is not None:
            return n, "start", *offsets[k]
        k = _token_at(offsets, starts, b)
        if k is not None and text[b:offsets[k][1]].strip():
            return n, "end", *offsets[k]
    return None


def _tokenize_with_labels(text: str, spans, tokenizer, turns: list[int] | None = None
                          ) -> tuple[list[int], list[int]]:
    if not getattr(tokenizer, "is_fast", False):
        raise TemplateError("sftflow needs a fast tokenizer (offset mapping) to place loss masks")
    ids, offsets = _tokenize(text, tokenizer)
    hit = _straddle(text, offsets, spans)
    if hit and hit[1] == "start" and hit[0] == len(spans) - 1:
        # The final trained turn starts inside a token (``<think>\n`` + ``\n</think>``
        # merging into one newline token): at inference the prompt is tokenized on its
        # own and the model's tokens begin at the turn, so tokenize the two sides apart.
        ids, offsets = _tokenize(text, tokenizer, cut=spans[-1][0])
        hit = _straddle(text, offsets, spans)
    if hit:
        n, edge, s, e = hit
        turn = turns[n] if turns else n
        if edge == "start":      # one sequence cannot hold both tokenizations of this history
            raise HistoryRewritten(turn, f"token {text[s:e]!r} holds the end of the generation prompt and the "
                                         "start of the turn; at inference the prompt is tokenized on its own")
        raise TemplateError(f"token {text[s:e]!r} straddles the end of assistant turn {turn}: it holds text the "
                            "model writes and text it does not, so it can be neither trained nor left out "
                            "exactly. Use a template whose turns end at a token boundary (a special token)")
    labels = [IGNORE_INDEX] * len(ids)
    starts = [s for s, _ in offsets]
    for a, b in spans:                          # tokens overlapping [a, b): start < b and end > a
        for k in range(max(bisect.bisect_right(starts, a) - 1, 0), bisect.bisect_left(starts, b)):
            s, e = offsets[k]
            if e > s and s < b and e > a:
                labels[k] = ids[k]
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


def encode(messages: list[dict[str, Any]], tokenizer, *, tools: list[dict] | None = None,
           train_on: TrainOn = "assistant", max_length: int | None = None,
           template: str | None = None, tool_format: ToolFormat = "auto") -> Encoded:
    """Tokenize one conversation; labels are -100 wherever the model is not trained.

    ``tools`` (function schemas, OpenAI form) are passed to the template. Truncation
    drops the oldest complete exchanges first and never cuts the final answer; an
    example whose final exchange alone does not fit raises ``ExampleTooLong``. A
    template that renders earlier turns differently from how the model wrote them
    raises ``HistoryRewritten`` for ``train_on='assistant'``: see ``encode_turns``.
    ``tool_format`` decides what happens to tool calls and traces the template cannot
    show (``tool_fallback``): ``auto`` writes them Hermes style, ``native`` refuses.
    """
    tpl = resolve_template(tokenizer, template)
    msgs, split = split_parallel_calls(tokenizer, _canonical(messages), tpl, tool_format)
    dropped = 0
    while True:
        text, spans, turns, formats = _spans(msgs, tokenizer, tpl, train_on, tools, tool_format)
        ids, labels = _tokenize_with_labels(text, spans, tokenizer, turns)
        if max_length is None or len(ids) <= max_length:
            break
        shorter = _drop_oldest_exchange(msgs)
        if shorter is None:
            raise ExampleTooLong(f"{len(ids)} tokens > max_length {max_length} even with only the "
                                 "final exchange kept")
        msgs, dropped = shorter, dropped + 1
    enc = Encoded(input_ids=ids, labels=labels, attention_mask=[1] * len(ids), text=text, spans=spans,
                  truncated=dropped > 0, dropped_turns=dropped,
                  formats=replace(formats, split_calls=split).to_dict())
    if enc.n_supervised == 0:
        raise NoSupervisedTokens("no supervised token in this example"
                                 + (f" after dropping {dropped} turns" if dropped else ""))
    return enc


def _per_turn(msgs, tokenizer, tools, max_length, template, tool_format, skipped=None, ex=None
              ) -> list[Encoded]:
    """One example per assistant turn of ``msgs`` (parallel calls already split)."""
    out = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        try:
            enc = encode(msgs[:i + 1], tokenizer, tools=tools, train_on="last", max_length=max_length,
                         template=template, tool_format=tool_format)
        except (ExampleTooLong, NoSupervisedTokens) as e:
            if skipped is None:
                raise
            skipped.append((ex, f"{type(e).__name__} (turn {i}): {e}"))
            continue
        enc.turn = i
        out.append(enc)
    return out


def encode_turns(messages: list[dict[str, Any]], tokenizer, *, tools: list[dict] | None = None,
                 max_length: int | None = None, template: str | None = None,
                 tool_format: ToolFormat = "auto") -> list[Encoded]:
    """One example per assistant turn, each supervised on that turn only, with the
    history rendered exactly as the template renders it at inference."""
    tpl = resolve_template(tokenizer, template)
    msgs, _ = split_parallel_calls(tokenizer, _canonical(messages), tpl, tool_format)
    return _per_turn(msgs, tokenizer, tools, max_length, tpl, tool_format)


def expand_per_turn(example) -> list:
    """An Example as one Example per assistant turn (the conversation up to that turn),
    sharing ``metadata['group']`` so that splits and dedup keep them together."""
    from ..schema import Example
    group = example.metadata.get("group") or example.id
    return [Example(messages=example.messages[:i + 1], tools=example.tools,
                    metadata={**example.metadata, "group": group, "turn": i, "source_id": example.id})
            for i, m in enumerate(example.messages) if m["role"] == "assistant"]


_noticed: set[int] = set()
PerTurn = Literal["auto", "never"]


def encode_many(examples, tokenizer, *, train_on: TrainOn = "assistant", max_length: int | None = None,
                template: str | None = None, tool_format: ToolFormat = "auto", per_turn: PerTurn = "auto"
                ) -> tuple[list[Encoded], list[tuple[Any, str]]]:
    """Encode a list of Examples; returns (encoded, [(example, reason) skipped]).

    Where the template rewrites history (see ``HistoryRewritten``) an example is
    trained as one example per assistant turn, with a notice the first time;
    ``per_turn='never'`` makes that an error (one sequence per conversation)."""
    if per_turn not in ("auto", "never"):
        raise ValueError(f"per_turn must be 'auto' or 'never', not {per_turn!r}")
    tpl = resolve_template(tokenizer, template)
    out, skipped = [], []
    for ex in examples:
        msgs = ex.messages if hasattr(ex, "messages") else ex
        tools = getattr(ex, "tools", None)
        try:
            out.append(encode(msgs, tokenizer, tools=tools, train_on=train_on, max_length=max_length,
                              template=tpl, tool_format=tool_format))
            continue
        except (ExampleTooLong, NoSupervisedTokens) as e:
            skipped.append((ex, f"{type(e).__name__}: {e}"))
            continue
        except HistoryRewritten as e:
            if train_on != "assistant":
                raise
            if per_turn == "never":
                raise HistoryRewritten(e.turn, e.why, "per_turn='never' asks for one sequence per "
                                       "conversation, which this template cannot give: per_turn='auto' trains "
                                       "one example per assistant turn") from None
            if hash(tpl) not in _noticed:
                _noticed.add(hash(tpl))
                warnings.warn(f"{e} -> training one example per assistant turn for conversations where "
                              "this happens", stacklevel=2)
        msgs, split = split_parallel_calls(tokenizer, _canonical(msgs), tpl, tool_format)
        for enc in _per_turn(msgs, tokenizer, tools, max_length, tpl, tool_format, skipped, ex):
            enc.formats = dict(enc.formats, **({"split_calls": split} if split else {}))
            out.append(enc)
    return out, skipped
