"""A small OpenAI-compatible chat-completions server for tests: ``ChatOpenAI`` talks real HTTP to it.

It serves ``POST /v1/chat/completions`` (and ``/chat/completions``) on 127.0.0.1 with a free port, answers
each request with the next scripted response (a text, tool calls, or a function of the request body), each
with a ``usage`` block, and records every request it received (path, headers, JSON body) so tests can
assert on the tools offered, the messages sent and the ``tool`` messages carrying the results.

Streaming is refused (400): the product never streams, and a request with ``"stream": true`` shows up as
a failed call rather than a silently different code path.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Body = dict[str, Any]
Step = Body | Callable[[Body], Body]

MODEL = "gpt-4o-mini-2024-07-18"
_ids = itertools.count(1)


def _usage(prompt: int, completion: int, cached: int = 0) -> Body:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0},
    }


def _completion(message: Body, finish: str, usage: Body, model: str) -> Body:
    return {
        "id": f"chatcmpl-fake{next(_ids)}",
        "object": "chat.completion",
        "created": 1726905600,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, "logprobs": None}],
        "usage": usage,
        "system_fingerprint": "fp_fake",
    }


def text_reply(
    content: str, *, prompt: int = 900, completion: int = 60, cached: int = 0, model: str = MODEL
) -> Body:
    """A final assistant message."""
    return _completion(
        {"role": "assistant", "content": content, "refusal": None},
        "stop",
        _usage(prompt, completion, cached),
        model,
    )


def tool_reply(
    *calls: tuple[str, dict[str, Any]],
    prompt: int = 800,
    completion: int = 40,
    cached: int = 0,
    model: str = MODEL,
) -> Body:
    """An assistant message asking for tool calls: ``tool_reply(("query_costs", {...}), ...)``."""
    tool_calls = [
        {
            "id": f"call_fake{next(_ids)}",
            "type": "function",
            "function": {"name": n, "arguments": json.dumps(a)},
        }
        for n, a in calls
    ]
    return _completion(
        {"role": "assistant", "content": None, "tool_calls": tool_calls, "refusal": None},
        "tool_calls",
        _usage(prompt, completion, cached),
        model,
    )


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Body

    @property
    def messages(self) -> list[Body]:
        return list(self.body.get("messages") or [])

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools") or []]


@dataclass
class FakeOpenAI:
    """``with FakeOpenAI([tool_reply(...), text_reply(...)]) as server: ... server.base_url``"""

    script: list[Step]
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def base_url(self) -> str:
        assert self._server is not None, "start the server first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def _respond(self, path: str, headers: dict[str, str], body: Body) -> tuple[int, Body]:
        with self._lock:
            self.received.append(Received(path, headers, body))
            index = len(self.received) - 1
        if body.get("stream"):
            return 400, {
                "error": {"message": "the fake server does not stream", "type": "invalid_request_error"}
            }
        if index >= len(self.script):
            return 500, {
                "error": {
                    "message": f"script exhausted after {len(self.script)} responses",
                    "type": "server_error",
                }
            }
        step = self.script[index]
        return 200, step(body) if callable(step) else step

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if self.path.rstrip("/") not in ("/v1/chat/completions", "/chat/completions"):
                    self._send(404, {"error": {"message": f"no route {self.path}", "type": "not_found"}})
                    return
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._send(
                        400, {"error": {"message": "body is not JSON", "type": "invalid_request_error"}}
                    )
                    return
                status, payload = fake._respond(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                self._send(status, payload)

            def _send(self, status: int, payload: Body) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
