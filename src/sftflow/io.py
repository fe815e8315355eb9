"""Readers and writers at the edge of the pipeline.

Every supported input format is converted to ``Example`` here and nowhere else:
Alpaca (instruction/input/output), ShareGPT (conversations: from/value), OpenAI
``messages``, and ``prompt``/``completion``. Containers: JSONL, JSON (a list),
Parquet, CSV, and Hugging Face ``datasets`` folders saved with ``save_to_disk``.

A bad record stops the read with an error naming the file, the line (or row) and the
field. With ``skip_invalid=True`` it is kept aside with its reason instead, so the
caller can write it to a rejects file: nothing is dropped silently.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

from .schema import Example, RecordError, validate_messages

FORMATS = ("auto", "sftflow", "messages", "sharegpt", "alpaca", "prompt_completion")

# End-of-text markers that some datasets bake into completions (T0 ends every
# completion with a literal "<|endoftext|>"). They are the *source* model's stop
# token, not text: the chat template adds the right one for the model we train.
EOS_LITERALS = ("<|endoftext|>", "</s>", "<|im_end|>", "<|eot_id|>", "<eos>", "<|end|>")

SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "bing": "assistant", "bard": "assistant",
                  "model": "assistant", "system": "system"}


@dataclass
class Rejected:
    """A record that did not make it, with the step that stopped it and why."""
    record: dict[str, Any]
    step: str
    reason: str
    value: Any = None
    source: str | None = None
    line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.record)
        d.update({"step": self.step, "reason": self.reason, "value": _jsonable(self.value)})
        if self.source is not None:
            d["source_file"] = self.source
        if self.line is not None:
            d["source_line"] = self.line
        return d


@dataclass
class ReadResult:
    examples: list[Example] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    format: str = "auto"


# --------------------------------------------------------------------------- detection

def detect_format(rec: dict[str, Any]) -> str:
    if "messages" in rec:
        return "sftflow" if "metadata" in rec or "id" in rec else "messages"
    if "conversations" in rec:
        return "sharegpt"
    # One identifying key is enough: a record with "instruction" but no "output" is a
    # broken Alpaca record, and saying so is more useful than "unknown format".
    if "instruction" in rec:
        return "alpaca"
    if "prompt" in rec or "completion" in rec:
        return "prompt_completion"
    raise RecordError("cannot tell the format from the keys "
                      f"{sorted(rec)[:8]}; expected messages, conversations, "
                      "instruction/output or prompt/completion (or pass --format)")


def _strip_eos(text: str) -> str:
    text = text.rstrip()
    changed = True
    while changed:
        changed = False
        for lit in EOS_LITERALS:
            if text.endswith(lit):
                text = text[: -len(lit)].rstrip()
                changed = True
    return text


def _need_str(rec: dict[str, Any], key: str, *, optional: bool = False) -> str:
    if key not in rec or rec[key] is None:
        if optional:
            return ""
        raise RecordError(f"missing field '{key}'", field=key)
    v = rec[key]
    if isinstance(v, float) and math.isnan(v) and optional:  # CSV/Parquet empty cells
        return ""
    if not isinstance(v, str):
        raise RecordError(f"expected a string, got {type(v).__name__}", field=key)
    return v


def _loads_if_json(v: Any) -> Any:
    # CSV stores nested lists as JSON text.
    if isinstance(v, str) and v[:1] in "[{":
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise RecordError(f"not valid JSON: {e.msg}") from None
    if hasattr(v, "tolist"):  # numpy arrays from Parquet
        return v.tolist()
    return v


def record_to_example(rec: dict[str, Any], fmt: str) -> Example:
    """Convert one raw record of a known format to an Example (raises RecordError)."""
    if not isinstance(rec, dict):
        raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
    meta = dict(_loads_if_json(rec.get("metadata")) or {}) if fmt == "sftflow" else {}
    if fmt in ("sftflow", "messages"):
        if "messages" not in rec:
            raise RecordError("missing field 'messages'", field="messages")
        msgs = _loads_if_json(rec["messages"])
        msgs = [dict(m) if isinstance(m, dict) else m for m in msgs] if isinstance(msgs, list) else msgs
        msgs = validate_messages(msgs)
        return Example(messages=msgs, metadata=meta, id=str(rec.get("id") or "") if fmt == "sftflow" else "")
    if fmt == "sharegpt":
        conv = _loads_if_json(rec.get("conversations"))
        if conv is None:
            raise RecordError("missing field 'conversations'", field="conversations")
        if not isinstance(conv, list):
            raise RecordError(f"expected a list, got {type(conv).__name__}", field="conversations")
        msgs = []
        if isinstance(rec.get("system"), str) and rec["system"]:
            msgs.append({"role": "system", "content": rec["system"]})
        for i, turn in enumerate(conv):
            f = f"conversations[{i}]"
            if not isinstance(turn, dict):
                raise RecordError(f"expected an object, got {type(turn).__name__}", field=f)
            if "from" not in turn:
                raise RecordError("missing 'from'", field=f"{f}.from")
            if "value" not in turn:
                raise RecordError("missing 'value'", field=f"{f}.value")
            role = SHAREGPT_ROLES.get(str(turn["from"]).lower())
            if role is None:
                raise RecordError(f"unknown role {turn['from']!r} (expected human, gpt or system)",
                                  field=f"{f}.from")
            if not isinstance(turn["value"], str):
                raise RecordError(f"expected a string, got {type(turn['value']).__name__}",
                                  field=f"{f}.value")
            msgs.append({"role": role, "content": turn["value"]})
        return Example(messages=validate_messages(msgs, field_name="conversations"))
    if fmt == "alpaca":
        instruction = _need_str(rec, "instruction")
        inp = _need_str(rec, "input", optional=True)
        output = _need_str(rec, "output")
        prompt = f"{instruction}\n\n{inp}" if inp.strip() else instruction
        msgs = []
        if isinstance(rec.get("system"), str) and rec["system"]:
            msgs.append({"role": "system", "content": rec["system"]})
        msgs += [{"role": "user", "content": prompt}, {"role": "assistant", "content": output}]
        return Example(messages=msgs)
    if fmt == "prompt_completion":
        p, c = _loads_if_json(rec.get("prompt")), _loads_if_json(rec.get("completion"))
        if p is None:
            raise RecordError("missing field 'prompt'", field="prompt")
        if c is None:
            raise RecordError("missing field 'completion'", field="completion")
        if isinstance(p, list) and isinstance(c, list):  # conversational prompt/completion
            return Example(messages=validate_messages(list(p) + list(c), field_name="prompt+completion"))
        if not isinstance(p, str):
            raise RecordError(f"expected a string, got {type(p).__name__}", field="prompt")
        if not isinstance(c, str):
            raise RecordError(f"expected a string, got {type(c).__name__}", field="completion")
        return Example(messages=[{"role": "user", "content": p.strip()},
                                 {"role": "assistant", "content": _strip_eos(c).strip()}])
    raise RecordError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")


# --------------------------------------------------------------------------- containers

def _iter_raw(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    """Yield (line_or_row, record, parse_error) from any supported container."""
    if path.is_dir():
        try:
            import datasets
            ds = datasets.load_from_disk(str(path))
        except Exception as e:  # noqa: BLE001 - re-raised with the path
            raise RecordError(f"not a readable datasets folder: {e}", path=str(path)) from None
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise RecordError(f"DatasetDict has splits {list(ds)}, no 'train'", path=str(path))
            ds = ds["train"]
        for i, rec in enumerate(ds):
            yield i, rec, None
        return
    suffix = "".join(path.suffixes[-1:]).lower()
    if suffix in (".jsonl", ".ndjson"):
        with open(path, "rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    yield n, {"raw_bytes": raw[:200].hex()}, f"not valid UTF-8 ({e.reason} at byte {e.start})"
                    continue
                if not text.strip():
                    continue
                try:
                    yield n, json.loads(text), None
                except json.JSONDecodeError as e:
                    yield n, {"raw": text[:2000]}, f"invalid JSON: {e.msg} (column {e.colno})"
    elif suffix == ".json":
        try:
            data = json.loads(path.read_text("utf-8"))
        except UnicodeDecodeError as e:
            raise RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=str(path)) from None
        except json.JSONDecodeError as e:
            raise RecordError(f"invalid JSON: {e.msg}", path=str(path), line=e.lineno) from None
        if isinstance(data, dict):
            # {"data": [...]} style wrappers are common; accept exactly one list value.
            lists = [v for v in data.values() if isinstance(v, list)]
            if len(lists) != 1:
                raise RecordError("expected a JSON list of records", path=str(path))
            data = lists[0]
        if not isinstance(data, list):
            raise RecordError(f"expected a JSON list of records, got {type(data).__name__}", path=str(path))
        for i, rec in enumerate(data):
            yield i, rec, None
    elif suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            table = pq.read_table(path)
        except Exception as e:  # noqa: BLE001
            raise RecordError(f"not a readable Parquet file: {e}", path=str(path)) from None
        for i, rec in enumerate(table.to_pylist()):
            yield i, rec, None
    elif suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            # Row numbers count the header as row 1, as a spreadsheet shows them.
            for i, rec in enumerate(reader, start=2):
                yield i, {k: v for k, v in rec.items() if k is not None}, None
    else:
        raise RecordError(f"unsupported file type {suffix or '(none)'}; expected .jsonl, .json, "
                          ".parquet, .csv or a datasets folder", path=str(path))


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL side file (seeds,
    labels, answers); a missing file or a bad line raises naming the file and line."""
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file", path=str(path))
    with open(path, "rb") as f:
        for n, raw in enumerate(f, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise RecordError(f"not valid UTF-8 ({e.reason} at byte {e.start})", path=str(path),
                                  line=n) from None
            if not text.strip():
                continue
            try:
                yield n, json.loads(text)
            except json.JSONDecodeError as e:
                raise RecordError(f"invalid JSON: {e.msg} (column {e.colno})", path=str(path), line=n) from None


def _where(path: Path) -> str:
    s = path.suffix.lower()
    return "line" if s in (".jsonl", ".ndjson") or s == ".csv" else "row"


def iter_examples(path: str | Path, fmt: str = "auto", *, skip_invalid: bool = False,
                  rejected: list[Rejected] | None = None) -> Iterator[Example]:
    path = Path(path)
    if not path.exists():
        raise RecordError("no such file or folder", path=str(path))
    if fmt not in FORMATS:
        raise RecordError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
    kind = _where(path)
    chosen = None if fmt == "auto" else fmt
    seen_any = False
    for n, rec, parse_error in _iter_raw(path):
        seen_any = True
        try:
            if parse_error:
                raise RecordError(parse_error)
            if not isinstance(rec, dict):
                raise RecordError(f"expected a JSON object, got {type(rec).__name__}")
            if chosen is None:
                chosen = detect_format(rec)
            ex = record_to_example(rec, chosen)
        except RecordError as e:
            err = RecordError(e.reason, path=str(path), field=e.field)
            loc = f"{path}: {kind} {n}" + (f": field '{e.field}'" if e.field else "")
            msg = f"{loc}: {e.reason}"
            if not skip_invalid:
                err.line = n
                err.args = (msg,)
                raise err from None
            if rejected is not None:
                rejected.append(Rejected(record={"raw": rec}, step="read", reason=msg,
                                         source=str(path), line=n))
            continue
        ex.metadata.setdefault("_source", path.stem)
        yield ex
    if not seen_any:
        raise RecordError("file is empty (no records)", path=str(path))


def read_examples(paths: str | Path | Iterable[str | Path], fmt: str = "auto", *,
                  skip_invalid: bool = False) -> ReadResult:
    """Read one or more files into Examples. Rejected records are returned, not lost."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    result = ReadResult(format=fmt)
    for p in paths:
        result.examples.extend(iter_examples(p, fmt, skip_invalid=skip_invalid,
                                             rejected=result.rejected))
    return result


def load_examples(paths, fmt: str = "auto") -> list[Example]:
    """Strict read: the first bad record raises."""
    return read_examples(paths, fmt).examples


# --------------------------------------------------------------------------- writers

def _jsonable(v: Any) -> Any:
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return str(v)
    return v


def write_jsonl(path: str | Path, rows: Iterable[Any]) -> int:
    """Write Examples, Rejected or plain dicts as JSONL; returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    # Per-process temporary name: two processes writing the same output (ranks of a
    # distributed launch, a rerun beside a live run) each rename a complete file.
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            d = r.to_dict() if hasattr(r, "to_dict") else r
            f.write(json.dumps(d, ensure_ascii=False, default=_jsonable) + "\n")
            n += 1
    tmp.replace(path)  # atomic: a killed run never leaves a half-written output
    return n


def write_examples(path: str | Path, examples: Iterable[Example]) -> int:
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        rows = [{"id": e.id, "messages": e.messages, "metadata": json.dumps(e.metadata, default=_jsonable)}
                for e in examples]
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), path)
        return len(rows)
    return write_jsonl(path, examples)


def write_rejected(path: str | Path, rejected: Iterable[Rejected]) -> int:
    return write_jsonl(path, rejected)


# --------------------------------------------------------------------------- manifests

def sha256_file(path: str | Path) -> str:
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file():
                h.update(str(p.relative_to(path)).encode())
                h.update(sha256_file(p).encode())
        return h.hexdigest()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def package_versions(names: Iterable[str] = ("sftflow", "torch", "transformers", "peft", "datasets",
                                               "accelerate", "datasketch", "rensa", "scikit-learn",
                                               "sentence-transformers")) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for n in names:
        try:
            out[n] = importlib_metadata.version(n)
        except importlib_metadata.PackageNotFoundError:
            pass
    return out


def write_manifest(out_dir: str | Path, *, stage: str, inputs: Iterable[str | Path] = (),
                   config: Any = None, counts: dict[str, Any] | None = None,
                   extra: dict[str, Any] | None = None) -> Path:
    """manifest.json: inputs with sha256, resolved config, package versions, counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if hasattr(config, "model_dump"):
        config = config.model_dump(mode="json")
    manifest = {
        "stage": stage,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": sys.argv,
        "inputs": [{"path": str(p), "sha256": sha256_file(p)} for p in inputs if Path(p).exists()],
        "config": config,
        "versions": package_versions(),
        "counts": counts or {},
    }
    if extra:
        manifest.update(extra)
    path = out_dir / "manifest.json"
    path.write_text(json.dumps(manifest, indent=2, default=_jsonable) + "\n")
    return path
