"""Seed tasks in the Self-Instruct format, read with errors that name the line.

One JSON object per line: ``instruction`` (text), ``instances`` (a non-empty list of
``{input, output}`` texts) and ``is_classification`` (true/false); ``id`` and
``name`` are optional.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ..schema import RecordError
from .instruction_checks import Instance


@dataclass
class SeedTask:
    id: str
    instruction: str
    instances: list[Instance]
    is_classification: bool
    name: str = ""
    extra: dict = field(default_factory=dict)


def default_seeds_path() -> Path:
    return Path(str(resources.files("sftflow.generate") / "data" / "seed_tasks.jsonl"))


def _seed_from(rec, path: str, line: int) -> SeedTask:
    def err(msg: str, f: str | None = None):
        return RecordError(msg, path=path, line=line, field=f)
    if not isinstance(rec, dict):
        raise err(f"expected a JSON object, got {type(rec).__name__}")
    for key in ("instruction", "instances", "is_classification"):
        if key not in rec:
            raise err(f"missing field '{key}'", key)
    if not isinstance(rec["instruction"], str) or not rec["instruction"].strip():
        raise err("expected a non-empty string", "instruction")
    if not isinstance(rec["is_classification"], bool):
        raise err(f"expected true or false, got {type(rec['is_classification']).__name__}",
                  "is_classification")
    if not isinstance(rec["instances"], list) or not rec["instances"]:
        raise err("expected a non-empty list of {input, output}", "instances")
    insts = []
    for j, ins in enumerate(rec["instances"]):
        f = f"instances[{j}]"
        if not isinstance(ins, dict):
            raise err(f"expected an object, got {type(ins).__name__}", f)
        for k in ("input", "output"):
            if k not in ins:
                raise err(f"missing field '{k}'", f"{f}.{k}")
            if not isinstance(ins[k], str):
                raise err(f"expected a string, got {type(ins[k]).__name__}", f"{f}.{k}")
        insts.append(Instance(ins["input"], ins["output"]))
    extra = {k: v for k, v in rec.items()
             if k not in ("id", "name", "instruction", "instances", "is_classification")}
    return SeedTask(id=str(rec.get("id") or f"seed_{line}"), name=str(rec.get("name") or ""),
                    instruction=rec["instruction"].strip(), instances=insts,
                    is_classification=rec["is_classification"], extra=extra)


def load_seed_tasks(path: str | Path | None = None) -> list[SeedTask]:
    path = Path(path) if path else default_seeds_path()
    if not path.exists():
        raise RecordError("no such seed file", path=str(path))
    tasks: list[SeedTask] = []
    ids: set[str] = set()
    from ..io import iter_jsonl
    for line_no, rec in iter_jsonl(path):
        task = _seed_from(rec, str(path), line_no)
        if task.id in ids:
            raise RecordError(f"duplicate id {task.id!r}", path=str(path), line=line_no, field="id")
        ids.add(task.id)
        tasks.append(task)
    if not tasks:
        raise RecordError("seed file holds no tasks", path=str(path))
    return tasks
