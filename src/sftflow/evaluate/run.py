"""``evaluate(cfg, model, base, data, out_dir)``: every check, both models, one metrics.json.

Each model is loaded once and used for everything (loss, multiple-choice, greedy
generations) before the next is loaded, so peak memory is one model (plus the judge
at the end). A side's results are saved under ``parts/`` keyed by the model's
weights, the config and the data; an interrupted eval resumes from there.
"""

from __future__ import annotations

import gc
import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from ..backends import GenParams
from ..errors import EvalFailed  # noqa: F401  (defined without torch; raised here)
from ..io import load_examples, sha256_file, write_jsonl, write_manifest
from ..io.atomic import atomic_write_text
from ..models import load_model, load_tokenizer, weights_hash
from .config import EvalConfig
from .generations import generate_answers, side_by_side
from .heldout import compare, heldout_loss, per_example_table
from ..probes import compare_probes, run_probes

console = Console(stderr=True)


def clean_json(v: Any) -> Any:
    """NaN/inf are not JSON; write them as null so browsers and jq can read the file."""
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    if isinstance(v, dict):
        return {k: clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    return v


def _load_tokenizer(path: str, fallback: str | None):
    try:
        return load_tokenizer(path)
    except (OSError, ValueError):
        # An adapter folder saved without its tokenizer: the base model's is the right one.
        if fallback is None:
            raise
        return load_tokenizer(fallback)


def _part_key(model: str, cfg: EvalConfig, data_sha: str) -> str:
    try:
        wh = weights_hash(model)
    except OSError:
        wh = str(model)
    cfg_json = cfg.model_dump_json(exclude={"judge", "model", "base", "data"})
    return hashlib.sha256(f"{model}|{wh}|{cfg_json}|{data_sha}".encode()).hexdigest()[:16]


def evaluate_side(cfg: EvalConfig, model_path: str, examples, *, tokenizer_fallback: str | None = None,
                  label: str = "") -> dict[str, Any]:
    """Loss, multiple-choice and generations for one model, loaded once for all three."""
    import torch

    t0 = time.perf_counter()
    console.print(f"[sftflow] eval: loading {label} model {model_path}")
    tok = _load_tokenizer(model_path, tokenizer_fallback)
    lm = load_model(model_path)
    lm.eval()
    out: dict[str, Any] = {"model": model_path, "timing": {}}
    if cfg.loss:
        t = time.perf_counter()
        with console.status(f"{label}: held-out loss on {len(examples)} examples"):
            out["loss"], out["loss_rows"] = heldout_loss(lm, tok, examples, train_on=cfg.train_on,
                                                         max_length=cfg.max_length,
                                                         batch_size=cfg.batch_size)
        out["timing"]["loss_s"] = time.perf_counter() - t
    if cfg.choice is not None:
        t = time.perf_counter()
        out["choice"] = _side_choice(cfg, lm, tok, label)
        out["timing"]["choice_s"] = time.perf_counter() - t
    if cfg.generate:
        t = time.perf_counter()
        out["answers"] = _side_answers(cfg, model_path, lm, tok, examples, label)
        out["timing"]["generate_s"] = time.perf_counter() - t
    if cfg.openings:
        from .openings import side_openings
        t = time.perf_counter()
        backend = _backend(cfg, model_path, lm, tok)      # the prompts exactly as generation renders them
        prompts = [backend.prompt_ids(e.context) for e in examples]
        with console.status(f"{label}: likelihood of {len(cfg.openings)} unwanted openings"):
            out["openings"] = side_openings(cfg.openings, lm, tok, prompts, batch_size=cfg.batch_size)
        out["timing"]["openings_s"] = time.perf_counter() - t
    if cfg.general is not None:
        from .general import side_general
        t = time.perf_counter()
        with console.status(f"{label}: general probe"):
            out["general"] = side_general(cfg.general, lm, tok, _backend(cfg, model_path, lm, tok),
                                          max_length=cfg.max_length, batch_size=cfg.batch_size)
        out["timing"]["general_s"] = time.perf_counter() - t
    out["timing"]["total_s"] = time.perf_counter() - t0
    del lm
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def _side_choice(cfg: EvalConfig, lm, tok, label: str) -> dict[str, dict]:
    from .choice import load_task, score_items

    results = {}
    for spec in cfg.choice.tasks:
        name, items = load_task(spec, cfg.choice.lm_eval_include)
        if cfg.choice.limit:
            items = items[: cfg.choice.limit]
        with console.status(f"{label}: multiple-choice '{name}' ({len(items)} questions)"):
            results[name] = score_items(lm, tok, items, num_fewshot=cfg.choice.num_fewshot,
                                        seed=cfg.choice.seed, batch_size=cfg.choice.batch_size)
    return results


def _backend(cfg: EvalConfig, model_path: str, lm, tok):
    from ..backends.transformers_backend import TransformersBackend
    return TransformersBackend(model=model_path, model_obj=lm, tokenizer=tok,
                               batch_size=cfg.generation_batch_size or cfg.batch_size)


def _side_answers(cfg: EvalConfig, model_path: str, lm, tok, examples, label: str) -> list[dict]:
    backend = _backend(cfg, model_path, lm, tok)
    params = GenParams(max_new_tokens=cfg.max_new_tokens, temperature=cfg.temperature)
    with console.status(f"{label}: generating {len(examples)} answers"):
        if cfg.tools is None:
            return generate_answers(backend, examples, params)
        from ..tools.loop import run_tool_loop
        results = run_tool_loop(backend, [e.context for e in examples], params, max_steps=cfg.tools.max_steps)
        return [r.to_answer() for r in results]


def _side(cfg, model_path, examples, parts: Path, data_sha: str, label: str, fallback) -> dict:
    key = _part_key(model_path, cfg, data_sha)
    part = parts / f"{label}.json"
    if part.exists():
        try:
            saved = json.loads(part.read_text())
        except ValueError:      # cut short by a kill (before parts were written atomically)
            console.print(f"[yellow][sftflow] eval: {part} is cut short; computing {label} again[/yellow]")
            saved = {}
        if saved.get("key") == key:
            console.print(f"[sftflow] eval: reusing saved {label} results ({part})")
            return saved["result"]
    res = evaluate_side(cfg, model_path, examples, tokenizer_fallback=fallback, label=label)
    parts.mkdir(parents=True, exist_ok=True)
    atomic_write_text(part, json.dumps({"key": key, "result": clean_json(res)}))
    return res


def _choice_summary(res: dict | None) -> dict | None:
    if res is None:
        return None
    return {k: res[k] for k in ("acc", "acc_norm", "acc_bytes", "n")}


@dataclass
class HeldOut:
    """What the eval reads: the held-out files, their records and one hash over their bytes."""

    files: list[str]
    examples: list
    sha: str


def load_heldout(cfg: EvalConfig, model: str | None, data: list[str] | str | Path | None) -> HeldOut:
    """Check the inputs name a model and (when a part needs it) data, then read the data."""
    if isinstance(data, (str, Path)):
        data = [str(data)]
    files = list(data or cfg.data)
    if not model:
        raise ValueError("evaluate needs a model (the tuned model to evaluate)")
    if not files and (cfg.loss or cfg.generate):
        raise ValueError("evaluate needs held-out data for loss and generations (--data)")
    examples = load_examples(files) if files else []
    if cfg.limit:
        examples = examples[: cfg.limit]
    sha = hashlib.sha256("".join(sha256_file(p) for p in files).encode()).hexdigest()
    return HeldOut(files=files, examples=examples, sha=sha)


def run_sides(cfg: EvalConfig, model: str, base: str | None, held: HeldOut, out_dir: Path) -> dict[str, dict]:
    """Base first (when given), then tuned: one model in memory at a time."""
    parts = out_dir / "parts"
    sides: dict[str, dict] = {}
    if base:
        sides["base"] = _side(cfg, base, held.examples, parts, held.sha, "base", None)
    sides["tuned"] = _side(cfg, model, held.examples, parts, held.sha, "tuned", base)
    return sides


def loss_metrics(sides: dict[str, dict], out_dir: Path) -> dict:
    """Paired held-out loss, and the per-example table the report draws from."""
    base = sides.get("base", {})
    paired = compare(base.get("loss"), sides["tuned"].get("loss"), base.get("loss_rows"),
                     sides["tuned"].get("loss_rows"))
    write_jsonl(out_dir / "loss_per_example.jsonl",
                per_example_table(base.get("loss_rows"), sides["tuned"]["loss_rows"]))
    return paired


def probe_metrics(cfg: EvalConfig, sides: dict[str, dict], examples, out_dir: Path) -> dict:
    """Each probe's rate on each side, and the side-by-side generations file."""
    probes = cfg.all_probes()
    per_side = {s: run_probes(r["answers"], probes) for s, r in sides.items()}
    write_jsonl(out_dir / "generations.jsonl",
                side_by_side(examples, sides.get("base", {}).get("answers"), sides["tuned"]["answers"]))
    out = {p.name: {"description": p.description or p.kind, **{s: per_side[s][p.name] for s in per_side}}
           for p in probes}
    if "base" in sides:   # the same prompts on both sides: a paired test per probe (tuned - base)
        for name, paired in compare_probes(sides["base"]["answers"], sides["tuned"]["answers"], probes).items():
            out[name]["paired"] = paired
    return out


def choice_metrics(cfg: EvalConfig, sides: dict[str, dict]) -> dict:
    """Each task's accuracy per side, and (with a base) the paired exact test on the same questions."""
    from ..intervals import mcnemar_exact
    key = {"acc": "pred", "acc_norm": "pred_norm"}.get(cfg.choice.metric)
    out = {}
    for name in sides["tuned"]["choice"]:
        out[name] = {s: _choice_summary(sides[s]["choice"].get(name)) for s in sides}
        items = {s: (sides[s]["choice"].get(name) or {}).get("items") for s in sides}
        if key and items.get("base") and items.get("tuned"):
            out[name]["paired"] = mcnemar_exact([i[key] == i["answer"] for i in items["base"]],
                                                [i[key] == i["answer"] for i in items["tuned"]])
    return out


def forgetting_gate(cfg: EvalConfig, sides: dict[str, dict]) -> tuple[dict, str, list[str]]:
    """The multiple-choice forgetting gate: its table, its status and one reason per task not passing."""
    from .choice import forgetting

    fg = forgetting(dict(sides["base"]["choice"]), dict(sides["tuned"]["choice"]), metric=cfg.choice.metric,
                    warn_drop=cfg.choice.warn_drop, fail_drop=cfg.choice.fail_drop)
    reasons = [f"{name}: {t['metric']} changed by {t['delta_points']:+.1f} points "
               f"(warn below -{fg['warn_drop']}, fail below -{fg['fail_drop']})"
               for name, t in fg["tasks"].items() if t["status"] != "pass"]
    return fg, fg["status"], reasons


def write_metrics(cfg: EvalConfig, metrics: dict[str, Any], held: HeldOut, out_dir: Path) -> None:
    atomic_write_text(out_dir / "metrics.json", json.dumps(clean_json(metrics), indent=2))
    write_manifest(out_dir, stage="eval", inputs=held.files, config=cfg,
                   counts={"examples": len(held.examples), "status": metrics["status"]})


def evaluate(cfg: EvalConfig, model: str | None = None, base: str | None = None,
             data: list[str] | str | None = None, out_dir: str | Path = "eval") -> dict[str, Any]:
    """Run the eval and write ``generations.jsonl`` and ``metrics.json`` into ``out_dir``.

    Returns the metrics. ``metrics["status"]`` is "pass", "warn" or "fail"; the
    caller decides whether a failure is an exit code (the CLI) or an exception.
    """
    t_start = time.perf_counter()
    model = model or cfg.model
    base = base or cfg.base
    held = load_heldout(cfg, model, data)
    if cfg.judge is not None and (not base or not cfg.generate):
        raise ValueError("the judge compares base and tuned answers: give a base model and keep generate on")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sides = run_sides(cfg, model, base, held, out_dir)

    # Every top-level key is always present (null or empty when that part is off), so
    # scripts and the report can read metrics.json without guessing.
    metrics: dict[str, Any] = {"model": model, "base": base, "data": held.files,
                               "n_examples": len(held.examples), "loss": None, "probes": {}, "choice": {},
                               "forgetting": None, "judge": None, "reference": None, "tools": None,
                               "general": None, "openings": None, "gates": None, "config": cfg.model_dump(mode="json")}
    status, reasons = "pass", []
    if cfg.loss:
        metrics["loss"] = loss_metrics(sides, out_dir)
    if cfg.generate:
        metrics["probes"] = probe_metrics(cfg, sides, held.examples, out_dir)
        if cfg.reference is not None:
            from .correctness import reference_metrics
            metrics["reference"] = reference_metrics(cfg, sides, held.examples, out_dir)
        if cfg.tools is not None:
            from ..tools.loop import summarize_tool_use
            metrics["tools"] = {"names": cfg.tools.names, "max_steps": cfg.tools.max_steps,
                                **{s: summarize_tool_use(r["answers"]) for s, r in sides.items()}}
    if cfg.openings:
        from .openings import opening_metrics
        metrics["openings"], rows = opening_metrics(cfg.openings, sides, [e.id for e in held.examples])
        write_jsonl(out_dir / "openings_per_example.jsonl", rows)
    if cfg.general is not None:
        from .general import general_metrics
        metrics["general"] = general_metrics(sides)
    if cfg.choice is not None:
        metrics["choice"] = choice_metrics(cfg, sides)
        if "base" in sides:
            metrics["forgetting"], status, reasons = forgetting_gate(cfg, sides)
    if cfg.judge is not None:
        metrics["judge"] = run_judge(cfg, held.examples, sides["base"]["answers"], sides["tuned"]["answers"],
                                     out_dir)

    if "base" in sides and cfg.gates:
        from .gates import evaluate_gates
        metrics["gates"] = evaluate_gates(cfg.gates, metrics)
        failed = [g for g in metrics["gates"]["gates"] if g["status"] == "fail"]
        if failed:
            status = "fail"
            reasons = reasons + [f"gate '{g['name']}' failed: {g['reason']}" for g in failed]

    metrics["timing"] = {s: r["timing"] for s, r in sides.items()}
    metrics["timing"]["total_s"] = time.perf_counter() - t_start
    metrics["status"] = status
    metrics["reasons"] = reasons
    write_metrics(cfg, metrics, held, out_dir)
    return metrics


def run_judge(cfg: EvalConfig, examples, base_answers: list[dict], tuned_answers: list[dict],
              out_dir: Path) -> dict[str, Any]:
    from ..backends import get_backend
    from ..judge import judge_pairwise, judge_single

    j = cfg.judge
    if j.backend != "fake" and not j.model:
        raise ValueError("judge.model is required (the model that judges, e.g. a local folder)")
    if j.verdict == "likelihood":
        from .likelihood_judge import LikelihoodJudge
        backend = LikelihoodJudge(j.model, mode=j.mode, batch_size=j.batch_size)
    else:
        options = {"batch_size": j.batch_size} if j.backend == "transformers" else {}
        backend = get_backend(j.backend, model=j.model, **options)
    n = min(len(examples), j.limit or len(examples))
    questions = [e.context for e in examples[:n]]      # the whole conversation, system prompt included
    base_t = [a["text"] for a in base_answers[:n]]
    tuned_t = [a["text"] for a in tuned_answers[:n]]
    t = time.perf_counter()
    with console.status(f"judging {n} pairs with {j.backend}:{j.model}"):
        if j.mode == "pairwise":
            summary, rows = judge_pairwise(backend, questions, tuned_t, base_t, prompt=j.prompt,
                                           max_new_tokens=j.max_new_tokens, bootstrap=j.bootstrap, seed=j.seed)
        else:
            summary, rows = judge_single(backend, questions, {"base": base_t, "tuned": tuned_t},
                                         prompt=j.prompt, max_new_tokens=j.max_new_tokens,
                                         bootstrap=j.bootstrap, seed=j.seed)
    for r in rows:
        r["id"] = examples[r["index"]].id
    write_jsonl(out_dir / "judgments.jsonl", rows)
    summary.update({"backend": j.backend, "verdict": j.verdict, "judge_model": j.model,
                    "seconds": time.perf_counter() - t})
    if summary.get("unparsed"):
        console.print(f"[yellow][sftflow] judge: {summary['unparsed']} verdict(s) could not be parsed; "
                      f"see {out_dir / 'judgments.jsonl'}[/yellow]")
    return summary
