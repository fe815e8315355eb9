"""Compute, tokens and API use are recorded; prices turn them into the run's cost."""

from __future__ import annotations

import json
import time

import pytest

from sftflow.backends import FakeBackend, GenParams
from sftflow.costs import CostSection, Ledger, MeteredBackend, price


def test_stage_clock_measures_wall_and_cpu(tmp_path):
    led = Ledger()
    with led.stage("busy"):
        t = time.perf_counter()
        while time.perf_counter() - t < 0.05:
            pass
    with led.stage("idle"):
        time.sleep(0.05)
    busy, idle = led.stages
    assert busy.wall_s >= 0.05 and busy.cpu_s >= 0.03
    assert idle.wall_s >= 0.05 and idle.cpu_s < 0.03
    assert busy.device in ("cpu",) or busy.device.startswith("cuda")
    s = led.write(tmp_path)
    assert json.loads((tmp_path / "costs.json").read_text())["total"]["wall_s"] == s["total"]["wall_s"]
    assert s["price"] is None


def test_metered_backend_counts_requests_and_tokens():
    m = MeteredBackend(FakeBackend(lambda msgs: "one two three"))
    m.generate([[{"role": "user", "content": "a"}]] * 4, GenParams())
    assert m.usage == {"requests": 4, "prompt_tokens": 0, "completion_tokens": 12}
    led = Ledger()
    led.add_api(m)
    led.add_api(m)
    assert led.api["fake:fake-model"]["completion_tokens"] == 24


def test_price_adds_each_line():
    summary = {"stages": [{"wall_s": 3600, "gpu_s": 3600}, {"wall_s": 1800, "gpu_s": 0}],
               "total": {"gpu_s": 3600}, "api": {"x": {"prompt_tokens": 2_000_000, "completion_tokens": 500_000}}}
    p = price(summary, CostSection(gpu_hour=1.1, cpu_hour=0.2, input_per_mtok=3, output_per_mtok=15))
    assert p["lines"]["gpu"]["cost"] == pytest.approx(1.1)
    assert p["lines"]["cpu"]["cost"] == pytest.approx(0.1)
    assert p["lines"]["api_input"]["cost"] == pytest.approx(6) and p["lines"]["api_output"]["cost"] == pytest.approx(7.5)
    assert p["total"] == pytest.approx(14.7) and p["missing_prices"] == []
    assert price(summary, CostSection(gpu_hour=1.0))["missing_prices"] == ["cpu_hour", "input_per_mtok",
                                                                          "output_per_mtok"]


def test_training_tokens_count_the_passes():
    led = Ledger()
    led.add_training({"train_examples": 100, "steps": 25, "total_tokens": 10_000, "supervised_tokens": 4_000},
                     batch_size=8)
    assert led.tokens["trained"]["passes"] == 2.0 and led.tokens["trained"]["tokens_processed"] == 20_000
