"""Any OpenAI-compatible chat endpoint: vLLM, llama.cpp server, Ollama, hosted APIs.

Requests run concurrently (asyncio + httpx, at most ``concurrency`` in flight). A
request that fails in a way that may pass (429, any 5xx, timeouts, dropped
connections, a body cut short, a 200 reply that is not JSON or not shaped like a chat
completion) is retried with exponential backoff and jitter; a longer ``Retry-After``
(or ``retry-after-ms``) from the server wins over our own schedule, a shorter one
(``0``) does not shorten it below the backoff's fixed half. Each attempt has a
deadline for the whole reply besides the read timeout, so a server trickling bytes
cannot hold a slot for ever; any other error in one request dead-letters that
request and never aborts the batch. After ``max_retries`` retries, or at once for an error
that cannot pass (400, 401, 404, ...), the request goes to the dead-letter file with
its last error and comes back as a ``Completion`` with ``finish_reason="error"``:
the run finishes, and a rerun (with the response cache) asks only for what failed.

The API key is read from an environment variable when the client is built (stripped:
a ``\r\n`` from a Windows ``.env`` file would make the HTTP client refuse the header
with an error quoting it) and sent only in the ``Authorization`` header. It, and any
credential in the base URL (user info, ``?api-key=``), is registered with
``sftflow.io.redact``, so it is scrubbed from every error text and every file sftflow
writes; ``repr``, ``describe()`` and dead letters show the URL redacted and name the
variable, never the value.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import json
import math
import os
import random
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from ..config import ConfigError
from ..io.append_log import append_row
from ..io.redact import redact_url, register_secret, scrub, url_secrets
from .base import Completion, GenParams

ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

# 4xx codes that may pass on a second try; every 5xx is retried as a class (gateways and
# hosted APIs use 520-529 for overload and edge failures).
RETRY_STATUS = {408, 409, 425, 429}


def is_retryable_status(code: int) -> bool:
    return code in RETRY_STATUS or 500 <= code <= 599


class RetryableError(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(Exception):
    pass


class ReplyShapeError(ValueError):
    """A 200 reply that parsed as JSON but is not a chat completion."""


def _count(usage: dict, name: str) -> int:
    v = usage.get(name)
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v < 0:
        raise ReplyShapeError(f"usage.{name} is {v!r}, not a count")
    return int(v)


def completion_from_reply(data: Any) -> Completion:
    """Check the shape of a chat-completion reply field by field; raise ReplyShapeError.

    Written out rather than caught as a TypeError/KeyError around naive indexing: each
    wrong shape gets a message naming the field, which is what a dead letter shows.
    """
    if not isinstance(data, dict):
        raise ReplyShapeError(f"top level is {type(data).__name__}, not an object")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ReplyShapeError(f"choices is {type(choices).__name__ if choices is not None else 'missing'}"
                              f"{' (empty)' if choices == [] else ''}, not a non-empty list")
    ch = choices[0]
    if not isinstance(ch, dict):
        raise ReplyShapeError(f"choices[0] is {type(ch).__name__}, not an object")
    msg = ch.get("message")
    if not isinstance(msg, dict):
        raise ReplyShapeError(f"choices[0].message is {type(msg).__name__}, not an object")
    text = msg.get("content")
    if not isinstance(text, str):
        raise ReplyShapeError("choices[0].message.content is not text")
    reason = ch.get("finish_reason") or "stop"
    if not isinstance(reason, str):
        raise ReplyShapeError("choices[0].finish_reason is not text")
    if reason in ("eos", "stop_sequence", "end_turn"):
        reason = "stop"
    usage = data.get("usage") or {}
    if not isinstance(usage, dict):
        raise ReplyShapeError("usage is not an object")
    logprobs = None
    lp = ch.get("logprobs")
    if isinstance(lp, dict) and isinstance(lp.get("content"), list):
        logprobs = []
        for j, t in enumerate(lp["content"]):
            v = t.get("logprob") if isinstance(t, dict) else None
            if isinstance(v, bool) or not isinstance(v, (int, float)) or math.isnan(v) or v > 0:
                raise ReplyShapeError(f"logprobs.content[{j}].logprob is {v!r}, not a log-probability")
            logprobs.append(float(v))
    return Completion(text=text, finish_reason=reason, completion_tokens=_count(usage, "completion_tokens"),
                      prompt_tokens=_count(usage, "prompt_tokens"), logprobs=logprobs)


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


def read_api_key(env_name: str) -> str | None:
    """The key from ``env_name``, stripped; registered as a secret before anything can print it."""
    if not isinstance(env_name, str) or not ENV_NAME.fullmatch(env_name):
        # Most likely the key itself typed where its variable's name belongs: refuse, and keep it
        # out of the error and out of every file (the manifest records the command line).
        register_secret(env_name if isinstance(env_name, str) else None)
        raise ConfigError("backend.api_key_env (--api-key-env) must be the NAME of an environment "
                          "variable holding the key, such as OPENAI_API_KEY; the value given is not a "
                          "variable name (it is not shown, in case it is the key itself)")
    raw = os.environ.get(env_name)
    register_secret(raw)
    return raw.strip() if raw and raw.strip() else None


def endpoint_urls(base_url: str) -> tuple[str, str]:
    """(URL to POST chat completions to, the same URL fit to show), credentials registered."""
    for secret in url_secrets(base_url):
        register_secret(secret)
    parts = httpx.URL(base_url)
    if parts.userinfo:     # httpx sends it as Basic auth: its base64 form is a secret as well
        register_secret(base64.b64encode(parts.userinfo).decode("ascii"))
    path = parts.path.rstrip("/") + "/chat/completions"
    post = str(parts.copy_with(path=path))
    return post, redact_url(base_url.rstrip("/"))


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
                 deadline: float | None = None, max_retry_after: float = 300.0, dead_letter_path: str | Path | None = None,
                 extra_body: dict[str, Any] | None = None, seed: int = 0):
        if not model:
            raise ValueError("the openai backend needs a model name (--model), as the server knows it")
        if concurrency < 1:
            raise ValueError("concurrency must be >= 1")
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.model = model
        self._api_key = read_api_key(api_key_env)
        self.api_key_env = api_key_env
        self._url, self.base_url = endpoint_urls(base_url)
        self.concurrency = concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        # the whole attempt, not each read; by default twice the read timeout
        self.deadline = float(deadline) if deadline is not None else 2.0 * timeout
        if self.deadline <= 0:
            raise ValueError("deadline must be > 0 seconds")
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
                "timeout": self.timeout, "deadline": self.deadline}

    @property
    def tokens_per_second(self) -> float:
        s = self.stats["seconds"]
        return self.stats["completion_tokens"] / s if s > 0 else 0.0

    @property
    def cache_id(self) -> str:
        """What the response cache keys on: the model *at this endpoint* (credentials left out,
        so a rotated key keeps the cache; another server under the same model name does not)."""
        return f"{self.model}@{self.base_url}"

    def _scrub(self, text: str) -> str:
        return scrub(text)

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
        if is_retryable_status(resp.status_code):
            raise RetryableError(f"HTTP {resp.status_code}: {resp.text[:200]}",
                                 parse_retry_after(resp.headers))
        if resp.status_code >= 400:
            raise PermanentError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = json.loads(resp.content)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RetryableError(f"malformed reply: body is not JSON ({e})") from None
        try:
            return completion_from_reply(data)
        except ReplyShapeError as e:
            raise RetryableError(f"malformed reply: {e}") from None

    def _count_error(self, kind: str) -> None:
        by = self.stats["errors_by_kind"]
        by[kind] = by.get(kind, 0) + 1

    async def _attempt(self, client: httpx.AsyncClient, body: dict[str, Any]) -> Completion:
        """One POST, bounded as a whole by the deadline (the read timeout bounds each read only:
        a server sending a byte every second would otherwise hold the slot for ever)."""
        try:
            resp = await asyncio.wait_for(client.post(self._url, json=body),
                                          self.deadline)
        except TimeoutError:
            raise RetryableError(f"deadline: no complete reply within {self.deadline:g} s") from None
        return self._parse(resp)

    async def _one(self, slots: asyncio.Queue[httpx.AsyncClient],
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
                    return await self._attempt(client, body)
                except PermanentError as e:
                    self._count_error("permanent")
                    return self._dead_letter(messages, params, str(e), attempt + 1)
                except RetryableError as e:
                    self._count_error(str(e).split(":")[0])
                    last_error, retry_after = str(e), e.retry_after
                except httpx.TimeoutException as e:
                    self._count_error("timeout")
                    last_error = f"timeout: {type(e).__name__}"
                except httpx.TransportError as e:   # connection reset, refused, body cut short
                    self._count_error(type(e).__name__)
                    last_error = f"{type(e).__name__}: {e}"
                except Exception as e:  # noqa: BLE001 - one request's bug must not sink the batch
                    self._count_error("unexpected")
                    return self._dead_letter(messages, params, f"{type(e).__name__}: {e}", attempt + 1)
            finally:
                slots.put_nowait(client)
            if attempt >= self.max_retries:
                return self._dead_letter(messages, params, last_error, attempt + 1)
            delay = backoff_delay(attempt, self.backoff_base, self.backoff_max, self._rng)
            if retry_after is not None:
                # The server's wait wins when longer, but never below our backoff's fixed
                # half: "Retry-After: 0" from an overloaded server must not become a tight loop.
                floor = min(self.backoff_max, self.backoff_base * 2 ** attempt) / 2
                delay = max(floor, min(retry_after, self.max_retry_after))
            attempt += 1
            self.stats["retries"] += 1
            await asyncio.sleep(delay)      # slot given back: a waiting retry holds no connection

    def _dead_letter(self, messages, params: GenParams, error: str, attempts: int) -> Completion:
        error = self._scrub(error)
        self.stats["failures"] += 1
        if self.dead_letter_path is not None:
            row = {"request": {"backend": self.name, "model": self.model, "base_url": self.base_url,
                               "messages": messages, "params": params.to_dict()},
                   "error": error, "attempts": attempts, "time": time.time()}
            with self._dl_lock:             # one whole line per write; a kill tears at most the last
                append_row(self.dead_letter_path, row)
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
        out: list[Completion | None] = [None] * len(requests)
        # A bounded producer: a fixed pool of workers pulls the next request from one shared
        # iterator, so a million prompts cost a million results, never a million coroutines
        # and tasks created up front. Twice `concurrency` workers: a worker sleeping on its
        # backoff holds no slot, and the other half keeps every slot busy meanwhile.
        todo = iter(enumerate(requests))

        async def worker() -> None:
            for i, msgs in todo:
                c = await self._one(slots, msgs, params)
                self.stats["completion_tokens"] += c.completion_tokens
                self.stats["prompt_tokens"] += c.prompt_tokens
                out[i] = c
                if on_result:
                    on_result(i, c)
        try:
            await asyncio.gather(*(worker() for _ in range(min(len(requests), 2 * self.concurrency))))
        finally:
            for c in clients:
                await c.aclose()
        self.stats["seconds"] += time.perf_counter() - t0
        return out  # type: ignore[return-value]

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
