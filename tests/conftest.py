"""Shared fixtures: the real SmolLM2 tokenizer and a tiny random model built with it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip("../shared/data is not present")
    return SHARED


@pytest.fixture(scope="session")
def smol_path() -> str:
    from sftflow.models import resolve_model
    return resolve_model("smollm2-135m-instruct")


@pytest.fixture(scope="session")
def smol_tokenizer(smol_path):
    from sftflow.models import load_tokenizer
    return load_tokenizer(smol_path)


def build_tiny_model(out: Path, tokenizer, *, layers: int = 2, hidden: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=hidden * 2,
                      num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                      max_position_embeddings=1024, tie_word_embeddings=True,
                      bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                      pad_token_id=tokenizer.pad_token_id)
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, smol_tokenizer) -> str:
    return str(build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), smol_tokenizer))


@pytest.fixture(scope="session")
def sharp_model_dir(tmp_path_factory, smol_tokenizer) -> str:
    """The tiny random Llama with wide weights (std 0.3), saved by path: its next-token
    probabilities spread over orders of magnitude, where the default init's sit near
    1/vocabulary, so a threshold on them splits records."""
    import torch

    from sftflow.models import load_model
    out = build_tiny_model(tmp_path_factory.mktemp("sharp-llama"), smol_tokenizer, seed=3)
    model = load_model(str(out))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" not in name:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    model.save_pretrained(out)
    return str(out)


@pytest.fixture(scope="module")
def cluster():
    """A 2-CPU Ray cluster on this machine for one test module, stopped after it.

    Lives here, not in tests/integration/conftest.py: a second conftest module would shadow
    this one for the tests that import `build_tiny_model` from `conftest`."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()
