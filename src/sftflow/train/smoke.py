"""`sftflow train --smoke`: after a short run on a sample, is this config safe to scale?

Start small: about 100 steps on a few hundred examples catch most broken configs in
minutes. The run itself is the trainer's job; this module only judges what it left
behind (the step log, the count of supervised tokens, one sample generation, and the
exception if it crashed) and says pass or fail with every failed reason:

- no out-of-memory (or other crash);
- supervised tokens present (a mask that hides every answer trains nothing);
- loss finite at every logged step, and no non-finite event from the guard;
- loss falling: the mean of the last quarter of logged train losses is below the
  mean of the first quarter;
- the sample generation is non-empty and, when an expected format is known (a regex,
  or a prefix every training answer shares), matches it.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console

from .config import TrainConfig


@dataclass
class Check:
    name: str
    ok: bool
    detail: str


@dataclass
class SmokeResult:
    checks: list[Check] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "checks": [c.__dict__ for c in self.checks], "reasons": self.reasons}

    def summary(self) -> str:
        lines = [f"smoke {'PASSED' if self.passed else 'FAILED'}"]
        lines += [f"  [{'ok' if c.ok else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


def read_log(path: str | Path) -> list[dict]:
    rows = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError:
                continue
    return rows


def is_oom(error: BaseException | str | None) -> bool:
    if error is None:
        return False
    try:
        import torch
        if isinstance(error, torch.OutOfMemoryError):
            return True
    except (ImportError, AttributeError):
        pass
    text = str(error).lower()
    return "out of memory" in text or "cannot allocate memory" in text or isinstance(error, MemoryError)


def infer_expected_prefix(responses: list[str], min_chars: int = 2) -> str | None:
    """A prefix every training answer starts with (cut at a word end), if any.

    "Answer: 4", "Answer: Paris" -> "Answer:". A run that learned nothing will not
    produce it; one that learned the format will, even after a short run.
    """
    texts = [r.lstrip() for r in responses if r and r.strip()]
    if len(texts) < 2:
        return None
    prefix = os.path.commonprefix(texts)
    # "Answer: 42" and "Answer: 47" share "Answer: 4"; a prefix that ends inside a
    # word is a coincidence, so cut it back to the last space.
    if prefix and prefix[-1].isalnum() and any(len(t) > len(prefix) and t[len(prefix)].isalnum()
                                               for t in texts):
        cut = prefix.rfind(" ")
        prefix = prefix[:cut] if cut > 0 else ""
    prefix = prefix.rstrip()
    return prefix if len(prefix) >= min_chars else None


def check_smoke(log_rows: list[dict], *, supervised_tokens: int, sample: dict | str | None = None,
                expected: str | None = None, error: BaseException | str | None = None) -> SmokeResult:
    """Judge a finished (or crashed) short run. ``expected`` is a regex the sample must match."""
    res = SmokeResult()
    if error is None:
        res.checks.append(Check("no_crash", True, "no out-of-memory, no exception"))
    elif is_oom(error):
        res.checks.append(Check("no_crash", False, f"out of memory: {error}. Lower batch_size or "
                                                   "max_length, or turn on gradient_checkpointing"))
    else:
        res.checks.append(Check("no_crash", False, f"run crashed: {type(error).__name__}: {error}"))

    res.checks.append(Check("supervised_tokens", supervised_tokens > 0,
                            f"{supervised_tokens} supervised tokens" if supervised_tokens > 0 else
                            "no supervised tokens: every label is masked, so nothing is learned "
                            "(check train_on and the chat template)"))

    losses = [r["loss"] for r in log_rows if "loss" in r and "eval_loss" not in r]
    bad = [r for r in log_rows if r.get("event") == "non_finite"]
    nonfinite = [x for x in losses if not isinstance(x, (int, float)) or not math.isfinite(x)]
    if bad or nonfinite:
        what = bad[0]["message"] if bad else f"logged loss {nonfinite[0]}"
        res.checks.append(Check("loss_finite", False, f"loss became non-finite: {what}"))
    elif not losses:
        res.checks.append(Check("loss_finite", False, "no training loss was logged"))
    else:
        res.checks.append(Check("loss_finite", True, f"{len(losses)} logged losses, all finite"))

    finite = [x for x in losses if isinstance(x, (int, float)) and math.isfinite(x)]
    if len(finite) < 2 or bad or nonfinite:
        res.checks.append(Check("loss_falling", False,
                                f"cannot tell: {len(finite)} finite logged loss(es) (need 2 or more)"
                                if not (bad or nonfinite) else "loss is not finite"))
    else:
        q = max(1, len(finite) // 4)
        first, last = sum(finite[:q]) / q, sum(finite[-q:]) / q
        res.checks.append(Check("loss_falling", last < first,
                                f"first {q} logged mean {first:.4f} -> last {q} mean {last:.4f}"
                                + ("" if last < first else ": not falling (learning rate too low, "
                                                           "data all masked, or too few steps)")))

    if sample is None:
        res.checks.append(Check("sample_format", False, "no sample generation was produced"))
    else:
        text = sample if isinstance(sample, str) else sample.get("text", "")
        reason = None if isinstance(sample, str) else sample.get("finish_reason")
        if reason == "error":
            res.checks.append(Check("sample_format", False, f"sample generation failed: {sample.get('error')}"))
        elif not text.strip():
            res.checks.append(Check("sample_format", False, "sample generation is empty"))
        elif expected and not re.search(expected, text):
            res.checks.append(Check("sample_format", False,
                                    f"sample {text[:80]!r} does not match the expected format /{expected}/"))
        else:
            res.checks.append(Check("sample_format", True, f"sample {text[:60]!r}"
                                    + (f" matches /{expected}/" if expected else "")))
    return res


# The run: about 100 steps on a sample with the user's config, then one greedy generation.
SMOKE_STEPS = 100
SMOKE_EXAMPLES = 400


def run_smoke(cfg: TrainConfig, out_dir: str | Path | None = None) -> int:
    from ..io import load_examples, write_examples
    from .sft import NonFiniteLoss, prepare_splits, train
    console = Console(stderr=True)
    out = Path(out_dir or cfg.output_dir or "runs/smoke")
    out.mkdir(parents=True, exist_ok=True)
    train_ex, eval_ex = prepare_splits(cfg)
    write_examples(out / "smoke_train.jsonl", train_ex[:SMOKE_EXAMPLES])
    write_examples(out / "smoke_eval.jsonl", eval_ex[:32])
    steps = min(SMOKE_STEPS, cfg.max_steps) if cfg.max_steps > 0 else SMOKE_STEPS
    scfg = cfg.model_copy(update={"smoke": False, "max_steps": steps, "eval_steps": None,
                                  "logging_steps": max(1, min(cfg.logging_steps, steps // 10)),
                                  "data": [], "eval": [], "early_stopping_patience": None})
    error, supervised, sample = None, 0, None
    try:
        res = train(scfg, out / "smoke_train.jsonl", out / "smoke_eval.jsonl", out_dir=out)
        supervised = res.supervised_tokens
        from ..backends import GenParams
        from ..backends.transformers_backend import TransformersBackend
        prompt = load_examples(out / "smoke_eval.jsonl")[0].context
        backend = TransformersBackend(model=str(res.output_dir), batch_size=1)
        c = backend.generate([prompt], GenParams(max_new_tokens=96))[0]
        sample = {"text": c.text, "finish_reason": c.finish_reason, "error": c.error}
    except NonFiniteLoss:
        pass                      # the guard's event in log.jsonl is what the verdict reads
    except Exception as e:  # noqa: BLE001 - the verdict reports any crash, OOM included
        error = e
        from ..chat import NoSupervisedTokens
        if isinstance(e, (ValueError, NoSupervisedTokens)) and "no trainable example" in str(e):
            supervised = 0
    prefix = infer_expected_prefix([e.response for e in train_ex[:SMOKE_EXAMPLES]])
    verdict = check_smoke(read_log(out / "log.jsonl") if (out / "log.jsonl").exists() else [],
                          supervised_tokens=supervised, sample=sample,
                          expected=("^" + re.escape(prefix)) if prefix else None, error=error)
    (out / "smoke.json").write_text(json.dumps(verdict.to_dict(), indent=2))
    console.print(verdict.summary())
    return 0 if verdict.passed else 1
