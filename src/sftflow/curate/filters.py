"""Per-record quality filters. Each measures, records the numbers, then decides.

Defaults: no empty or punctuation-only response; instruction 5-2048 tokens, response
20-2048 tokens and at least 20 characters *unless the task asks for a short answer*
(a label, yes/no, a number, a span of the passage, a title: ``short_answers``), a
unique-word ratio >= 0.3 over responses of more than 10 words, refusals flagged
(dropped on request), no chat-template markers inside content. Truncation (evidence of
a cut) lives in ``truncation``; checks against the prompt (echo, question restated,
language) in ``prompt_checks``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..schema import Example, call_text
from .config import EmptyParams, LengthParams, RefusalParams, RepetitionParams, TemplateLeakParams
from .short_answers import short_answer_kind
from .steps import Decision, Filter
from .text import WORD_RE, has_substance, words
from .truncation import TruncationFilter

__all__ = ["EmptyFilter", "LengthFilter", "RefusalFilter", "RepetitionFilter", "TemplateLeakFilter",
           "TruncationFilter", "WORD_RE", "repeated_ngram_ratio", "words"]


class EmptyFilter(Filter):
    name = "empty"

    def __init__(self, params: EmptyParams | None = None):
        self.p = params or EmptyParams()

    def measure(self, ex: Example) -> dict[str, Any]:
        # An assistant turn that only calls a tool has no content and is not empty.
        empty_turns = [i for i, m in enumerate(ex.messages)
                       if m["role"] != "system" and not m["content"].strip() and not m.get("tool_calls")]
        text = ex.response.strip()
        out = {"response_chars": len(text), "empty_turns": empty_turns, "substance": has_substance(text)}
        if text and len(text) < self.p.min_response_chars:
            out["short_answer"] = short_answer_kind(ex.prompt, text, self.p.short_answers)
        return out

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if self.p.reject_empty_turns and m["empty_turns"]:
            i = m["empty_turns"][0]
            return False, f"empty turn: messages[{i}] ({ex.messages[i]['role']}) has no text", m["empty_turns"]
        if m["response_chars"] == 0:
            return False, "empty response", 0
        if not m["substance"]:
            return False, f"punctuation-only response: {ex.response.strip()[:40]!r}", m["response_chars"]
        if m["response_chars"] < self.p.min_response_chars and not m.get("short_answer"):
            return (False, f"near-empty response: {m['response_chars']} characters < "
                           f"{self.p.min_response_chars} and the task does not ask for a short answer",
                    m["response_chars"])
        return True


def turn_text(m: dict[str, Any]) -> str:
    """A turn's content and the tool calls it makes, one JSON line each (as ``Example.response``)."""
    if not m.get("tool_calls"):
        return m["content"]
    return "\n".join(([m["content"]] if m["content"] else []) + [call_text(c) for c in m["tool_calls"]])


class LengthFilter(Filter):
    """Token lengths with the training tokenizer, so limits mean what training will see.

    ``response_tokens`` is the final answer with its tool calls; its reasoning trace is
    ``reasoning_tokens`` and counts towards ``total_tokens`` (with every turn, every
    reasoning trace and the tools' schemas), which ``max_total`` bounds.
    """

    name = "length"

    def __init__(self, params: LengthParams | None = None, tokenizer=None, model: str | None = None):
        self.p = params or LengthParams()
        self._tok = tokenizer
        self._model = self.p.model or model

    @property
    def tokenizer(self):
        if self._tok is None:
            from ..models import load_tokenizer
            self._tok = load_tokenizer(self._model)
        return self._tok

    def _count(self, texts: list[str]) -> list[int]:
        out: list[int] = []
        bs = self.p.batch_size
        for i in range(0, len(texts), bs):
            enc = self.tokenizer(texts[i:i + bs], add_special_tokens=False)["input_ids"]
            out.extend(len(ids) for ids in enc)
        return out

    def measure_many(self, examples: list[Example]) -> list[dict[str, Any]]:
        # One tokenizer call per batch over every text of every example; lengths are then
        # summed per example. Counted: each turn's content with the tool calls it makes
        # (as the canonical JSON line ``Example.response`` shows: a call is what the model
        # writes), reasoning traces and the tools' schemas; not the chat template's
        # headers (the same few tokens for every example, the template's, not the data's).
        texts, owners = [], []
        for k, ex in enumerate(examples):
            for i, m in enumerate(ex.messages):
                texts.append(turn_text(m))
                owners.append((k, i))
                if m.get("reasoning_content"):
                    texts.append(m["reasoning_content"])
                    owners.append((k, "reasoning" if i == ex.last_assistant else "earlier_reasoning"))
            if ex.tools:
                texts.append(json.dumps(ex.tools, ensure_ascii=False))
                owners.append((k, "tools"))
        per_ex: list[dict[Any, int]] = [{} for _ in examples]
        for (k, part), n in zip(owners, self._count(texts)):
            per_ex[k][part] = per_ex[k].get(part, 0) + n
        out = []
        for ex, ls in zip(examples, per_ex):
            prompt_idx = max((i for i, m in enumerate(ex.context) if m["role"] == "user"),
                             default=None)
            m = {"instruction_tokens": ls[prompt_idx] if prompt_idx is not None else 0,
                 "response_tokens": ls[ex.last_assistant], "total_tokens": sum(ls.values())}
            if "reasoning" in ls:
                m["reasoning_tokens"] = ls["reasoning"]
            if "tools" in ls:
                m["tools_tokens"] = ls["tools"]
            if m["response_tokens"] < self.p.min_response:
                m["short_answer"] = short_answer_kind(ex.prompt, ex.response, self.p.short_answers)
            out.append(m)
        return out

    def measure(self, ex: Example) -> dict[str, Any]:
        return self.measure_many([ex])[0]

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        p = self.p
        checks = [("instruction_tokens", p.min_instruction, p.max_instruction, "instruction"),
                  ("response_tokens", p.min_response, p.max_response, "response")]
        for key, lo, hi, label in checks:
            if m[key] < lo and not (label == "response" and m.get("short_answer")):
                why = " and the task does not ask for a short answer" if label == "response" else ""
                return False, f"{label} too short: {m[key]} tokens < {lo}{why}", m[key]
            if m[key] > hi:
                return False, f"{label} too long: {m[key]} tokens > {hi}", m[key]
        if p.max_total is not None and m["total_tokens"] > p.max_total:
            return False, f"example too long: {m['total_tokens']} tokens > {p.max_total}", m["total_tokens"]
        return True


def repeated_ngram_ratio(ws: list[str], n: int) -> float:
    """Share of word n-grams that repeat an earlier n-gram of the same text (0 when none)."""
    grams = [tuple(ws[i:i + n]) for i in range(len(ws) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


class RepetitionFilter(Filter):
    name = "repetition"

    def __init__(self, params: RepetitionParams | None = None):
        self.p = params or RepetitionParams()

    def measure(self, ex: Example) -> dict[str, Any]:
        ws = words(ex.response)
        uniq = len(set(ws)) / len(ws) if ws else 1.0
        return {"words": len(ws), "unique_word_ratio": round(uniq, 4),
                "repeated_ngram_ratio": round(repeated_ngram_ratio(ws, self.p.ngram), 4)}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if m["words"] > self.p.min_words and m["unique_word_ratio"] < self.p.min_unique_word_ratio:
            return (False, f"repetitive: unique-word ratio {m['unique_word_ratio']:.3f} < "
                           f"{self.p.min_unique_word_ratio}", m["unique_word_ratio"])
        if m["repeated_ngram_ratio"] > self.p.max_repeated_ngram_ratio:
            return (False, f"repetitive: {m['repeated_ngram_ratio']:.3f} of word {self.p.ngram}-grams repeat "
                           f"(> {self.p.max_repeated_ngram_ratio})", m["repeated_ngram_ratio"])
        return True


class RefusalFilter(Filter):
    name = "refusal"

    def __init__(self, params: RefusalParams | None = None):
        self.p = params or RefusalParams()
        self._re = re.compile("|".join(f"(?:{p})" for p in self.p.patterns), re.IGNORECASE)

    def measure(self, ex: Example) -> dict[str, Any]:
        hit = self._re.search(ex.response)
        return {"flagged": hit is not None, "match": hit.group(0) if hit else None}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if self.p.drop and m["flagged"]:
            return False, f"refusal or boilerplate: {m['match']!r}", m["match"]
        return True


class TemplateLeakFilter(Filter):
    name = "template_leak"

    def __init__(self, params: TemplateLeakParams | None = None):
        self.p = params or TemplateLeakParams()
        self._re = re.compile("|".join(f"(?:{p})" for p in self.p.patterns), re.MULTILINE)

    def measure(self, ex: Example) -> dict[str, Any]:
        for i, msg in enumerate(ex.messages):
            hit = self._re.search(msg["content"])
            if hit:
                return {"leak": hit.group(0), "message": i}
        return {"leak": None}

    def decide(self, ex: Example, m: dict[str, Any]) -> Decision:
        if m["leak"]:
            return (False, f"template marker {m['leak']!r} inside messages[{m['message']}] content",
                    m["leak"])
        return True
