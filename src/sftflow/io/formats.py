"""Raw record -> ``Example``, one branch per input format, and nowhere else in sftflow.

Alpaca (instruction/input/output), ShareGPT (conversations: from/value), OpenAI
``messages``, ``prompt``/``completion`` and sftflow's own records. A bad record raises
``RecordError`` naming the field; the reader adds the file and line.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from ..schema import Example, RecordError, validate_messages
from ..turns import TurnError, validate_tools

FORMATS = ("auto", "sftflow", "messages", "sharegpt", "alpaca", "prompt_completion")

# End-of-text markers that some datasets bake into completions (T0 ends every
# completion with a literal "<|endoftext|>"). They are the *source* model's stop
# token, not text: the chat template adds the right one for the model we train.
EOS_LITERALS = ("<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "<eos>", "<|end|>")
# The marker a format is known to append to every completion, and the only one removed:
# anything else at the end of an answer (``</s>`` closing an HTML strikethrough, a tag
# being explained) is text its author wrote.
FORMAT_EOS = {"prompt_completion": "<|endoftext|>"}

# Keys each format reads itself. Every other key of a record is kept as metadata, so
# columns such as task, category or source feed quotas and reports.
FORMAT_KEYS = {"sftflow": {"id", "messages", "metadata", "tools"},
               "messages": {"messages", "metadata", "tools"},
               "sharegpt": {"conversations", "system", "metadata", "tools"},
               "alpaca": {"instruction", "input", "output", "system", "metadata"},
               "prompt_completion": {"prompt", "completion", "metadata"}}

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
                  "model": "assistant", "system": "system"}


def detect_format(rec: dict[str, Any]) -> str:
    if "messages" in rec:
        return "sftflow" if "metadata" in rec or "id" in rec else "messages"
    if "conversations" in rec:
        return "sharegpt"
    # One identifying key is enough: a record with "instruction" but no "output" is a
    # broken Alpaca record, and saying so is more useful than "unknown format".
    if "instruction" in rec:
        return "alpaca"
    if "prompt" in rec or "completion" in rec:
        return "prompt_completion"
    raise RecordError("cannot tell the format from the keys "
                      f"{sorted(rec)[:8]}; expected messages, conversations, "
                      "instruction/output or prompt/completion (or pass --format)")


def _strip_eos(text: str, marker: str = FORMAT_EOS["prompt_completion"]) -> str:
    """Remove one trailing ``marker`` (and the whitespace before it); nothing else."""
    body = text.rstrip()
    return body[: -len(marker)] if body.endswith(marker) else text


def _trim(text: str, *, completion: bool = False) -> str:
    """Trailing whitespace and leading blank lines go; the first line's indentation stays
    (it is code more often than noise). A completion loses one leading space: the legacy
    prompt/completion convention puts one there as a separator."""
    text = re.sub(r"\A(?:[ \t]*\r?\n)+", "", text.rstrip())
    if completion and text.startswith(" ") and not text.startswith("  "):
        text = text[1:]
    return text


def _need_str(rec: dict[str, Any], key: str, *, optional: bool = False) -> str:
    if key not in rec or rec[key] is None:
        if optional:
            return ""
        raise RecordError(f"missing field '{key}'", field=key)
    v = rec[key]
    if isinstance(v, float) and math.isnan(v):  # Parquet/pandas empty cells
        if optional:
            return ""
        raise RecordError(f"missing field '{key}' (empty cell)", field=key)
    if not isinstance(v, str):
        raise RecordError(f"expected a string, got {type(v).__name__}", field=key)
    return v


def _loads_if_json(v: Any, field: str | None = None) -> Any:
    """Structural columns only (messages, conversations, metadata): CSV and Parquet store
    them as JSON text. Text fields (prompt, completion, instruction, output) never come
    here: a prompt that starts with ``[1,2]`` is text."""
    if isinstance(v, str) and v.lstrip()[:1] in ("[", "{"):
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise RecordError(f"not valid JSON: {e.msg} (column {e.colno})", field=field) from None
        except RecursionError:
            raise RecordError("JSON nested too deeply to read", field=field) from None
    if hasattr(v, "tolist"):  # numpy arrays from Parquet
        return v.tolist()
    return v


SHAREGPT_TOOL_ROLES = ("function_call", "observation", "tool", "function")


def _sharegpt_calls(value: str, field: str) -> list[dict[str, Any]]:
    # LLaMA-Factory's convention: the value is JSON {name, arguments}, or a list of them
    # for parallel calls.
    try:
        calls = json.loads(value)
    except json.JSONDecodeError as e:
        raise RecordError(f"a function_call value must be JSON {{name, arguments}}: {e.msg}",
                          field=field) from None
    calls = calls if isinstance(calls, list) else [calls]
    if not all(isinstance(c, dict) for c in calls):
        raise RecordError("a function_call value must be a JSON object {name, arguments}", field=field)
    return [{"type": "function", "function": {"name": c.get("name"), "arguments": c.get("arguments")}}
            for c in calls]


def sharegpt_turn(turn: Any, f: str, before: list[dict[str, Any]]) -> dict[str, Any]:
    """One ShareGPT turn as a message; ``function_call`` is an assistant turn making calls,
    ``observation`` a tool result (named after the call it answers, in order)."""
    if not isinstance(turn, dict):
        raise RecordError(f"expected an object, got {type(turn).__name__}", field=f)
    if "from" not in turn:
        raise RecordError("missing 'from'", field=f"{f}.from")
    if "value" not in turn:
        raise RecordError("missing 'value'", field=f"{f}.value")
    who = str(turn["from"]).lower()
    role = SHAREGPT_ROLES.get(who) or (who if who in SHAREGPT_TOOL_ROLES else None)
    if role is None:
        raise RecordError(f"unknown role {turn['from']!r} (expected human, gpt, system, "
                          "function_call or observation)", field=f"{f}.from")
    if not isinstance(turn["value"], str):
        raise RecordError(f"expected a string, got {type(turn['value']).__name__}", field=f"{f}.value")
    if role == "function_call":
        return {"role": "assistant", "content": "", "tool_calls": _sharegpt_calls(turn["value"], f"{f}.value")}
    if role in SHAREGPT_TOOL_ROLES:
        at = next((j for j in range(len(before) - 1, -1, -1) if before[j]["role"] != "tool"), None)
        calls = before[at].get("tool_calls") or [] if at is not None else []
        k = len(before) - at - 1 if at is not None else 0        # tool turns since that call
        msg = {"role": "tool", "content": turn["value"]}
        if k < len(calls) and isinstance(calls[k]["function"].get("name"), str):
            msg["name"] = calls[k]["function"]["name"]
        return msg
    return {"role": role, "content": turn["value"]}


def record_tools(rec: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The record's ``tools`` column (a list, or JSON text as CSV, Parquet and many hub
    datasets store it); empty cells mean no tools."""
    v = rec.get("tools")
    if v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip()):
        return None
    try:
        return validate_tools(v.tolist() if hasattr(v, "tolist") else v)
    except TurnError as e:
        raise RecordError(e.reason, field=e.field) from None


def record_metadata(rec: dict[str, Any], fmt: str) -> dict[str, Any]:
    """The record's ``metadata`` object (JSON text accepted) plus every key the format
    does not read itself. Empty cells (None, NaN) of extra columns are left out."""
    meta: dict[str, Any] = {}
    if rec.get("metadata") is not None:
        m = _loads_if_json(rec["metadata"], field="metadata")
        if not isinstance(m, dict):
            raise RecordError(f"expected an object, got {type(m).__name__}", field="metadata")
        meta = dict(m)
    for k, v in rec.items():
        if k in FORMAT_KEYS.get(fmt, ()) or v is None or (isinstance(v, float) and math.isnan(v)):
            continue
        meta.setdefault(str(k), v.tolist() if hasattr(v, "tolist") else v)
    return meta


def record_to_example(rec: dict[str, Any], fmt: str) -> Example:
    """Convert one raw record of a known format to an Example (raises RecordError)."""
    if not isinstance(rec, dict):
        raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
    meta = record_metadata(rec, fmt) if fmt in FORMAT_KEYS else {}
    ex = _convert(rec, fmt, meta)
    for k, v in meta.items():
        ex.metadata.setdefault(k, v)
    return ex


def _convert(rec: dict[str, Any], fmt: str, meta: dict[str, Any]) -> Example:
    if fmt in ("sftflow", "messages"):
        if "messages" not in rec:
            raise RecordError("missing field 'messages'", field="messages")
        msgs = _loads_if_json(rec["messages"])
        msgs = [dict(m) if isinstance(m, dict) else m for m in msgs] if isinstance(msgs, list) else msgs
        msgs = validate_messages(msgs)
        return Example(messages=msgs, metadata=meta, id=str(rec.get("id") or "") if fmt == "sftflow" else "",
                       tools=record_tools(rec))
    if fmt == "sharegpt":
        conv = _loads_if_json(rec.get("conversations"))
        if conv is None:
            raise RecordError("missing field 'conversations'", field="conversations")
        if not isinstance(conv, list):
            raise RecordError(f"expected a list, got {type(conv).__name__}", field="conversations")
        msgs = []
        if isinstance(rec.get("system"), str) and rec["system"]:
            msgs.append({"role": "system", "content": rec["system"]})
        for i, turn in enumerate(conv):
            msgs.append(sharegpt_turn(turn, f"conversations[{i}]", msgs))
        return Example(messages=validate_messages(msgs, field_name="conversations"), tools=record_tools(rec))
    if fmt == "alpaca":
        instruction = _need_str(rec, "instruction")
        inp = _need_str(rec, "input", optional=True)
        output = _need_str(rec, "output")
        prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
        msgs = []
        if isinstance(rec.get("system"), str) and rec["system"]:
            msgs.append({"role": "system", "content": rec["system"]})
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        return Example(messages=msgs, metadata=dict(meta))
    if fmt == "prompt_completion":
        p, c = (v.tolist() if hasattr(v, "tolist") else v for v in (rec.get("prompt"), rec.get("completion")))
        if p is None:
            raise RecordError("missing field 'prompt'", field="prompt")
        if c is None:
            raise RecordError("missing field 'completion'", field="completion")
        if isinstance(p, list) and isinstance(c, list):  # conversational prompt/completion
            return Example(messages=validate_messages(list(p) + list(c), field_name="prompt+completion"),
                           metadata=dict(meta))
        if not isinstance(p, str):
            raise RecordError(f"expected a string, got {type(p).__name__}", field="prompt")
        if not isinstance(c, str):
            raise RecordError(f"expected a string, got {type(c).__name__}", field="completion")
        return Example(messages=[{"role": "user", "content": _trim(p)},
                                 {"role": "assistant", "content": _trim(_strip_eos(c), completion=True)}],
                       metadata=dict(meta))
    raise RecordError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
