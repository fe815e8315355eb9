"""manifest.json: what a stage read (with sha256), its resolved config, versions and counts."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterable

from .atomic import atomic_write_text
from .redact import scrub_obj
from .writers import _jsonable


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
    # The command line and the config may carry a credential (a key in --base-url): scrubbed.
    text = json.dumps(scrub_obj(json.loads(json.dumps(manifest, default=_jsonable))), indent=2)
    atomic_write_text(path, text + "\n")
    return path
