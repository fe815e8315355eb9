"""Named chat templates for tokenizers that ship none (base models).

``alpaca`` is the seed's ``### Instruction: / ### Response:`` format; ``chatml`` is
the ``<|im_start|>role ... <|im_end|>`` format. Both close every assistant turn with
an end marker so the model can learn to stop.
"""

ALPACA = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Instruction:\n{{ m['content'] }}\n\n"
    "{% else %}### Response:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)

CHATML = (
    "{% for m in messages %}"
    "{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

FALLBACK_TEMPLATES = {"alpaca": ALPACA, "chatml": CHATML}
