"""A local OpenAI-compatible server with scripted faults, for tests and benchmarks.

It listens on 127.0.0.1 (an ephemeral port), answers ``POST /v1/chat/completions``
with ``responder(messages) -> text``, and can misbehave the way real servers do.
``faults`` maps a prompt (the last message's content) to the actions for its first
attempts, in order; later attempts succeed. ``default_faults`` applies to every
prompt not named; ``fault_fn(prompt, attempt) -> action | None`` decides for
prompts that are not known in advance. Actions:

  "CODE"         any HTTP status (three digits) with an error body: "429", "500",
                 "529", "400", ...
  "CODE:SECONDS" the same with ``Retry-After: SECONDS`` ("429:0" asks for no wait)
  "reset"        close the connection with a TCP reset, no response
  "hang"         answer only after ``hang_seconds`` (longer than the client's timeout)
  "malformed"    200 with a body that is not JSON
  "empty"        200 with an empty ``choices`` list
  "cut"          200 whose body stops half-way (Content-Length promises more)
  "echo_auth"    401 whose body quotes the Authorization header and the path back
  "corrupt"      200 whose body is bytes that are not even UTF-8
  "choices_object"  200 with ``choices`` an object instead of a list
  "choices_null" 200 with ``choices: [null]``
  "message_string"  200 whose ``message`` is a string, not an object
  "tokens_nan"   200 with a non-numeric ``usage.completion_tokens``
  "logprob_null" 200 whose logprobs hold a null ``logprob``
  "trickle"      200 sent one byte every ``trickle_interval`` seconds: each read is
                 quick, the whole reply is not (stops after ``hang_seconds``)

Every request is logged (time, prompt, attempt, action, headers) for assertions.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

_OK_CHOICE = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}
# 200 replies whose JSON parses but whose shape is wrong, as broken proxies and servers send them
MALFORMED = {
    "choices_object": {"choices": {"0": _OK_CHOICE}},
    "choices_null": {"choices": [None]},
    "message_string": {"choices": [{"index": 0, "finish_reason": "stop", "message": "x"}]},
    "tokens_nan": {"choices": [_OK_CHOICE], "usage": {"prompt_tokens": 3, "completion_tokens": "many"}},
    "logprob_null": {"choices": [{**_OK_CHOICE, "logprobs": {"content": [{"token": "x", "logprob": None}]}}]},
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # headers and body go out in two writes; without TCP_NODELAY, Nagle + delayed ACK
    # add ~40 ms to every response
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, *args):      # keep test output clean
        pass

    def _send(self, code: int, body: bytes, headers: dict[str, str] | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()

    def do_POST(self):
        fake = self.server.fake
        n = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(n) or b"{}")
        except json.JSONDecodeError:
            self._send(400, b'{"error": "bad json"}')
            return
        if not self.path.split("?", 1)[0].rstrip("/").endswith("/chat/completions"):
            self._send(404, b'{"error": "not found"}')
            return
        msgs = body.get("messages") or []
        prompt = msgs[-1]["content"] if msgs else ""
        action = fake._next_action(prompt)
        fake._log(prompt, action, dict(self.headers), body)
        if fake.latency:
            time.sleep(fake.latency)
        if action is None:
            text = fake.responder(msgs)
            reason = "stop"
            for s in body.get("stop") or []:
                if s and s in text:
                    text = text[: text.index(s)]
            words = text.split(" ")
            if len(words) > int(body.get("max_tokens") or 1 << 30):
                text, reason = " ".join(words[: int(body["max_tokens"])]), "length"
            resp = {"id": "cmpl-fake", "object": "chat.completion", "model": body.get("model"),
                    "choices": [{"index": 0, "finish_reason": reason,
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": len(prompt.split()),
                              "completion_tokens": len(text.split()),
                              "total_tokens": len(prompt.split()) + len(text.split())}}
            self._send(200, json.dumps(resp).encode())
            return
        kind, _, arg = action.partition(":")
        if kind.isdigit() and len(kind) == 3:
            headers = {"Retry-After": arg} if arg else {}
            self._send(int(kind), json.dumps({"error": {"message": f"fake {kind}"}}).encode(), headers)
        elif kind == "echo_auth":      # a 401 that quotes the credentials back, as some proxies do
            quoted = f"invalid credentials {self.headers.get('Authorization')!r} for {self.path}"
            self._send(401, json.dumps({"error": {"message": quoted}}).encode())
        elif kind in MALFORMED:
            self._send(200, json.dumps(MALFORMED[kind]).encode())
        elif kind == "corrupt":
            self._send(200, b"\xff\xfe\x00\x9c{not json\x80")
        elif kind == "trickle":
            self._trickle(fake)
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
        elif kind == "hang":
            time.sleep(fake.hang_seconds)
            self.close_connection = True
        elif kind == "malformed":
            self._send(200, b'{"choices": [{"message": ')
        elif kind == "empty":
            self._send(200, json.dumps({"id": "x", "choices": []}).encode())
        elif kind == "cut":
            full = json.dumps({"choices": [{"message": {"content": "x" * 200}}]}).encode()
            self._send(200, full[: len(full) // 3], length=len(full))
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        else:
            raise ValueError(f"unknown fault action {action!r}")

    def _trickle(self, fake: FakeOpenAIServer) -> None:
        body = json.dumps({"choices": [{"message": {"content": "slow " * 200}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.flush()
        stop = time.monotonic() + fake.hang_seconds     # bounded: the server thread ends
        for i in range(len(body)):
            if time.monotonic() > stop:
                break
            self.wfile.write(body[i:i + 1])
            self.wfile.flush()
            time.sleep(fake.trickle_interval)
        self.close_connection = True

    def handle(self):
        try:
            super().handle()
        except (ConnectionError, OSError, ValueError):
            pass                        # a reset or cut connection we caused on purpose


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    fake: FakeOpenAIServer


class FakeOpenAIServer:
    def __init__(self, responder: Callable[[list[dict]], str] | None = None, *,
                 faults: dict[str, list[str]] | None = None, default_faults: list[str] | None = None,
                 fault_fn: Callable[[str, int], str | None] | None = None,
                 latency: float = 0.0, hang_seconds: float = 2.0, trickle_interval: float = 0.05,
                 port: int = 0):
        self.responder = responder or (lambda msgs: "echo: " + msgs[-1]["content"])
        self.faults = {k: list(v) for k, v in (faults or {}).items()}
        self.default_faults = list(default_faults or [])
        self.fault_fn = fault_fn
        self.latency = latency
        self.hang_seconds = hang_seconds
        self.trickle_interval = trickle_interval
        self.port = port            # 0: an ephemeral one; a rerun "after the outage" reuses a port
        self.log: list[dict] = []
        self.attempts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def _next_action(self, prompt: str) -> str | None:
        with self._lock:
            k = self.attempts.get(prompt, 0)
            self.attempts[prompt] = k + 1
            if self.fault_fn is not None and prompt not in self.faults:
                return self.fault_fn(prompt, k)
            plan = self.faults.get(prompt, self.default_faults)
            return plan[k] if k < len(plan) else None

    def _log(self, prompt, action, headers, body) -> None:
        with self._lock:
            self.log.append({"t": time.monotonic(), "prompt": prompt, "action": action,
                             "headers": headers, "body": body})

    @property
    def url(self) -> str:
        assert self._httpd is not None, "server not started"
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def start(self) -> FakeOpenAIServer:
        self._httpd = _Server(("127.0.0.1", self.port), _Handler)
        self._httpd.fake = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """Serve on 127.0.0.1 in its own process (benchmarks: no shared GIL with the client).

    Prints the base URL on the first line of stdout, then serves until killed.
    """
    import argparse
    import sys
    ap = argparse.ArgumentParser(description="sftflow's fake OpenAI-compatible server")
    ap.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    ap.add_argument("--reply", default="ok", help="the text every request gets")
    args = ap.parse_args(argv)
    srv = FakeOpenAIServer(lambda m: args.reply, latency=args.latency).start()
    print(srv.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()
        sys.stdout.flush()


if __name__ == "__main__":
    main()
