"""``sftflow generate --engine ray``: the backend fanned out over Ray actors.

The generation methods are unchanged: they ask ``Session.complete`` for completions,
and the session's backend is a ``RayBackend``. It splits each call's requests over a
pool of backend actors and puts the answers back in order, so a method sees exactly
what a local backend would return.

- The response cache stays where it is locally: in OUT_DIR, consulted on the driver
  before anything is sent (``CachedBackend`` wraps this backend), so a rerun asks for
  nothing twice, whichever actor answered the first time.
- An OpenAI-compatible backend's ``concurrency`` is one limit for the whole cluster: every
  request takes a permit from one ``ConcurrencyLimiter`` actor before it is sent and
  returns it when done, however many actors and threads there are.
- Dead letters: every actor's HTTP backend appends to OUT_DIR/dead_letter.jsonl (one line
  per failed request), so the next run retries them first, as locally. On a cluster
  OUT_DIR must be a folder every node sees.
- A local model (``transformers``) is loaded once per actor, on ``gpus_per_actor`` GPUs.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from ..backends import Completion, GenParams
from ..engine import EngineConfig, start_or_join, worker_count
from .config import BackendConfig
from .session import build_backend


class ConcurrencyLimiter:
    """A cluster-wide semaphore (an async Ray actor): at most ``limit`` requests in flight."""

    def __init__(self, limit: int):
        self.sem = asyncio.Semaphore(limit)
        self.in_flight = 0
        self.peak = 0

    async def acquire(self) -> None:
        await self.sem.acquire()
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)

    def release(self) -> None:
        self.in_flight -= 1
        self.sem.release()

    def peak_in_flight(self) -> int:
        return self.peak


class BackendWorker:
    """One backend per actor. HTTP requests go one per thread, each holding a permit."""

    def __init__(self, cfg: BackendConfig, out_dir: str, limiter, threads: int):
        self.cfg = cfg
        self.backend = build_backend(cfg, Path(out_dir))
        self.limiter = limiter
        self.threads = threads

    def identity(self) -> dict[str, Any]:
        describe = self.backend.describe() if hasattr(self.backend, "describe") else {}
        return {"name": self.backend.name, "model": self.backend.model,
                "cache_id": getattr(self.backend, "cache_id", None), "describe": describe}

    def stats(self) -> dict[str, Any]:
        return dict(getattr(self.backend, "stats", {}) or {})

    def _one(self, messages: list[dict], params: GenParams) -> Completion:
        import ray
        ray.get(self.limiter.acquire.remote())
        try:
            return self.backend.generate([messages], params)[0]
        finally:
            self.limiter.release.remote()

    def generate(self, requests: list[list[dict]], params: GenParams) -> list[Completion]:
        if self.limiter is None:            # a local model: the actor's own batches
            return self.backend.generate(requests, params)
        with ThreadPoolExecutor(self.threads) as pool:
            return list(pool.map(lambda m: self._one(m, params), requests))


class RayBackend:
    """The ``Backend`` protocol over a pool of ``BackendWorker`` actors."""

    def __init__(self, cfg: BackendConfig, out_dir: str | Path, engine: EngineConfig):
        import ray
        self._ray = ray
        self._started = start_or_join(engine)
        http = cfg.kind == "openai"
        n = engine.actors or (min(worker_count(engine), cfg.concurrency) if http else worker_count(engine))
        self.limiter = ray.remote(num_cpus=0)(ConcurrencyLimiter).remote(cfg.concurrency) if http else None
        # An HTTP actor waits on the network: it holds no CPU, and threads up to the limit.
        opts = {"num_cpus": 0 if http else engine.cpus_per_actor, "num_gpus": 0 if http else engine.gpus_per_actor}
        worker = ray.remote(**opts)(BackendWorker)
        self.actors = [worker.remote(cfg, str(out_dir), self.limiter, cfg.concurrency) for _ in range(n)]
        ident = ray.get(self.actors[0].identity.remote())
        self.name, self.model = ident["name"], ident["model"]
        if ident["cache_id"] is not None:
            self.cache_id = ident["cache_id"]
        self._describe = {**ident["describe"], "engine": "ray", "actors": n}

    def generate(self, requests: list[list[dict]], params: GenParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        """Requests split into one contiguous slice per actor; answers in request order."""
        if not requests:
            return []
        n = len(self.actors)
        size = -(-len(requests) // n)
        slices = [(s, requests[s:s + size]) for s in range(0, len(requests), size)]
        refs = [self.actors[k].generate.remote(part, params) for k, (_, part) in enumerate(slices)]
        out: list[Completion] = []
        for (start, _), ref in zip(slices, refs):
            for j, c in enumerate(self._ray.get(ref)):
                out.append(c)
                if on_result is not None:
                    on_result(start + j, c)
        return out

    @property
    def stats(self) -> dict[str, Any]:
        """The actors' counters summed (requests, retries, tokens, seconds)."""
        total: dict[str, Any] = {}
        for s in self._ray.get([a.stats.remote() for a in self.actors]):
            for k, v in s.items():
                if isinstance(v, (int, float)):
                    total[k] = total.get(k, 0) + v
        return total

    @property
    def tokens_per_second(self) -> float:
        s = self.stats
        return s.get("completion_tokens", 0) / s["seconds"] if s.get("seconds") else 0.0

    def peak_in_flight(self) -> int | None:
        return self._ray.get(self.limiter.peak_in_flight.remote()) if self.limiter is not None else None

    def describe(self) -> dict[str, Any]:
        return dict(self._describe)

    def close(self) -> None:
        for a in self.actors:
            self._ray.kill(a)
        if self.limiter is not None:
            self._ray.kill(self.limiter)
        if self._started:
            self._ray.shutdown()


def ray_backend(cfg, out_dir: str | Path) -> RayBackend:
    """The backend of a ``GenerateConfig`` on its engine's Ray cluster."""
    return RayBackend(cfg.backend, out_dir, cfg.engine)
