"""Supervised character spans of one rendering: what the model writes in each assistant turn.

For assistant turn *i* (all offsets in characters):

1. ``gp`` = the conversation before turn *i* rendered with the generation prompt: the
   text the model sees at inference right before it writes turn *i*. ``last`` = the
   conversation up to turn *i* rendered with turn *i* as the final turn: what the model
   writes at inference is ``last[len(gp):]`` (reasoning, content, tool calls as the
   template renders them, the end-of-turn marker), minus trailing whitespace.
2. The turn's *pieces* (content, reasoning, tool-call names and string arguments) must
   all appear in that text; the end of the last one is where the turn's data ends and
   the template's closing begins. A piece the template does not render is refused,
   naming it (e.g. a template that ignores ``tool_calls``).
3. One sequence for the whole conversation is faithful only when every trained turn
   appears in the full rendering exactly as in ``last`` up to its closing. A template
   that renders history differently (Qwen3 and GLM strip earlier reasoning, Qwen3
   writes its empty think block only in the final turn) raises ``HistoryRewritten``;
   the caller then trains one example per assistant turn, where each turn *is* final.
4. The closing of a middle turn is the final-turn closing cut where the full rendering
   diverges from it (Phi-3 appends EOS only after the last turn), backed off to
   whitespace so that a marker is supervised whole or not at all.
5. A generation prompt that pre-fills ``<think>`` the rendering does not contain: a
   turn without a trace is answered with thinking off (``enable_thinking=False``), when
   that prompt is a prefix of the turn (Nemotron 3); a turn with a trace the template
   does not render (DeepSeek-R1 distills) is built the way the model writes it: trace,
   ``</think>``, answer; a turn without a trace closes the pre-filled block at once
   (``\n</think>\n\n``, the model skipping thinking). Any other pre-fill is refused.
6. A template that writes nothing after the final turn (GLM-4): the model stops by
   emitting a stop token. It is the first token the template writes after an
   assistant turn when a user turn follows if that token is a stop token of the
   model (its generation config's ``eos_token_id``), else the tokenizer's EOS; it is
   appended and supervised.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .render import NO_THINKING, Form, TemplateCannotShow, TemplateError, find_piece, render, turn_pieces

_SENTINEL = "SFTFLOWSENTINEL7f3a"
_SENTINEL_USER = "SFTFLOWSENTINELUSER9c1d"


class HistoryRewritten(TemplateError):
    """The template renders an earlier turn differently from how the model wrote it."""

    ADVICE = ("Train one example per assistant turn (encode_many and training do this automatically), "
              "or train_on='last'")

    def __init__(self, turn: int, why: str, advice: str = ADVICE):
        self.turn, self.why = turn, why
        super().__init__(
            f"chat template renders assistant turn {turn} differently once later turns follow ({why}); "
            f"one sequence for the whole conversation would train on text the model never wrote. {advice}")


def common_prefix_len(a: str, b: str, start: int = 0) -> int:
    n = min(len(a), len(b))
    i = start
    while i < n and a[i] == b[i]:
        i += 1
    return i


class Renderer:
    """One conversation, one template, one message form: the renderings spans need."""

    def __init__(self, tokenizer, messages: list[dict[str, Any]], template: str, form: Form, tools):
        self.tok, self.msgs, self.tpl, self.form, self.tools = tokenizer, messages, template, form, tools
        self._bare: bool | None = None

    def __call__(self, messages, *, gen: bool = False, thinking: bool = True) -> str:
        return render(self.tok, self.form.turns(messages), self.tpl, add_generation_prompt=gen,
                      tools=self.tools, template_vars=None if thinking else NO_THINKING)

    def closes_with_nothing(self, i: int) -> bool:
        """Does the template write nothing (but whitespace) after a final assistant turn?"""
        if self._bare is None:
            probe = self(self.msgs[:i] + [{"role": "assistant", "content": _SENTINEL}])
            self._bare = not probe[probe.rindex(_SENTINEL) + len(_SENTINEL):].strip()
        return self._bare

    def generation_prompt(self, i: int, last: str) -> str:
        """What the model sees before writing turn *i*. A turn without a reasoning trace
        is answered with thinking off when the default prompt pre-fills a think block the
        turn does not have (Nemotron 3, DeepSeek-V3.1: ``<think>\n``)."""
        gp = self(self.msgs[:i], gen=True) if i else ""
        if i and not last.startswith(gp) and not self.msgs[i].get("reasoning_content", "").strip():
            quiet = self(self.msgs[:i], gen=True, thinking=False)
            if last.startswith(quiet):
                return quiet
        return gp


def _data_end(text: str, start: int, m: dict[str, Any], i: int) -> int:
    """End of the turn's last piece in ``text`` (pieces searched from ``start``)."""
    end = start
    for what, piece in turn_pieces(m):
        pos, piece_end = find_piece(text, piece, start)
        if pos < 0:
            raise TemplateCannotShow(f"the chat template does not render {what} of assistant turn {i} "
                                     f"({piece[:40]!r}) when it is the turn being generated; its tokens "
                                     "cannot be supervised faithfully. Use a template that renders it")
        end = max(end, piece_end)
    return end


def _prefilled_think(r: Renderer, i: int, gp: str, last: str) -> str | None:
    """Turn *i*'s training text after a ``<think>`` pre-fill the rendering lacks, or None."""
    if not gp.rstrip().endswith("<think>"):
        return None
    # where the pre-fill starts (the answer may begin with the same characters: "<t" of "<tool_call>")
    at = min(common_prefix_len(gp, last), gp.rindex("<think>"))
    reasoning = r.msgs[i].get("reasoning_content", "").strip()
    if "<think>" in last[at:] or (reasoning and reasoning in last[at:]):
        return None             # the template renders the trace itself, differently: refused below
    # DeepSeek-R1's documented output after the pre-fill: {trace}\n</think>\n\n{answer}. A turn
    # without a trace is the model skipping thinking: it closes the pre-filled block at once
    # (``<think>\n\n</think>\n\n``, as R1 does and as Qwen3.5 renders a turn without a trace).
    return gp + reasoning + "\n</think>\n\n" + last[at:]


def _stop_text(r: Renderer, i: int) -> str:
    tok = r.tok
    probe = r(r.msgs[:i] + [{"role": "assistant", "content": _SENTINEL},
                            {"role": "user", "content": _SENTINEL_USER}])
    between = probe[probe.index(_SENTINEL) + len(_SENTINEL):probe.index(_SENTINEL_USER)].lstrip()
    ids = tok(between, add_special_tokens=False)["input_ids"][:1] if between else []
    if ids and ids[0] in stop_token_ids(tok):
        return tok.decode(ids)
    if tok.eos_token:
        return tok.eos_token
    raise TemplateError(f"chat template writes nothing after the final assistant turn {i} and the tokenizer "
                        "has no EOS token: the model could not learn to stop")


def stop_token_ids(tokenizer) -> set[int]:
    """The model's stop tokens: its generation config's eos ids (when saved beside the
    tokenizer) and the tokenizer's EOS."""
    ids = {tokenizer.eos_token_id} - {None}
    path = getattr(tokenizer, "name_or_path", "") or ""
    try:
        cfg = Path(path) / "generation_config.json"
        if cfg.is_file():
            eos = json.loads(cfg.read_text()).get("eos_token_id")
            ids |= set(eos if isinstance(eos, list) else [eos]) - {None}
    except (OSError, ValueError):       # no readable config: the tokenizer's EOS alone
        pass
    return ids


def _closing(closing: str, after: str) -> str:
    """The part of a final-turn closing that a middle turn also writes, whole markers only."""
    cut = common_prefix_len(closing, after)
    if cut < len(closing):
        ws = max(closing.rfind(c, 0, cut) for c in " \n\t")
        cut = max(ws, 0)
    return closing[:cut].rstrip()


def turn_span(r: Renderer, full: str, i: int) -> tuple[str, int, int]:
    """(text, start, end) of assistant turn *i*; ``text`` is ``full`` unless the turn is
    final and its training text had to be completed (think pre-fill, stop token)."""
    is_final = i == len(r.msgs) - 1
    last = full if is_final else r(r.msgs[:i + 1])
    gp = r.generation_prompt(i, last)
    if not last.startswith(gp):
        built = _prefilled_think(r, i, gp, last)
        if built is not None and not is_final:
            raise HistoryRewritten(i, "the generation prompt pre-fills a think block the history lacks")
        if built is None:
            at = common_prefix_len(gp, last)
            if "</think>" in gp[at:] and r.msgs[i].get("reasoning_content"):
                raise TemplateCannotShow(f"the generation prompt closes an empty think block ({gp[at:]!r}) but "
                                         f"turn {i} has reasoning_content: this template is for answers "
                                         "without reasoning")
            raise TemplateError(
                f"chat template is not prefix-stable at turn {i} (assistant): the prompt rendered with the "
                f"generation prompt diverges from the conversation at character {at} ({gp[at:at + 30]!r} vs "
                f"{last[at:at + 30]!r}); training on this rendering would not match inference")
        _data_end(built, len(gp), r.msgs[i], i)          # the built turn holds every piece
        return built, len(gp), len(built.rstrip())
    start = len(gp)
    data_end = _data_end(last, start, r.msgs[i], i)
    if is_final:
        if r.closes_with_nothing(i):             # no end-of-turn marker (GLM-4): the stop token
            full = full.rstrip() + _stop_text(r, i)
        return full, start, len(full.rstrip())
    if full[:data_end] != last[:data_end]:
        at = common_prefix_len(full, last, start)
        raise HistoryRewritten(i, f"at character {at - start} of the turn: {full[at:at + 24]!r} in the "
                                  f"history vs {last[at:at + 24]!r} as generated")
    tail = _closing(last[data_end:], full[data_end:])
    end = data_end + len(tail)
    if r.closes_with_nothing(i):     # the next token the template writes may be the model's stop
        nxt = full[end:]
        ids = r.tok(nxt[:40], add_special_tokens=False, return_offsets_mapping=True) if nxt.strip() else None
        if ids and ids["input_ids"] and ids["input_ids"][0] in stop_token_ids(r.tok):
            end += ids["offset_mapping"][0][1]
    return full, start, end
