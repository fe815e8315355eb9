"""The Hermes fallback as a Jinja prelude, so that a model trained through it is served the same text.

``tool_fallback.rewrite`` rewrites messages in Python before rendering. At inference the
conversation is rendered by the saved tokenizer's template, from OpenAI-style messages
(assistant ``tool_calls``, ``tool`` turns, ``tools``): those would reach the template raw and
render differently from training (Gemma even raises on a ``tool`` turn). ``with_prelude``
puts the same rewrite in front of the template, in Jinja: the messages and tools are
rewritten, then the original template renders them. A turn whose content already holds
the ``<tool_call>`` text (the evaluation tool loop puts the model's raw text back) is not
written twice.
"""

from __future__ import annotations

import json

from .tool_fallback import TOOLS_FOOTER, TOOLS_HEADER


def _lit(text: str) -> str:
    return json.dumps(text)          # a Jinja string literal (JSON escapes are Jinja escapes)


_CALLS = (
    "{%- if m.get('tool_calls') and '<tool_call>' not in (m['content'] or '') -%}"
    "{%- set calls = namespace(text=m['content'] or '') -%}"
    "{%- for c in m['tool_calls'] -%}"
    "{%- set f = c['function'] if c['function'] is defined else c -%}"
    "{%- set args = f['arguments'] if f['arguments'] is string else (f['arguments'] | tojson) -%}"
    "{%- set calls.text = calls.text + ('\\n' if calls.text else '') + '<tool_call>\\n{\"name\": ' + "
    "(f['name'] | tojson) + ', \"arguments\": ' + args + '}\\n</tool_call>' -%}"
    "{%- endfor -%}{%- set content = calls.text -%}"
    "{%- else -%}{%- set content = m['content'] or '' -%}{%- endif -%}")
_TRACE = (
    "{%- set trace = m.get('reasoning_content') or m.get('reasoning') or m.get('thinking') -%}"
    "{%- if trace -%}{%- set content = '<think>\\n' + trace + '\\n</think>\\n\\n' + content -%}{%- endif -%}")


def prelude(*, tools: bool, reasoning: bool, system_ok: bool = True) -> str:
    """Jinja that rewrites ``messages`` (and clears ``tools``) the way ``tool_fallback`` does."""
    block = ("{%- set tb = namespace(text=" + _lit(TOOLS_HEADER) + ") -%}"
             "{%- for t in tools -%}{%- set tb.text = tb.text + '\\n' + (t | tojson) -%}{%- endfor -%}"
             "{%- set tb.text = tb.text + '\\n' + " + _lit(TOOLS_FOOTER) + " -%}")
    turn = (_CALLS if tools else "{%- set content = m['content'] or '' -%}") + (_TRACE if reasoning else "")
    # Hermes calls: role and content only. Traces alone: the turn as it is, the trace moved
    # into the content (set to none, which templates read as "no trace").
    keep = ("{%- set kept = {'role': m['role'], 'content': content} -%}" if tools else
            "{%- set kept = dict(m, content=content, reasoning_content=none, reasoning=none, thinking=none) -%}")
    out = ("{%- set hermes = namespace(out=[], results=false) -%}"
           "{%- for m in messages -%}"
           "{%- if m['role'] == 'tool' and " + ("true" if tools else "false") + " -%}"
           "{%- set block = '<tool_response>\\n' + m['content'] + '\\n</tool_response>' -%}"
           "{%- if hermes.results -%}"
           "{%- set hermes.out = hermes.out[:-1] + [{'role': 'user', 'content': hermes.out[-1]['content'] + "
           "'\\n' + block}] -%}"
           "{%- else -%}{%- set hermes.out = hermes.out + [{'role': 'user', 'content': block}] -%}{%- endif -%}"
           "{%- set hermes.results = true -%}"
           "{%- else -%}{%- set hermes.results = false -%}" + turn + keep +
           "{%- set hermes.out = hermes.out + [kept] -%}{%- endif -%}"
           "{%- endfor -%}")
    if tools:
        first_user = ("{%- set fu = namespace(done=false, out=[]) -%}{%- for m in hermes.out -%}"
                      "{%- if m['role'] == 'user' and not fu.done -%}{%- set fu.done = true -%}"
                      "{%- set fu.out = fu.out + [{'role': 'user', 'content': tb.text + '\\n\\n' + m['content']}] -%}"
                      "{%- else -%}{%- set fu.out = fu.out + [m] -%}{%- endif -%}{%- endfor -%}"
                      "{%- set hermes.out = fu.out -%}")
        add = ("{%- set hermes.out = [{'role': 'system', 'content': tb.text}] + hermes.out -%}" if system_ok
               else first_user)
        out += ("{%- if tools -%}" + block +
                "{%- if hermes.out and hermes.out[0]['role'] == 'system' -%}"
                "{%- set hermes.out = [{'role': 'system', 'content': (hermes.out[0]['content'] + '\\n\\n' "
                "if hermes.out[0]['content'] else '') + tb.text}] + hermes.out[1:] -%}"
                "{%- else -%}" + add + "{%- endif -%}{%- endif -%}")
    return out + "{%- set messages = hermes.out -%}" + ("{%- set tools = none -%}" if tools else "")


def with_prelude(template: str, *, tools: bool, reasoning: bool, system_ok: bool = True) -> str:
    """``template`` preceded by the fallback's rewrite (nothing to add: ``template`` itself)."""
    if not (tools or reasoning):
        return template
    return prelude(tools=tools, reasoning=reasoning, system_ok=system_ok) + template
