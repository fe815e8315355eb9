"""Generation over many prompts keeps a bounded number of live tasks, whatever the count."""

from __future__ import annotations

import asyncio
import tracemalloc

from sftflow.backends import Completion, GenParams
from sftflow.backends.openai_backend import OpenAIBackend


def counting_backend(monkeypatch, concurrency=4, count_tasks=True):
    peak = {"tasks": 0, "in_flight": 0, "live": 0}

    async def fake_one(self, slots, messages, params):
        if count_tasks:        # all_tasks() is O(tasks): only where the count is the point
            peak["tasks"] = max(peak["tasks"], len(asyncio.all_tasks()))
        client = await slots.get()                 # the same slot discipline as a real request
        try:
            peak["live"] += 1
            peak["in_flight"] = max(peak["in_flight"], peak["live"])
            await asyncio.sleep(0)
            peak["live"] -= 1
        finally:
            slots.put_nowait(client)
        return Completion(text="ok " + messages[-1]["content"])
    monkeypatch.setattr(OpenAIBackend, "_one", fake_one)
    return OpenAIBackend("m", base_url="http://127.0.0.1:9/v1", concurrency=concurrency), peak


def test_live_tasks_are_bounded_by_concurrency_not_by_the_prompt_count(monkeypatch):
    b, peak = counting_backend(monkeypatch)
    n = 5000
    out = b.generate([[{"role": "user", "content": str(i)}] for i in range(n)], GenParams())
    assert [c.text for c in out] == [f"ok {i}" for i in range(n)]     # order kept
    assert peak["in_flight"] <= 4
    assert peak["tasks"] <= 2 * 4 + 1, peak                          # workers + the main task


def test_memory_per_prompt_is_the_result_only(monkeypatch):
    b, _ = counting_backend(monkeypatch, concurrency=8, count_tasks=False)
    reqs = [[{"role": "user", "content": str(i)}] for i in range(20000)]
    tracemalloc.start()
    b.generate(reqs, GenParams())
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    # a Completion and its list slot cost ~0.5 KB; a task + coroutine per prompt would add ~2 KB
    assert peak / len(reqs) < 1000, f"{peak / len(reqs):.0f} bytes per prompt"
