"""The local backend on a tiny random Llama (real SmolLM2 tokenizer and template)."""

from __future__ import annotations

import pytest

from sftflow.backends import GenParams, get_backend
from sftflow.backends.transformers_backend import TransformersBackend


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return get_backend("transformers", model=tiny_model_dir, batch_size=3, device="cpu")


PROMPTS = ["Hi", "Tell me about budgets in a few words please", "What is compound interest?",
           "A", "Explain diversification to a beginner investor, step by step."]


def chats():
    return [[{"role": "user", "content": p}] for p in PROMPTS]


def test_batched_equals_one_at_a_time_greedy(tiny):
    # Left padding plus the attention mask must make a row's output independent of
    # its batch mates; a right-padded batch would break this.
    batched = tiny.generate(chats(), GenParams(max_new_tokens=6))
    single = [tiny.generate([c], GenParams(max_new_tokens=6))[0] for c in chats()]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.prompt_tokens for c in batched] == [len(tiny.prompt_ids(c)) for c in chats()]
    assert all(c.finish_reason == "length" and c.completion_tokens == 6 for c in batched)
    assert tiny.stats["completion_tokens"] == 60 and tiny.tokens_per_second > 0


def test_sampling_is_seeded(tiny):
    p = GenParams(max_new_tokens=8, temperature=1.0, seed=7)
    a = [c.text for c in tiny.generate(chats(), p)]
    b = [c.text for c in tiny.generate(chats(), p)]
    c = [c.text for c in tiny.generate(chats(), GenParams(max_new_tokens=8, temperature=1.0, seed=8))]
    assert a == b and a != c


def test_stop_string_cuts_text_and_reports_stop(tiny):
    # sampled, so the random model writes varied text; same seed -> same tokens up to the stop
    p = dict(max_new_tokens=12, temperature=1.0, seed=3)
    [full] = tiny.generate(chats()[:1], GenParams(**p))
    assert full.finish_reason == "length"
    k = next(i for i in range(1, len(full.text) - 2) if full.text.index(full.text[i:i + 2]) == i)
    stop = full.text[k:k + 2]
    [cut] = tiny.generate(chats()[:1], GenParams(**p, stop=[stop]))
    assert cut.finish_reason == "stop"
    assert cut.text == full.text[:k]


def test_finish_reason_rules(tiny):
    eos = tiny.tok.eos_token_id
    hello = tiny.tok.encode("hello world", add_special_tokens=False)
    p = GenParams(max_new_tokens=len(hello) + 2)
    assert tiny._finish(hello + [eos, eos], p) == ("hello world", "stop", len(hello) + 1)
    p = GenParams(max_new_tokens=len(hello))
    assert tiny._finish(list(hello), p) == ("hello world", "length", len(hello))
    assert tiny._finish(list(hello), GenParams(max_new_tokens=len(hello), stop=[" wor"])) == \
        ("hello", "stop", len(hello))
    im_end = tiny.tok.convert_tokens_to_ids("<|im_end|>")
    assert im_end in tiny.stop_ids


def test_logprobs_per_generated_token(tiny):
    [c] = tiny.generate(chats()[:1], GenParams(max_new_tokens=5, logprobs=True))
    assert len(c.logprobs) == 5 and all(lp <= 0 for lp in c.logprobs)


def test_accepts_a_loaded_model(tiny):
    b = TransformersBackend(model="mine", model_obj=tiny.lm, tokenizer=tiny.tok, batch_size=2, device="cpu")
    assert b.model == "mine"
    assert [c.text for c in b.generate(chats()[:2], GenParams(max_new_tokens=4))] == \
        [c.text for c in tiny.generate(chats()[:2], GenParams(max_new_tokens=4))]


def test_unreadable_weights_fail_loudly_instead_of_an_unhashed_cache_key(tiny_model_dir, monkeypatch):
    import sftflow.models as models
    from sftflow.config import ConfigError

    def unreadable(name=None):
        raise PermissionError(13, "Permission denied", f"{tiny_model_dir}/model.safetensors")
    monkeypatch.setattr(models, "weights_hash", unreadable)
    with pytest.raises(ConfigError, match=r"cannot read its weights to hash them \(.*model.safetensors\): "
                                          r"Permission denied"):
        TransformersBackend(model=tiny_model_dir, device="cpu")


def test_cache_id_carries_the_weights_hash(tiny_model_dir):
    from sftflow.models import weights_hash
    backend = TransformersBackend(model=tiny_model_dir, device="cpu")
    assert backend.cache_id == f"{tiny_model_dir}@{weights_hash(tiny_model_dir)}"
