"""The Self-Instruct filters and post-processing, each a small named check.

A check returns ``None`` to keep, or ``(reason, value)`` to reject; the caller writes
the rejected candidate with the check's name, so every drop can be traced.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

# The original work's blacklist: tasks a text-only model cannot do.
BLACKLIST = ("image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
             "map", "maps", "draw", "plot", "go to")


def word_count(text: str) -> int:
    return len(text.split())


def check_length(inst: str, min_words: int = 3, max_words: int = 150):
    n = word_count(inst)
    if n < min_words:
        return f"fewer than {min_words} words", n
    if n > max_words:
        return f"more than {max_words} words", n
    return None


def check_blacklist(inst: str, words=BLACKLIST):
    for w in words:
        # whole words only: "profile" must not trip "file"
        if re.search(r"\b" + re.escape(w) + r"\b", inst, flags=re.IGNORECASE):
            return f"blacklisted keyword '{w}'", w
    return None


def check_program(inst: str):
    # The original drops "Write a program ...": the model cannot check code it writes.
    if inst.startswith("Write a program"):
        return "starts with 'Write a program'", inst[:15]
    return None


def check_start(inst: str):
    if not inst:
        return "empty instruction", ""
    if inst[0] in string.punctuation:
        return "starts with punctuation", inst[0]
    if not inst[0].isascii():
        return "starts with a non-ASCII character", inst[0]
    return None


@dataclass
class InstructionFilter:
    min_words: int = 3
    max_words: int = 150
    blacklist: tuple[str, ...] = BLACKLIST

    def verdicts(self, inst: str) -> tuple[dict[str, str], tuple[str, str, object] | None]:
        """All checks in order; returns (verdict per check, first failure or None)."""
        checks = [("length", lambda s: check_length(s, self.min_words, self.max_words)),
                  ("blacklist", lambda s: check_blacklist(s, self.blacklist)),
                  ("program", check_program),
                  ("start", check_start)]
        verdicts: dict[str, str] = {}
        for name, fn in checks:
            res = fn(inst)
            if res is not None:
                verdicts[name] = "reject"
                return verdicts, (name, res[0], res[1])
            verdicts[name] = "pass"
        return verdicts, None


# --------------------------------------------------------------------------- instances

@dataclass
class Instance:
    input: str
    output: str


@dataclass
class InstanceVerdict:
    kept: list[Instance] = field(default_factory=list)
    dropped: list[tuple[Instance, str]] = field(default_factory=list)   # (instance, reason)
    task_rejected: str | None = None


def postprocess_instances(instances: list[Instance], max_instances: int = 5,
                          instruction: str | None = None) -> InstanceVerdict:
    """The original work's instance clean-up, in its order.

    Drop instances with an empty output, input == output, or a field ending in ':'
    (an unfinished generation), or (our addition: small models do it) an output that
    only repeats the instruction; if two instances share a non-empty input but
    disagree on the output the whole task is unreliable and is dropped; exact
    duplicates collapse; at most ``max_instances`` remain (the first ones).
    """
    v = InstanceVerdict()
    valid: list[Instance] = []
    for ins in instances:
        if not ins.output.strip():
            v.dropped.append((ins, "empty output"))
        elif ins.input.strip() == ins.output.strip():
            v.dropped.append((ins, "input equals output"))
        elif instruction is not None and ins.output.strip() == instruction.strip():
            v.dropped.append((ins, "output repeats the instruction"))
        elif ins.input.strip().endswith(":") or ins.output.strip().endswith(":"):
            v.dropped.append((ins, "unfinished field (ends with ':')"))
        else:
            valid.append(ins)
    seen: dict[str, str] = {}
    for ins in valid:
        key = ins.input.strip()
        if key and key in seen and seen[key] != ins.output.strip():
            v.task_rejected = "instances share an input but disagree on the output"
            v.dropped.extend((i, v.task_rejected) for i in valid)
            return v
        seen.setdefault(key, ins.output.strip())
    unique: list[Instance] = []
    keys = set()
    for ins in valid:
        k = (ins.input.strip(), ins.output.strip())
        if k in keys:
            v.dropped.append((ins, "duplicate instance"))
            continue
        keys.add(k)
        unique.append(ins)
    v.kept = unique[:max_instances]
    v.dropped.extend((ins, f"more than {max_instances} instances") for ins in unique[max_instances:])
    if not v.kept:
        v.task_rejected = "no valid instance"
    return v
