"""The one-command demo: data -> LoRA on SmolLM2-135M-Instruct -> base vs tuned -> report.

The shipped data (``sftflow/data/demo``) is a finance assistant whose answers are
confident, specific and in one house format ("Answer: ...\\n\\nDetails: ..."). The
demo trains a LoRA adapter on it and measures, on held-out prompts, what the mission
asks: response loss, the share of answers opening with an apology or hedge, the share
following the house format, and the share that end their turn instead of running
into the token limit. Sized for a 2-core CPU (about 10-15 minutes).
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from ..config import dump_yaml
from ..models import DEFAULT_MODEL, resolve_model

console = Console()

HOUSE_FORMAT = {"name": "house_format", "kind": "regex", "pattern": r"^Answer: .+\n\s*\nDetails: \S",
                "ignore_case": False, "description": "follows the house format (Answer: / Details:)"}


def demo_root() -> Path:
    return Path(str(resources.files("sftflow"))) / "data" / "demo"


def demo_data() -> tuple[Path, Path]:
    """The demo's training file and its validation file (what trains, what chooses)."""
    return demo_root() / "train.jsonl", demo_root() / "validation.jsonl"


def demo_test_file() -> Path:
    """The demo's test file: reported on once, at the end; nothing chooses on it."""
    return demo_root() / "test.jsonl"


# Sized for a 2-core CPU (training runs at roughly 80-200 tokens/s there): 30 steps of
# 8 examples (~240 examples, ~40K tokens), the best of two evaluations on the validation
# set, then base vs tuned on the test prompts and 100 forgetting questions.
DEMO_STEPS = 30
EVAL_PROMPTS = 40
FORGETTING_QUESTIONS = 100


def demo_configs(out: Path, *, epochs: float, max_steps: int, limit: int | None):
    from ..evaluate.config import ChoiceSection, EvalConfig, ProbeSpec
    from ..train.config import TrainConfig
    train_file, train_eval = demo_data()
    # LoRA on every projection with a learning rate above the 2e-4 default: a 135M
    # model needs a firm push to adopt a new format within a few dozen CPU steps.
    tcfg = TrainConfig(model=DEFAULT_MODEL, data=[str(train_file)], eval=[str(train_eval)], method="lora",
                       lora_r=16, lora_alpha=32, learning_rate=1e-3, epochs=epochs, max_steps=max_steps,
                       batch_size=8, max_length=512, logging_steps=5, eval_steps=max(1, max_steps // 2)
                       if max_steps > 0 else None, seed=0)
    ecfg = EvalConfig(data=[str(demo_test_file())], limit=limit or EVAL_PROMPTS, max_new_tokens=128, batch_size=8,
                      extra_probes=[ProbeSpec(**HOUSE_FORMAT)], choice=ChoiceSection(limit=FORGETTING_QUESTIONS))
    return tcfg, ecfg


def _rate(metrics: dict, probe: str, side: str) -> float | None:
    p = metrics.get("probes", {}).get(probe, {}).get(side)
    return None if p is None else p["rate"]


def summary_table(metrics: dict) -> Table:
    t = Table(title="sftflow demo: base vs tuned on held-out finance prompts")
    t.add_column("measure")
    t.add_column("base", justify="right")
    t.add_column("tuned", justify="right")
    t.add_column("better", justify="center")
    loss = metrics.get("loss", {})

    def fmt(v, pct):
        return "-" if v is None else (f"{v:.1%}" if pct else f"{v:.3f}")

    rows = [("held-out loss (response tokens)", (loss.get("base") or {}).get("loss"),
             (loss.get("tuned") or {}).get("loss"), False, "lower")]
    for probe, label, want in (("apology_preamble", "opens with apology/hedge", "lower"),
                               ("house_format", "follows house format", "higher"),
                               ("hit_token_limit", "ran into token limit", "lower")):
        rows.append((label, _rate(metrics, probe, "base"), _rate(metrics, probe, "tuned"), True, want))
    for label, b, tu, pct, want in rows:
        ok = ("-" if b is None or tu is None else "same" if tu == b
              else "yes" if (tu < b if want == "lower" else tu > b) else "no")
        t.add_row(label, fmt(b, pct), fmt(tu, pct), ok)
    stop_b, stop_t = _rate(metrics, "hit_token_limit", "base"), _rate(metrics, "hit_token_limit", "tuned")
    if stop_b is not None and stop_t is not None:
        t.add_row("ended with end-of-turn", fmt(1 - stop_b, True), fmt(1 - stop_t, True),
                  "same" if stop_t == stop_b else "yes" if stop_t < stop_b else "no")
    for name, c in (metrics.get("choice") or {}).items():
        b_acc, t_acc = (c.get("base") or {}).get("acc"), (c.get("tuned") or {}).get("acc")
        t.add_row(f"forgetting probe '{name}' acc", fmt(b_acc, True), fmt(t_acc, True),
                  "-" if b_acc is None or t_acc is None else "same" if t_acc == b_acc
                  else "yes" if t_acc > b_acc else "no")
    return t


def run_demo(out: Path, *, epochs: float = 1.0, max_steps: int = DEMO_STEPS, limit: int | None = None,
             report: bool = True) -> int:
    from ..evaluate.run import evaluate
    from ..train.sft import train
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    train_file, _ = demo_data()
    if not train_file.exists():
        raise FileNotFoundError(f"demo data missing from the package: {train_file}")
    tcfg, ecfg = demo_configs(out, epochs=epochs, max_steps=max_steps, limit=limit)
    dump_yaml(tcfg, out / "demo_train_config.yaml")
    dump_yaml(ecfg, out / "demo_eval_config.yaml")
    console.rule("[bold]1/3 train: LoRA on SmolLM2-135M-Instruct")
    res = train(tcfg, out_dir=out / "train")
    console.rule("[bold]2/3 evaluate: base vs tuned")
    metrics = evaluate(ecfg, model=str(res.output_dir), base=resolve_model(DEFAULT_MODEL),
                       out_dir=out / "eval")
    metrics["train"] = {"steps": res.steps, "final_train_loss": res.final_train_loss,
                        "best_eval_loss": res.best_eval_loss, "train_examples": res.train_examples,
                        "supervised_tokens": res.supervised_tokens}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str))
    console.print(summary_table(metrics))
    if report:
        console.rule("[bold]3/3 report")
        try:
            from ..report import build_report
        except ImportError as e:
            console.print(f"[yellow]report skipped: {e}")
        else:
            path = build_report(out)
            console.print(f"report: {path}")
    console.print(f"run folder: {out}  (metrics.json, train/ adapter, eval/generations.jsonl)")
    return 0
