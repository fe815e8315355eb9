"""The model a run trains: the base (optionally 4-bit), activation checkpointing, LoRA adapters."""

from __future__ import annotations

import warnings

import torch

from ..chat import resolve_template
from ..chat.capabilities import capabilities
from ..chat.hermes_template import with_prelude
from ..models import load_model
from .config import TrainConfig


def use_bf16(cfg: TrainConfig) -> bool:
    if cfg.bf16 == "auto":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return bool(cfg.bf16)


def quantization_config(cfg: TrainConfig):
    """QLoRA's 4-bit NF4 base; refused with the reason where it cannot run."""
    if not cfg.load_in_4bit:
        return None
    if not torch.cuda.is_available():
        raise ValueError("load_in_4bit (QLoRA) needs a CUDA GPU: bitsandbytes 4-bit kernels do not run on "
                         "this machine's CPU. Use method=lora without load_in_4bit here.")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ValueError("load_in_4bit (QLoRA) needs bitsandbytes: pip install bitsandbytes") from None
    from transformers import BitsAndBytesConfig
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16)


def lora_targets(model, wanted: list[str]) -> list[str]:
    """The wanted module names the model has; none of them is an error listing what it has."""
    names = {n.split(".")[-1] for n, _ in model.named_modules()}
    targets = [t for t in wanted if t in names]
    if not targets:
        raise ValueError(f"none of lora_target_modules {wanted} exist in the model; "
                         f"linear layers include {sorted(n for n in names if 'proj' in n)[:10]}")
    return targets


def add_lora(model, cfg: TrainConfig):
    from peft import LoraConfig, get_peft_model
    lcfg = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=lora_targets(model, cfg.lora_target_modules), task_type="CAUSAL_LM",
                      bias="none")
    with warnings.catch_warnings():
        # peft 0.21 reads transformers' deprecated `is_gradient_checkpointing` alias while
        # wrapping the model; the value it reads is right, only the name is deprecated.
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        model = get_peft_model(model, lcfg)
    if cfg.gradient_checkpointing:
        model.enable_input_require_grads()
    return model


def build_model(cfg: TrainConfig, model_name: str):
    qcfg = quantization_config(cfg)
    # With bf16 and LoRA the frozen base is stored in bf16 (half the memory traffic,
    # bf16 matmuls); the adapters peft adds stay fp32 and the Trainer autocasts.
    dtype = torch.bfloat16 if use_bf16(cfg) and cfg.method == "lora" and qcfg is None else None
    model = load_model(model_name, quantization_config=qcfg, dtype=dtype)
    if qcfg is not None:
        from peft import prepare_model_for_kbit_training
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing)
    if cfg.gradient_checkpointing:
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return add_lora(model, cfg) if cfg.method == "lora" else model


def with_training_template(tokenizer, template: str | None, chat_formats: dict | None = None):
    """The tokenizer to save beside the trained model, carrying the chat template training
    rendered with when it is not the tokenizer's own (a named or file template, or the
    chatml fallback of a tokenizer without one), so that inference renders what training
    rendered. Where tool calls or traces were written through the Hermes fallback, the
    template is preceded by the same rewrite in Jinja (``chat.hermes_template``). The
    tokenizer's own template is kept untouched otherwise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")          # the missing-template notice was given at encoding
        used = resolve_template(tokenizer, template)
    formats = chat_formats or {}
    hermes, inline = "hermes" in formats.get("tools", {}), "inline" in formats.get("reasoning", {})
    if hermes or inline:
        used = with_prelude(used, tools=hermes, reasoning=inline, system_ok=capabilities(tokenizer, used).system)
    own = tokenizer.chat_template
    if isinstance(own, dict):                    # several named templates: the trained one becomes default
        if used not in own.values():
            tokenizer.chat_template = {**own, "default": used}
    elif own != used:
        tokenizer.chat_template = used
    return tokenizer
