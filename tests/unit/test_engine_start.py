"""How sftflow connects to Ray: a cluster it starts keeps small task returns out of the driver."""

from __future__ import annotations

import sftflow.engine as engine
from sftflow.engine import EngineConfig, start_or_join


class FakeRay:
    def __init__(self, initialized=False):
        self.calls, self.initialized = [], initialized

    def is_initialized(self):
        return self.initialized

    def init(self, **kw):
        self.calls.append(kw)


def test_a_started_cluster_sends_returns_over_1kb_to_the_object_store(monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(engine, "_import_ray", lambda: fake)
    assert start_or_join(EngineConfig(kind="ray", num_cpus=2)) is True
    (kw,) = fake.calls
    assert kw["num_cpus"] == 2 and kw["_system_config"] == {"max_direct_call_object_size": 1024}


def test_a_joined_cluster_keeps_its_own_settings_and_a_connected_one_is_used_as_is(monkeypatch):
    fake = FakeRay()
    monkeypatch.setattr(engine, "_import_ray", lambda: fake)
    assert start_or_join(EngineConfig(kind="ray", address="auto")) is True
    assert fake.calls == [{"address": "auto", "log_to_driver": False}]
    connected = FakeRay(initialized=True)
    monkeypatch.setattr(engine, "_import_ray", lambda: connected)
    assert start_or_join(EngineConfig(kind="ray")) is False and connected.calls == []
