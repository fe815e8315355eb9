"""`sftflow train --smoke`: the seed's "start small" check, run for real.

About 100 steps on a sample of the data with the user's config, then one greedy
generation, judged by ``smoke.check_smoke``: no crash or out-of-memory, supervised
tokens present, loss finite and falling, and a sample in the expected format (the
prefix every training answer shares, when there is one). Exit code 0 = pass.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from .config import TrainConfig
from .smoke import check_smoke, infer_expected_prefix, read_log

SMOKE_STEPS = 100
SMOKE_EXAMPLES = 400


def run_smoke(cfg: TrainConfig, out_dir: str | Path | None = None) -> int:
    import re

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
        from ..templates import NoSupervisedTokens
        if isinstance(e, (ValueError, NoSupervisedTokens)) and "no trainable example" in str(e):
            supervised = 0
    prefix = infer_expected_prefix([e.response for e in train_ex[:SMOKE_EXAMPLES]])
    verdict = check_smoke(read_log(out / "log.jsonl") if (out / "log.jsonl").exists() else [],
                          supervised_tokens=supervised, sample=sample,
                          expected=("^" + re.escape(prefix)) if prefix else None, error=error)
    (out / "smoke.json").write_text(__import__("json").dumps(verdict.to_dict(), indent=2))
    console.print(verdict.summary())
    return 0 if verdict.passed else 1
