"""One training run of a select-vs-random arm: train, evaluate, keep what each prompt scored.

Resumable at two depths, and never stale:

* Each run folder carries a **fingerprint** of what its training depends on: the content
  ids of the records it trains on (which the pool, the selection and the budget decide),
  the budget, the model, the training seed and the resolved ``train`` config. It is written
  before training starts. A rerun whose fingerprint differs (a changed pool, budget, rule or
  learning rate) clears the folder and trains again; the same fingerprint reuses a finished
  run, or resumes a run killed during training from its checkpoints.
* The evaluation key is the ``eval`` config plus the ids of the held-out records: a run whose
  training is current but whose evaluation was asked differently is only evaluated again.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from ..io import iter_jsonl, read_examples
from ..io.atomic import atomic_write_text

console = Console(stderr=True)


def _digest(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def ids_of(path: Path) -> list[str]:
    return [ex.id for ex in read_examples([path]).examples]


def train_config_for(cfg, seed: int):
    """The run's training config: the experiment's, with its seed; no checkpoint picking on the
    held-out set (it is the experiment's test set, and evaluating on it during training could
    only serve that)."""
    return cfg.train.model_copy(update={"model": cfg.train.model or cfg.model, "seed": seed,
                                        "keep_best": False, "eval_steps": 10 ** 9, "data": [], "eval": []})


def run_fingerprint(cfg, train_file: Path, seed: int, budget: int) -> dict[str, Any]:
    ids = sorted(ids_of(train_file))
    tcfg = train_config_for(cfg, seed).model_dump(mode="json")
    parts = {"train_ids": _digest(ids), "budget": budget, "model": cfg.model, "train_config": _digest(tcfg)}
    return {"digest": _digest(parts), **parts, "train_examples": len(ids)}


def eval_key(cfg, heldout_file: Path) -> dict[str, Any] | None:
    if cfg.eval is None:
        return None
    return {"eval": cfg.eval.model_dump(mode="json"), "heldout_ids": _digest(ids_of(heldout_file))}


def _current(run_dir: Path, fingerprint: dict[str, Any]) -> bool:
    """True when the folder was trained (or is being trained) for this fingerprint; a folder from
    other inputs is cleared so nothing of it is reused."""
    stamp = run_dir / "fingerprint.json"
    if stamp.exists():
        if json.loads(stamp.read_text()).get("digest") == fingerprint["digest"]:
            return True
        console.print(f"[sftflow] experiment: {run_dir.name} was run on other inputs (pool, budget or "
                      "config changed); training it again")
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    atomic_write_text(stamp, json.dumps(fingerprint, indent=2))
    return False


def per_prompt_outcomes(cfg, eval_dir: Path) -> dict[str, list]:
    """What each test prompt scored: every probe (0/1), each unwanted opening's probability, the
    stated figure (0/1, None when the reference works out no figure) and the held-out loss, in
    held-out order, for the prompt-paired intervals."""
    from ..probes import Probe
    out: dict[str, list] = {}
    losses = eval_dir / "loss_per_example.jsonl"
    if losses.exists():
        out["heldout_loss"] = prompt_loss_shares([row for _, row in iter_jsonl(losses)])
    gen = eval_dir / "generations.jsonl"
    if gen.exists():
        answers = [row["tuned"] for _, row in iter_jsonl(gen)]
        for spec in cfg.eval.all_probes():
            probe = Probe(spec)
            out[f"probe:{spec.name}"] = [int(probe(a)) for a in answers]
    openings = eval_dir / "openings_per_example.jsonl"
    if openings.exists():
        rows = [row for _, row in iter_jsonl(openings)]
        for spec in cfg.eval.openings:
            out[f"opening:{spec.name}"] = [row[f"tuned_{spec.name}"] for row in rows]
    fig = eval_dir / "reference_figures.jsonl"
    if fig.exists():
        out["reference:figures"] = [None if row["tuned"]["stated"] is None else int(row["tuned"]["stated"])
                                    for _, row in iter_jsonl(fig)]
    return out


def prompt_loss_shares(rows: list[dict]) -> list[float | None]:
    """Each prompt's summed answer loss over the mean answer length (in tokens) of the prompts measured.

    Their mean is the run's token-weighted held-out loss (total loss over total tokens), so the
    prompt-paired difference of two runs is the difference of their held-out losses: every run
    scores the same answers with the same tokenizer, so the token counts match prompt by prompt.
    A prompt whose loss was not measured (flagged, e.g. no supervised token) is None.
    """
    sums = [r["tuned_loss"] * r["tokens"] if r.get("tuned_loss") is not None and r.get("tokens") else None
            for r in rows]
    measured = [r["tokens"] for r, x in zip(rows, sums) if x is not None]
    if not measured:
        return sums
    mean_tokens = sum(measured) / len(measured)
    return [None if x is None else x / mean_tokens for x in sums]


def _evaluate(cfg, model_dir: str, heldout_file: Path, eval_dir: Path, out: dict[str, Any]) -> None:
    from ..evaluate.run import evaluate
    m = evaluate(cfg.eval, model=model_dir, data=[str(heldout_file)], out_dir=eval_dir)
    if cfg.eval.loss and (m.get("loss") or {}).get("tuned"):
        out["heldout_loss"] = m["loss"]["tuned"]["loss"]
    for name, p in (m.get("probes") or {}).items():
        out[f"probe:{name}"] = p["tuned"]["rate"]
    for name, o in (m.get("openings") or {}).items():
        out[f"opening:{name}"] = o["tuned"]["mean"]
    figures = (m.get("reference") or {}).get("figures")
    if figures and figures["tuned"]["n"]:
        out["reference:figures"] = figures["tuned"]["rate"]
    for name, c in (m.get("choice") or {}).items():
        acc = (c.get("tuned") or {}).get("acc")
        if acc is not None:
            out[f"choice:{name}"] = acc
    out["per_prompt"] = per_prompt_outcomes(cfg, eval_dir)


def run_one(cfg, arm: str, r: int, train_file: Path, heldout_file: Path, run_dir: Path,
            budget: int | None = None) -> dict[str, Any]:
    seed = (cfg.train.seed or 0) + r         # an unset train seed is 0
    fingerprint = run_fingerprint(cfg, train_file, seed, budget if budget is not None else -1)
    want_eval = eval_key(cfg, heldout_file)
    done = run_dir / "result.json"
    if _current(run_dir, fingerprint) and done.exists():
        prev = json.loads(done.read_text())
        if prev.get("eval_key") == want_eval:
            if cfg.eval is not None:        # read again from the files: the per-prompt table may have grown
                prev["per_prompt"] = per_prompt_outcomes(cfg, run_dir / "eval")
            return prev
    trained = run_dir / "train" / "train_result.json"
    if not trained.exists():
        from ..train.sft import train
        console.print(f"[sftflow] experiment: training arm '{arm}' run {r + 1}")
        train(train_config_for(cfg, seed), train_file, heldout_file, out_dir=run_dir / "train", quiet=True)
    res = json.loads(trained.read_text())
    out: dict[str, Any] = {"arm": arm, "run": r, "train_seed": seed, "train_file": str(train_file),
                           "train_examples": res["train_examples"], "steps": res["steps"],
                           "train_eval_loss": res["eval_loss"], "heldout_loss": res["eval_loss"],
                           "fingerprint": fingerprint["digest"], "eval_key": want_eval,
                           "eval_config": want_eval and want_eval["eval"]}
    if cfg.eval is not None:
        console.print(f"[sftflow] experiment: evaluating arm '{arm}' run {r + 1}")
        _evaluate(cfg, str(res["merged_dir"] or res["output_dir"]), heldout_file, run_dir / "eval", out)
    atomic_write_text(done, json.dumps(out, indent=2))
    return out
