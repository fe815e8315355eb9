"""Training options. The class is the schema: every field is a flag and a YAML key."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ..config import StrictModel

DEFAULT_LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class TrainConfig(StrictModel):
    model: str | None = Field(None, description="model alias, local folder or hub id (recipe's model if unset)")
    data: list[str] = Field(default_factory=list, description="training files (recipe data if unset)")
    eval: list[str] = Field(default_factory=list, description="held-out files; empty = seeded split")
    eval_fraction: float = Field(0.1, gt=0, lt=1)
    format: str = "auto"
    output_dir: str | None = None

    method: Literal["lora", "full"] = "lora"
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    lora_target_modules: list[str] = Field(default_factory=lambda: list(DEFAULT_LORA_TARGETS))

    learning_rate: float | None = Field(None, gt=0, description="default 2e-4 for LoRA, 2e-5 for full")
    lr_scheduler: str = "cosine"
    optimizer: str = Field("adamw_torch", description="any transformers optim name (adamw_torch, sgd, ...)")
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    weight_decay: float = Field(0.1, ge=0)
    max_grad_norm: float = Field(1.0, gt=0)
    batch_size: int = Field(4, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = Field(-1, description="> 0 overrides epochs")
    max_length: int = Field(1024, ge=8)
    train_on: Literal["assistant", "last", "all"] = "assistant"
    eval_train_on: Literal["assistant", "last", "all"] | None = Field(
        None, description="tokens the held-out loss is measured on during training; unset: the recipe's "
        "eval.train_on, or 'last' (the final answer, as `sftflow eval` measures it)")
    template: str | None = Field(None, description="chat template to train with instead of the tokenizer's: "
                                 "alpaca, chatml, a Jinja file or string (saved into the output tokenizer)")
    tool_format: Literal["auto", "native", "hermes"] = Field(
        "auto", description="tool calls and traces the template cannot show: auto = the template's own syntax, "
        "else written Hermes style (<tool_call> JSON) with a notice; native = refuse; hermes = always Hermes")
    per_turn: Literal["auto", "never"] = Field(
        "auto", description="auto: one example per assistant turn where the template rewrites history; "
                            "never: one sequence per conversation, an error where that is not faithful")
    group_by_length: bool = True
    packing: bool = Field(False, description="best-fit-decreasing packing with per-example attention")
    pack_length: int | None = Field(None, ge=8, description="packed row length (default: max_length)")

    eval_steps: int | None = Field(None, ge=1, description="evaluate every N steps; None = each epoch")
    logging_steps: int = Field(10, ge=1)
    save_total_limit: int = Field(2, ge=1)
    keep_best: bool = True
    best_probe: dict | None = Field(None, description="choose the best checkpoint by a behaviour probe "
                                    "(a probe mapping as in eval probes) instead of eval loss")
    best_probe_higher_is_better: bool = True
    best_probe_prompts: int = Field(8, ge=1, description="held-out prompts the probe is measured on")
    early_stopping_patience: int | None = Field(None, ge=1)
    early_stopping_min_delta: float = Field(0.0, ge=0)
    overfit_gap: float = Field(0.3, gt=0)
    report_to: list[str] = Field(default_factory=list)

    load_in_4bit: bool = Field(False, description="QLoRA: 4-bit NF4 base (CUDA + bitsandbytes only)")
    gradient_checkpointing: bool = False
    bf16: Literal["auto", True, False] = Field("auto", description="auto: on where the GPU supports bf16")
    seed: int | None = Field(None, description="seed for the held-out split, initialisation and data order; "
                             "unset: the recipe's seed, or 0")
    merge: bool = False
    smoke: bool = False
    resume: bool = False
    num_threads: int | None = Field(None, ge=1, description="torch CPU threads (default: all cores)")

    @model_validator(mode="after")
    def _check(self):
        if self.load_in_4bit and self.method != "lora":
            raise ValueError("load_in_4bit (QLoRA) trains LoRA adapters on a frozen 4-bit base: use method=lora")
        if self.merge and self.method != "lora":
            raise ValueError("merge only applies to method=lora (a full fine-tune is already a full model)")
        return self

    @property
    def lr(self) -> float:
        return self.learning_rate or (2e-4 if self.method == "lora" else 2e-5)
