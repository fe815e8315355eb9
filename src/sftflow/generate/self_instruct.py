"""Self-Instruct (Wang et al., 2023) as published, over any sftflow backend.

1. Bootstrap: each prompt shows 8 instructions, 6 from the human seed tasks and 2
   from those the model already wrote (all 8 human until there are machine ones),
   and asks for more. New candidates pass the filters (length, blacklist, "Write a
   program", leading punctuation or non-ASCII) and must have ROUGE-L <= 0.7 with
   every instruction so far (seed and machine), checked through ``RougeIndex``.
2. Identify classification tasks with a few-shot Yes/No prompt.
3. Generate instances: output-first for classification (a class label, then an
   input for it, so labels do not collapse onto one class), input-first otherwise.
4. Post-process: drop broken instances, drop a task whose instances share an input
   but disagree on the output, keep at most 5 instances per task.

Every record carries its provenance in ``metadata.provenance``; every candidate
that is dropped goes to ``rejected.jsonl`` with the step and the reason. Resuming is
replaying: all randomness is seeded and all answers are cached, so a restarted run
walks the same path from the cache and continues where it stopped.
"""

from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..backends import GenParams
from ..io import Rejected
from ..schema import Example
from .config import GenerateConfig
from .instruction_checks import Instance, InstructionFilter, postprocess_instances
from .prompting import prompt_id, render
from .seeds import SeedTask, default_seeds_path, load_seed_tasks
from .session import Session, build_backend, write_outputs
from .similarity import RougeIndex


def _sha8(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


# --------------------------------------------------------------------------- parsing

_ENUM = re.compile(r"(?m)^\s*\d+\s*[.)]\s*")


def parse_instructions(text: str) -> list[str]:
    """The new tasks in a bootstrap answer: a numbered list (or one task per line)."""
    text = text.strip()
    if not text:
        return []
    parts = _ENUM.split(text)
    items = parts if len(parts) > 1 else text.splitlines()
    out = []
    for it in items:
        it = re.sub(r"^(?:\s*(?:[-*\u2022]\s+|Task\s*\d*\s*:\s*))+", "", it)
        it = re.sub(r"\s+", " ", it).strip()
        if it:
            out.append(it)
    return out


def parse_yes_no(text: str) -> bool | None:
    m = re.match(r"\W*(yes|no)\b", text.strip(), flags=re.IGNORECASE)
    return None if m is None else m.group(1).lower() == "yes"


def parse_input_first(text: str) -> list[Instance]:
    """'Example 1 / Input: ... / Output: ...' blocks; a bare answer is one output."""
    chunks = [c.strip() for c in re.split(r"Example\s?\d+\s?:?", text) if c.strip()]
    out = []
    for c in chunks:
        parts = re.split(r"Output\s*\d*\s*:", c, maxsplit=1)
        if len(parts) == 2:
            inp, outp = parts
            inp = re.sub(r"^\s*Input\s*\d*\s*:", "", inp.strip()).strip()
        else:
            inp, outp = "", c
        out.append(Instance(inp.strip(), outp.strip()))
    return out


def parse_output_first(text: str) -> list[Instance]:
    """'Class label: X' followed by the input written for that label."""
    if "Class label:" not in text:
        return []
    out = []
    for chunk in text.split("Class label:")[1:]:
        fields = chunk.strip().split("\n", 1)
        label = fields[0].strip()
        inp = fields[1].strip() if len(fields) == 2 else ""
        inp = re.sub(r"^\s*Input\s*\d*\s*:", "", inp).strip()
        out.append(Instance(inp, label))
    return out


def task_prompt(instruction: str, inp: str) -> str:
    return f"{instruction}\n\n{inp}" if inp.strip() else instruction


# --------------------------------------------------------------------------- bootstrap

@dataclass
class MachineTask:
    instruction: str
    provenance: dict[str, Any]
    is_classification: bool = False
    id: str = field(default="")

    def __post_init__(self):
        self.id = self.id or f"si-{_sha8(self.instruction)}"


def _reject(rejected: list[Rejected], instruction: str, step: str, reason: str, value: Any,
            provenance: dict[str, Any]) -> None:
    rec = {"id": f"si-{_sha8(instruction)}", "instruction": instruction,
           "metadata": {"source": "self-instruct", "provenance": provenance}}
    rejected.append(Rejected(record=rec, step=step, reason=reason, value=value))


def bootstrap(session: Session, seeds: list[SeedTask], cfg: GenerateConfig,
              rejected: list[Rejected]) -> tuple[list[MachineTask], dict[str, int]]:
    si = cfg.self_instruct
    rng = random.Random(cfg.seed)
    index = RougeIndex(si.rouge_threshold)
    for s in seeds:
        index.add(s.instruction)
    filt = InstructionFilter(si.min_words, si.max_words, tuple(si.blacklist))
    machine: list[MachineTask] = []
    stats = {"rounds": 0, "candidates": 0}
    pid = prompt_id("self_instruct_bootstrap")
    bar = session.progress
    task = bar.add_task("new instructions", total=si.n, speed="") if bar else None
    for rnd in range(si.max_rounds):
        if len(machine) >= si.n:
            break
        stats["rounds"] += 1
        requests, metas, seen = [], [], set()
        for _ in range(si.requests_per_round):
            k_m = min(si.num_machine_instructions, len(machine), si.num_prompt_instructions)
            k_h = min(si.num_prompt_instructions - k_m, len(seeds))
            demos = [(m.id, m.instruction) for m in rng.sample(machine, k_m)]
            demos += [(s.id, s.instruction) for s in rng.sample(seeds, k_h)]
            rng.shuffle(demos)
            listing = "\n".join(f"{i + 1}. {inst}" for i, (_, inst) in enumerate(demos))
            prompt = render("self_instruct_bootstrap", demos=listing, next=len(demos) + 1)
            if prompt in seen:            # same demos drawn twice: one request is enough
                continue
            seen.add(prompt)
            requests.append([{"role": "user", "content": prompt}])
            metas.append({"demo_ids": [d for d, _ in demos],
                          "machine_demos": k_m, "human_demos": k_h})
        params = GenParams(max_new_tokens=si.max_new_tokens, temperature=si.temperature,
                           top_p=si.top_p, seed=cfg.seed * 100_003 + rnd)
        comps = session.complete(requests, params, f"round {rnd + 1}: bootstrap")
        for req_i, (comp, meta) in enumerate(zip(comps, metas)):
            prov = {"step": "bootstrap", "round": rnd + 1, "prompt_id": pid, "request": req_i,
                    **meta, "backend": session.raw.name, "model": session.raw.model,
                    "params": params.to_dict(), "finish_reason": comp.finish_reason}
            if comp.finish_reason == "error":
                _reject(rejected, "", "request", f"request failed: {comp.error}", None, prov)
                continue
            cands = parse_instructions(comp.text)
            if comp.finish_reason == "length" and cands:
                # the last item was cut by max_new_tokens: never trust a half sentence
                _reject(rejected, cands.pop(), "parse", "cut off by max_new_tokens", None, prov)
            for inst in cands:
                stats["candidates"] += 1
                if len(machine) >= si.n:
                    _reject(rejected, inst, "bootstrap", "target number of instructions reached",
                            si.n, prov)
                    continue
                verdicts, fail = filt.verdicts(inst)
                if fail is not None:
                    name, reason, value = fail
                    _reject(rejected, inst, f"filter:{name}", reason, value, {**prov, "filters": verdicts})
                    continue
                novel, score, arg = index.is_novel(inst)
                verdicts["rouge_l"] = round(score, 4)
                verdicts["most_similar"] = index.texts[arg] if arg is not None else None
                if not novel:
                    _reject(rejected, inst, "filter:rouge_l",
                            f"ROUGE-L {score:.3f} > {si.rouge_threshold} with an earlier instruction",
                            round(score, 4), {**prov, "filters": verdicts})
                    continue
                index.add(inst)
                machine.append(MachineTask(inst, {**prov, "filters": verdicts}))
                if bar is not None:
                    tps = getattr(session.raw, "tokens_per_second", 0.0)
                    bar.update(task, completed=len(machine), speed=f"{tps:.1f} tok/s" if tps else "")
    if bar is not None:
        bar.remove_task(task)
    stats["rouge_l_computations"] = index.rouge_calls
    stats["instructions"] = len(machine)
    return machine, stats


# --------------------------------------------------------------------------- classify + instances

def identify_classification(session: Session, tasks: list[MachineTask], cfg: GenerateConfig) -> None:
    params = GenParams(max_new_tokens=4, temperature=0.0, seed=cfg.seed)
    reqs = [[{"role": "user", "content": render("is_classification", instruction=t.instruction)}]
            for t in tasks]
    pid = prompt_id("is_classification")
    for t, c in zip(tasks, session.complete(reqs, params, "classification?")):
        parsed = parse_yes_no(c.text) if c.finish_reason != "error" else None
        # As in the original, anything but a clear "yes" counts as not classification;
        # the raw answer stays in the provenance so the decision can be audited.
        t.is_classification = bool(parsed)
        t.provenance["classification"] = {"prompt_id": pid, "answer": c.text.strip()[:50],
                                          "parsed": parsed, "error": c.error}


def generate_instances(session: Session, tasks: list[MachineTask], cfg: GenerateConfig,
                       rejected: list[Rejected]) -> list[Example]:
    si = cfg.self_instruct
    params = GenParams(max_new_tokens=si.instance_max_new_tokens, temperature=0.0,
                       stop=["Task:"], seed=cfg.seed)
    reqs = []
    for t in tasks:
        name = "instances_output_first" if t.is_classification else "instances_input_first"
        reqs.append([{"role": "user", "content": render(name, instruction=t.instruction)}])
    records: list[Example] = []
    for t, c in zip(tasks, session.complete(reqs, params, "instances")):
        name = "instances_output_first" if t.is_classification else "instances_input_first"
        prov = dict(t.provenance)
        prov["instances"] = {"prompt_id": prompt_id(name), "params": params.to_dict(),
                             "finish_reason": c.finish_reason,
                             "order": "output-first" if t.is_classification else "input-first"}
        if c.finish_reason == "error":
            _reject(rejected, t.instruction, "request", f"request failed: {c.error}", None, prov)
            continue
        parsed = parse_output_first(c.text) if t.is_classification else parse_input_first(c.text)
        if c.finish_reason == "length" and parsed:
            # the last instance ran into max_new_tokens: its output is cut short
            ins = parsed.pop()
            rejected.append(Rejected(record={"id": f"{t.id}-x{_sha8(ins.input + ins.output)}",
                                             "instruction": t.instruction, "input": ins.input,
                                             "output": ins.output,
                                             "metadata": {"source": "self-instruct", "task_id": t.id,
                                                          "provenance": prov}},
                                     step="parse", reason="cut off by max_new_tokens"))
        verdict = postprocess_instances(parsed, si.max_instances, t.instruction)
        for ins, reason in verdict.dropped:
            rec = {"id": f"{t.id}-x{_sha8(ins.input + ins.output)}", "instruction": t.instruction,
                   "input": ins.input, "output": ins.output,
                   "metadata": {"source": "self-instruct", "task_id": t.id, "provenance": prov}}
            rejected.append(Rejected(record=rec, step="postprocess", reason=reason))
        if verdict.task_rejected and not verdict.dropped:
            _reject(rejected, t.instruction, "postprocess", verdict.task_rejected, len(parsed), prov)
        for j, ins in enumerate(verdict.kept):
            meta = {"source": "self-instruct", "task_id": t.id, "instruction": t.instruction,
                    "input": ins.input, "is_classification": t.is_classification,
                    "instance": j, "provenance": prov}
            records.append(Example.single(task_prompt(t.instruction, ins.input), ins.output,
                                          metadata=meta))
    return records


def run_self_instruct(cfg: GenerateConfig, out_dir: str | Path, *, backend=None) -> dict[str, Any]:
    """The whole pipeline; writes records, rejects, dead letters, cache and manifest."""
    out_dir = Path(out_dir)
    seeds_path = cfg.self_instruct.seeds or str(default_seeds_path())
    seeds = load_seed_tasks(seeds_path)
    backend = backend or build_backend(cfg.backend, out_dir)
    rejected: list[Rejected] = []
    with Session(out_dir, backend, show_progress=cfg.show_progress) as session:
        tasks, stats = bootstrap(session, seeds, cfg, rejected)
        identify_classification(session, tasks, cfg)
        records = generate_instances(session, tasks, cfg, rejected)
        stats["classification_tasks"] = sum(t.is_classification for t in tasks)
        stats["tasks_with_records"] = len({r.metadata["task_id"] for r in records})
        stats["seed_tasks"] = len(seeds)
        return write_outputs(session, method="self-instruct", cfg=cfg, records=records,
                             rejected=rejected, inputs=[seeds_path], extra_counts=stats)
