"""The embedded model is disclosed, and the published name never silently means the GGUF copy."""

from __future__ import annotations

import json

import pytest

from sftflow.models import ModelError, describe_model, resolve_model


def test_hub_name_offline_without_real_weights_names_the_alias(monkeypatch, tmp_path):
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-hub-cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="use the alias 'smollm2-135m-instruct'") as e:
        resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct")
    assert "Q4_1" in str(e.value)


def test_hub_name_with_real_weights_in_cache_passes_through(monkeypatch, tmp_path):
    import huggingface_hub.constants as c
    snap = tmp_path / "models--HuggingFaceTB--SmolLM2-135M-Instruct"
    (snap / "snapshots" / "abc").mkdir(parents=True)
    (snap / "refs").mkdir()
    (snap / "refs" / "main").write_text("abc")
    (snap / "snapshots" / "abc" / "config.json").write_text("{}")
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_describe_embedded_and_adapter(tmp_path):
    d = describe_model("smollm2-135m-instruct")
    assert d["source"] == "embedded" and "Q4_1" in d["weights"] and d["origin"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    cached = tmp_path / "cache-copy"
    cached.mkdir()
    (cached / "sftflow_source.json").write_text(json.dumps({"alias": "smollm2-135m-instruct"}))
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(cached)}))
    a = describe_model(adapter)
    assert a["kind"] == "LoRA adapter" and a["base"]["source"] == "embedded"
    assert describe_model("org/other-model")["source"] == "hugging face hub id"
