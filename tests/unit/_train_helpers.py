"""A minimal transformers Trainer set-up on the tiny random model, for callback and smoke tests.

It uses the plain ``transformers.Trainer`` (not sftflow's trainer) so the callbacks
are tested against the library contract they rely on.
"""

from __future__ import annotations

import torch
from transformers import Trainer, TrainingArguments

from sftflow.chat import encode

PAIRS = [("What is 2+2?", "Answer: 4"), ("Capital of France?", "Answer: Paris"),
         ("Colour of the sky?", "Answer: blue"), ("What is 3+3?", "Answer: 6"),
         ("Opposite of hot?", "Answer: cold"), ("Largest ocean?", "Answer: Pacific"),
         ("What is 5+5?", "Answer: 10"), ("Plural of mouse?", "Answer: mice")]


class Rows(torch.utils.data.Dataset):
    def __init__(self, rows):
        self.rows = rows

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        return self.rows[i]


def encoded_rows(tokenizer, *, mask_all: bool = False) -> list[dict]:
    rows = []
    for q, a in PAIRS:
        e = encode([{"role": "user", "content": q}, {"role": "assistant", "content": a}], tokenizer,
                   train_on="last")
        labels = [-100] * len(e.labels) if mask_all else list(e.labels)
        rows.append({"input_ids": e.input_ids, "labels": labels})
    return rows


def collate(pad_id: int):
    def fn(batch):
        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [pad_id] * (width - len(b["input_ids"])) for b in batch]
        lab = [b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(lab), "attention_mask": torch.tensor(mask)}
    return fn


def make_trainer(model_dir, tokenizer, out, callbacks, *, lr=3e-3, max_steps=20, eval_steps=None,
                 mask_all=False, trainer_cls=Trainer, logging_steps=2, save_steps=None, **trainer_kwargs):
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = encoded_rows(tokenizer, mask_all=mask_all)
    has_eval = eval_steps is not None
    args = TrainingArguments(
        output_dir=str(out / "checkpoints"), learning_rate=lr, max_steps=max_steps,
        per_device_train_batch_size=4, per_device_eval_batch_size=4, logging_steps=logging_steps,
        logging_first_step=True, eval_strategy="steps" if has_eval else "no", eval_steps=eval_steps,
        save_strategy="steps", save_steps=save_steps or eval_steps or max_steps, load_best_model_at_end=has_eval,
        metric_for_best_model="eval_loss" if has_eval else None, greater_is_better=False,
        report_to="none", use_cpu=True, disable_tqdm=True, warmup_steps=0, lr_scheduler_type="constant",
        weight_decay=0.0, max_grad_norm=1.0, seed=0, dataloader_num_workers=0, save_only_model=True,
        remove_unused_columns=False)
    return trainer_cls(model=model, args=args, train_dataset=Rows(rows),
                       eval_dataset=Rows(rows[:4]) if has_eval else None,
                       data_collator=collate(tokenizer.pad_token_id), callbacks=callbacks, **trainer_kwargs)
