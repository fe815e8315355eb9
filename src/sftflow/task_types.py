"""Task type of an instruction (summarisation, classification, extraction, ...).

Used by curation statistics, the report and quotas; kept out of any one stage so each can
read it.
"""

from __future__ import annotations

import re

# Task-type heuristic: the first rule whose pattern matches the instruction wins, so the
# specific kinds come before the broad ones ("summarize this question" is summarisation).
TASK_RULES: list[tuple[str, re.Pattern]] = [(name, re.compile(rx, re.IGNORECASE)) for name, rx in [
    ("coding", r"\b(code|function|python|javascript|sql|program|script|regex|regular expression|compile|"
               r"bug|html|class)\b|```"),
    ("math", r"\b(calculate|compute|solve|solving|equation|sum of|how many|percentage|probability|math|"
             r"numbers?|convert(ing)? \d|celsius|fahrenheit)\b|\d\s*[+*/^=]\s*\d"),
    ("translation", r"\b(translate|translation|in (french|spanish|german|chinese|japanese|english))\b"),
    ("summarization", r"\b(summari[sz]e|summari[sz]ation|summary|tl;?dr|in (one|a few) sentences?|main points?)\b"),
    ("classification", r"\b(classify|categori[sz]e|which (category|class|topic)|sentiment|positive or negative|"
                       r"is (this|it) (positive|negative)|label|rate|stars?|true or false|yes or no|"
                       r"tell (me )?(if|whether)|decide (if|whether)|identify (if|whether)|detect|predict|"
                       r"choose|select|rank|or not|multiple choice)\b"),
    ("extraction", r"\b(extract|list all|find (all|the|out)|identify the|pull out|link|replace|fill in|"
                   r"pos tags?|parsing|entities)\b"),
    ("rewriting", r"\b(rewrite|rephrase|paraphrase|edit|correct the|fix the grammar|make it|convert it|"
                  r"turn .{0,20} into)\b"),
    ("brainstorming", r"\b(brainstorm|ideas?|suggest|suggestions|recommend|list (some|a few|\d+)|"
                      r"make a list|list of|examples?|checklist|plan|budget|recipe|tips|things to do)\b"),
    ("explanation", r"\b(explain|describe|analy[sz]e|why)\b"),
    ("creative_writing", r"\b(write|compose|story|poem|essay|letter|tweet|song|slogan|draft|generate|create|"
                         r"make up|come up with|design|joke|haiku|lyrics|title|complete the|expand|reply)\b"),
    ("open_qa", r"\?\s*$|^(what|who|when|where|why|how|which|is|are|can|does|do)\b|\banswer the following\b|"
                r"^question:"),
]]


def task_type(instruction: str, window: int = 200) -> str:
    """Task kind of an instruction by the first matching rule (else "other").

    Only the head and tail of a long prompt are read: that is where the instruction
    sits around a pasted document ("Summarize: {doc}", "{doc} TL;DR:"), and the
    document's own words ("class", "bug") would otherwise decide the type.
    """
    text = instruction if len(instruction) <= 2 * window else instruction[:window] + "\n" + instruction[-window:]
    for name, rx in TASK_RULES:
        if rx.search(text):
            return name
    return "other"
