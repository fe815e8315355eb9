"""How the demo's tool-using adapter learns with steps: correct figures on two kinds of prompt.

Trains the demo's tools arm (same recipe as ``sftflow demo``) for ``--steps`` steps, saving a
checkpoint every ``--every`` steps, then runs the tool loop with each checkpoint on

- the demo's test prompts (question wordings and amounts training never sees), and
- fresh questions in the *training* wordings with new amounts (``--familiar`` per kind, drawn
  from the data builder with its own seed),

and prints, per checkpoint, how many answers state the figure the reference works out. The gap
between the two says whether the model is short of steps (both low) or of wording variety
(familiar high, held-out low). Nothing here chooses anything: it is a measurement.

    .venv/bin/python scripts/demo_learning_curve.py -o runs/curve --steps 360 --every 60   # the README table
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
from pathlib import Path

from sftflow.evaluate.config import EvalConfig, ProbeSpec
from sftflow.evaluate.run import evaluate
from sftflow.models import DEFAULT_MODEL
from sftflow.pipeline.demo import (
    HOUSE_FORMAT,
    DemoSize,
    demo_root,
    demo_test_file,
    prepare_demo_data,
    train_config,
)
from sftflow.train.sft import train


def familiar_questions(path: Path, per_kind: int, seed: int) -> Path:
    """Questions in the training wordings with new amounts, with the builder's reference answers."""
    spec = importlib.util.spec_from_file_location("demo_builder", demo_root() / "build_demo_data.py")
    builder = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builder)
    rng, rows = random.Random(seed), []
    for kind, make in builder.KINDS.items():
        for _ in range(per_kind):
            _, q, a, _ = make(rng, "train", False)
            rows.append({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}],
                         "metadata": {"kind": kind}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def stated(eval_dir: Path) -> tuple[int, int]:
    rows = [json.loads(x) for x in (eval_dir / "reference_figures.jsonl").read_text().splitlines() if x.strip()]
    hits = [r["tuned"]["stated"] for r in rows if r["tuned"]["stated"] is not None]
    return sum(hits), len(hits)


def tool_use(eval_dir: Path) -> dict:
    """The tuned side's calculator use: answers that called it, calls, and calls that failed."""
    t = json.loads((eval_dir / "metrics.json").read_text())["tools"]["tuned"]
    return {"used": t["used_tools"]["count"], "answers": t["answers"], "calls": t["calls"], "errors": t["errors"]}


def validation_loss(checkpoint: Path) -> float | None:
    """The validation loss the run logged at this checkpoint's step (trainer_state.json)."""
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    step = state["global_step"]
    return next((h["eval_loss"] for h in state["log_history"] if h.get("step") == step and "eval_loss" in h), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--steps", type=int, default=96)
    ap.add_argument("--every", type=int, default=24)
    ap.add_argument("--familiar", type=int, default=2, help="fresh training-wording questions per kind")
    ap.add_argument("--model", default=DEFAULT_MODEL)
    args = ap.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    paths = prepare_demo_data(out, size=DemoSize())
    cfg = train_config(args.model, paths["train_tools"], paths["validation_tools"], args.steps, tools=True)
    cfg = cfg.model_copy(update={"eval_steps": args.every, "save_total_limit": 10_000, "keep_best": False})
    train(cfg, out_dir=out / "train")
    familiar = familiar_questions(out / "familiar.jsonl", args.familiar, seed=12345)
    rows = []
    for ck in sorted((out / "train" / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])):
        row = {"steps": int(ck.name.split("-")[1]), "validation_loss": validation_loss(ck)}
        for label, data in (("test", demo_test_file()), ("familiar", familiar)):
            ecfg = EvalConfig(data=[str(data)], limit=40, max_new_tokens=128, batch_size=8, generation_batch_size=40,
                              loss=False, choice=None, gates=[], tools={"max_steps": 3},
                              extra_probes=[ProbeSpec(**HOUSE_FORMAT)])
            evaluate(ecfg, model=str(ck), out_dir=out / f"eval_{label}_{ck.name}")
            row[label] = stated(out / f"eval_{label}_{ck.name}")
            row[f"{label}_tools"] = tool_use(out / f"eval_{label}_{ck.name}")
        rows.append(row)
        t = row["test_tools"]
        print(f"steps {row['steps']} (validation loss {row['validation_loss']}): test {row['test'][0]}/{row['test'][1]}"
              f" (called on {t['used']}/{t['answers']}, {t['calls']} calls, {t['errors']} errors), "
              f"familiar wordings {row['familiar'][0]}/{row['familiar'][1]}", flush=True)
        (out / "learning_curve.json").write_text(json.dumps(rows, indent=2))      # a row at a time


if __name__ == "__main__":
    main()
