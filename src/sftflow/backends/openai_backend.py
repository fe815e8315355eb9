"""Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

Requests run concurrently (asyncio + httpx, at most ``concurrency`` in flight). A
request that fails in a way that may pass (429, 5xx, timeouts, dropped connections,
a body cut short, malformed JSON, an empty choice list) is retried with exponential
backoff and jitter; a ``Retry-After`` (or ``retry-after-ms``) header from the server
wins over our own schedule. After ``max_retries`` retries, or at once for an error
that cannot pass (400, 401, 404, ...), the request goes to the dead-letter file with
its last error and comes back as a ``Completion`` with ``finish_reason="error"``:
the run finishes, and a rerun (with the response cache) asks only for what failed.

The API key is read from an environment variable when the client is built and sent
only in the ``Authorization`` header; it is scrubbed from every error text, and the
backend's ``repr`` and ``describe()`` name the variable, never the value.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import threading
import time
from pathlib import Path
from typing import Any, Callable

import httpx

from .base import Completion, GenParams

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    pass


def parse_retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait from ``retry-after-ms``, or ``Retry-After`` (seconds or an HTTP date)."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    ra = headers.get("retry-after")
    if not ra:
        return None
    try:
        return max(0.0, float(ra))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(ra)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff_delay(attempt: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random.

    attempt 0 -> [base/2, base], 1 -> [base, 2*base], ... capped at ``cap``. The
    fixed half guarantees a real pause; the random half spreads a burst of clients
    that all failed at the same moment, so they do not retry in lockstep.
    """
    d = min(cap, base * (2 ** attempt))
    return d / 2 + rng.uniform(0, d / 2)


class OpenAIBackend:
    name = "openai"

    def __init__(self, model: str | None = None, *, base_url: str = "http://127.0.0.1:8000/v1",
                 api_key_env: str = "OPENAI_API_KEY", concurrency: int = 8, max_retries: int = 5,
                 timeout: float = 120.0, backoff_base: float = 1.0, backoff_max: float = 60.0,
                 max_retry_after: float = 300.0, dead_letter_path: str | Path | None = None,
                 extra_body: dict[str, Any] | None = None, seed: int = 0):
        if not model:
            raise ValueError("the openai backend needs a model name (--model), as the server knows it")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.model = model
        self.base_url = base_url.rstrip("/")
        self.api_key_env = api_key_env
        self._api_key = os.environ.get(api_key_env) or None
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_retry_after = max_retry_after
        self.dead_letter_path = Path(dead_letter_path) if dead_letter_path else None
        self.extra_body = dict(extra_body or {})
        self._rng = random.Random(seed)
        self._dl_lock = threading.Lock()
        self.stats = {"requests": 0, "retries": 0, "failures": 0, "prompt_tokens": 0,
                      "completion_tokens": 0, "seconds": 0.0, "errors_by_kind": {}}

    def __repr__(self) -> str:
        return (f"OpenAIBackend(model={self.model!r}, base_url={self.base_url!r}, "
                f"api_key_env={self.api_key_env!r}, concurrency={self.concurrency})")

    def describe(self) -> dict[str, Any]:
        """What may go into manifests: no secret, only where it came from."""
        return {"backend": self.name, "model": self.model, "base_url": self.base_url,
                "api_key_env": self.api_key_env, "api_key_set": self._api_key is not None,
                "concurrency": self.concurrency, "max_retries": self.max_retries,
                "timeout": self.timeout}

    @property
    def tokens_per_second(self) -> float:
        s = self.stats["seconds"]
        return self.stats["completion_tokens"] / s if s > 0 else 0.0

    def _scrub(self, text: str) -> str:
        if self._api_key:
            text = text.replace(self._api_key, "***")
        return text

    # ------------------------------------------------------------------ one request

    def _body(self, messages: list[dict[str, str]], params: GenParams) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model, "messages": messages,
                                "max_tokens": params.max_new_tokens,
                                "temperature": params.temperature, "top_p": params.top_p,
                                "seed": params.seed}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.logprobs:
            body["logprobs"] = True
        body.update(self.extra_body)
        return body

    def _parse(self, resp: httpx.Response) -> Completion:
        if resp.status_code in RETRY_STATUS:
            raise RetryableError(f"HTTP {resp.status_code}: {resp.text[:200]}",
                                 parse_retry_after(resp.headers))
        if resp.status_code >= 400:
            raise PermanentError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = resp.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RetryableError(f"malformed JSON body: {e}") from None
        choices = data.get("choices") if isinstance(data, dict) else None
        if not choices:
            raise RetryableError("response has no choices")
        ch = choices[0]
        msg = ch.get("message") or {}
        text = msg.get("content")
        if not isinstance(text, str):
            raise RetryableError("choice has no message content")
        reason = ch.get("finish_reason") or "stop"
        if reason in ("eos", "stop_sequence", "end_turn"):
            reason = "stop"
        usage = data.get("usage") or {}
        logprobs = None
        lp = ch.get("logprobs")
        if isinstance(lp, dict) and isinstance(lp.get("content"), list):
            logprobs = [float(t["logprob"]) for t in lp["content"] if "logprob" in t]
        return Completion(text=text, finish_reason=reason,
                          completion_tokens=int(usage.get("completion_tokens") or 0),
                          prompt_tokens=int(usage.get("prompt_tokens") or 0), logprobs=logprobs)

    def _count_error(self, kind: str) -> None:
        by = self.stats["errors_by_kind"]
        by[kind] = by.get(kind, 0) + 1

    async def _one(self, slots: "asyncio.Queue[httpx.AsyncClient]",
                   messages: list[dict[str, str]], params: GenParams) -> Completion:
        body = self._body(messages, params)
        last_error = ""
        attempt = 0
        while True:
            retry_after = None
            client = await slots.get()          # a free connection = a concurrency slot
            try:
                self.stats["requests"] += 1
                try:
                    resp = await client.post(f"{self.base_url}/chat/completions", json=body)
                    return self._parse(resp)
                except PermanentError as e:
                    self._count_error("permanent")
                    return self._dead_letter(messages, params, self._scrub(str(e)), attempt + 1)
                except RetryableError as e:
                    self._count_error(str(e).split(":")[0])
                    last_error, retry_after = str(e), e.retry_after
                except httpx.TimeoutException as e:
                    self._count_error("timeout")
                    last_error = f"timeout: {type(e).__name__}"
                except httpx.TransportError as e:   # connection reset, refused, body cut short
                    self._count_error(type(e).__name__)
                    last_error = f"{type(e).__name__}: {e}"
            finally:
                slots.put_nowait(client)
            if attempt >= self.max_retries:
                return self._dead_letter(messages, params, self._scrub(last_error), attempt + 1)
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)
            if retry_after is not None:
                delay = min(retry_after, self.max_retry_after)
            attempt += 1
            self.stats["retries"] += 1
            await asyncio.sleep(delay)      # slot given back: a waiting retry holds no connection

    def _dead_letter(self, messages, params: GenParams, error: str, attempts: int) -> Completion:
        self.stats["failures"] += 1
        if self.dead_letter_path is not None:
            row = {"request": {"backend": self.name, "model": self.model, "base_url": self.base_url,
                               "messages": messages, "params": params.to_dict()},
                   "error": error, "attempts": attempts, "time": time.time()}
            with self._dl_lock:
                self.dead_letter_path.parent.mkdir(parents=True, exist_ok=True)
                with open(self.dead_letter_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        return Completion(text="", finish_reason="error", error=error)

    # ------------------------------------------------------------------ many requests

    async def agenerate(self, requests: list[list[dict[str, str]]], params: GenParams,
                        on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        headers = {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}
        # One single-connection client per slot rather than one client with a pool of
        # `concurrency` connections: httpcore's pool scans all its connections for every
        # request, which at 64 connections costs more CPU than the requests themselves.
        ssl_ctx = httpx.create_ssl_context()
        clients = [httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(self.timeout), verify=ssl_ctx,
                                     limits=httpx.Limits(max_connections=1, max_keepalive_connections=1))
                   for _ in range(self.concurrency)]
        slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for c in clients:
            slots.put_nowait(c)
        t0 = time.perf_counter()
        try:
            async def run(i: int, msgs):
                c = await self._one(slots, msgs, params)
                self.stats["completion_tokens"] += c.completion_tokens
                self.stats["prompt_tokens"] += c.prompt_tokens
                if on_result:
                    on_result(i, c)
                return c
            out = await asyncio.gather(*(run(i, m) for i, m in enumerate(requests)))
        finally:
            for c in clients:
                await c.aclose()
        self.stats["seconds"] += time.perf_counter() - t0
        return list(out)

    def generate(self, requests: list[list[dict[str, str]]], params: GenParams,
                 on_result: Callable[[int, Completion], None] | None = None) -> list[Completion]:
        if not requests:
            return []
        coro = self.agenerate(requests, params, on_result)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(coro)
        # Called from inside a running loop (a notebook): run ours on a worker thread.
        result: list[list[Completion]] = []
        t = threading.Thread(target=lambda: result.append(asyncio.run(coro)))
        t.start()
        t.join()
        return result[0]
