"""A ChatML template that renders tool calls, for models whose own template cannot.

SmolLM2's template prints each turn's ``content`` and nothing else, so a turn whose
answer *is* a tool call would render empty and ``sftflow.encode`` (rightly) refuses it.
This template is SmolLM2's, plus: an assistant turn's tool calls are written after its
content in the form ``sftflow.tools.loop`` parses (Hermes / Qwen style, one JSON object
per call between ``<tool_call>`` tags), a tool result is an ordinary ``tool`` turn, and the
tools offered are listed after the system prompt in the Hermes block the fallback writes.

At inference the evaluation's tool loop puts the model's raw text back as the turn's
content, so the model's own template renders exactly what this one rendered in
training: the conversation the model sees is the one it was trained on.
"""

from __future__ import annotations

import json

from ..chat.tool_fallback import TOOLS_FOOTER, TOOLS_HEADER

SMOLLM2_DEFAULT_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


def _literal(text: str) -> str:
    return json.dumps(text)          # a Jinja string literal (JSON escapes are Jinja escapes)


# The tools offered, Hermes style, after the system prompt: the same text as the fallback's.
_TOOLS_BLOCK = ("{%- if tools -%}{{ '\\n\\n' + " + _literal(TOOLS_HEADER) + " }}"
                "{%- for t in tools -%}{{ '\\n' + (t | tojson) }}{%- endfor -%}"
                "{{ '\\n' + " + _literal(TOOLS_FOOTER) + " }}{%- endif -%}")

TOOL_CHATML = (
    "{%- for message in messages -%}"
    "{%- if loop.first and messages[0]['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\n" + SMOLLM2_DEFAULT_SYSTEM + "' }}" + _TOOLS_BLOCK + "{{ '<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message.get('tool_calls') -%}"
    "{%- if message['content'] -%}{{ message['content'] + '\\n' }}{%- endif -%}"
    "{%- for call in message['tool_calls'] -%}"
    "{{ '<tool_call>\\n' + ({'name': call['function']['name'], 'arguments': call['function']['arguments']}"
    " | tojson) + '\\n</tool_call>' }}"
    "{%- if not loop.last -%}{{ '\\n' }}{%- endif -%}"
    "{%- endfor -%}"
    "{%- else -%}{{ message['content'] }}{%- endif -%}"
    "{%- if loop.first and message['role'] == 'system' -%}" + _TOOLS_BLOCK + "{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)
