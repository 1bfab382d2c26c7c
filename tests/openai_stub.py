"""A scripted OpenAI-compatible chat server on 127.0.0.1, for tests (no internet, a real HTTP server).

``POST /v1/chat/completions`` answers from a queue of scripted replies, as one JSON completion or,
with ``"stream": true``, as SSE ``chat.completion.chunk`` events ending in ``data: [DONE]``
(plus a usage chunk when ``stream_options.include_usage`` is asked for). Every request body is
recorded. ``GET /v1/models`` lists the one model. Modes:

- ``"ok"``: replies from the queue (an empty queue is an HTTP 500 saying so);
- ``"error500"``: every chat request gets HTTP 500;
- ``"no_stream_options"``: a request carrying ``stream_options`` gets HTTP 400 (like old servers);
- ``"no_usage"``: ``stream_options`` is accepted but no usage is ever sent.

Usage::

    with OpenAIStub() as stub:
        stub.script("The answer [1].")
        ...  # settings.llm.base_url = stub.url
        stub.requests[-1]["messages"]
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

MODEL = "stub-model"


@dataclass
class Reply:
    """One scripted reply. ``chunks``: the exact stream deltas (default: the text split into words)."""

    text: str = ""
    status: int = 200
    chunks: list[str] | None = None
    delay: float = 0.0  # seconds before answering (timeout tests)
    prompt_tokens: int = 42
    completion_tokens: int | None = None  # default: the number of chunks
    raw: bytes | None = None  # sent as-is as an HTTP 200 event stream (a broken endpoint)
    trickle: float = 0.0  # seconds between stream events, with an SSE keep-alive comment before each

    def deltas(self) -> list[str]:
        if self.chunks is not None:
            return list(self.chunks)
        return re.findall(r"\S+\s*|\s+", self.text) or [""]


@dataclass
class _State:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    embedding_requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    mode: str = "ok"
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet test output
        pass

    # --- plumbing -------------------------------------------------------------------------
    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "server_error") -> None:
        self._json(status, {"error": {"message": message, "type": kind, "code": status}})

    def _embeddings(self, raw: bytes) -> None:
        """Deterministic bag-of-words vectors (64 dims): texts sharing words get similar vectors."""
        body = json.loads(raw or b"{}")
        self.server.state.embedding_requests.append(body)
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        data = []
        for i, text in enumerate(texts):
            vec = [0.0] * 64
            for word in text.lower().split():
                vec[int(hashlib.md5(word.strip(".,?!:;()").encode()).hexdigest(), 16) % 64] += 1.0
            data.append({"object": "embedding", "index": i, "embedding": vec})
        self._json(200, {"object": "list", "data": data, "model": body.get("model", MODEL),
                         "usage": {"prompt_tokens": 0, "total_tokens": 0}})

    def do_GET(self) -> None:  # noqa: N802
        if self.path.rstrip("/") == "/v1/models":
            self._json(
                200, {"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "stub"}]}
            )
        else:
            self._error(404, f"no route {self.path}", "not_found")

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if self.path.rstrip("/") == "/v1/embeddings":
            self._embeddings(raw)
            return
        if self.path.rstrip("/") != "/v1/chat/completions":
            self._error(404, f"no route {self.path}", "not_found")
            return
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            self._error(400, "body is not JSON", "invalid_request_error")
            return
        state = self.server.state
        with state.lock:
            state.requests.append(body)
            state.headers.append({k.lower(): v for k, v in self.headers.items()})
            mode = state.mode
        if mode == "error500":
            self._error(500, "stub: internal server error (mode error500)")
            return
        if mode == "no_stream_options" and "stream_options" in body:
            self._error(
                400, "Unrecognized request argument supplied: stream_options", "invalid_request_error"
            )
            return
        with state.lock:
            reply = state.replies.popleft() if state.replies else None
        if reply is None:
            self._error(500, "stub: no scripted reply left")
            return
        if reply.delay:
            time.sleep(reply.delay)
        if reply.status != 200:
            self._error(reply.status, reply.text or f"stub: HTTP {reply.status}")
            return
        if reply.raw is not None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(reply.raw)
            self.close_connection = True
            return
        want_usage = bool((body.get("stream_options") or {}).get("include_usage")) and mode != "no_usage"
        if body.get("stream"):
            self._stream(body, reply, want_usage)
        else:
            self._complete(body, reply)

    # --- replies --------------------------------------------------------------------------
    def _usage(self, reply: Reply) -> dict[str, int]:
        completion = reply.completion_tokens if reply.completion_tokens is not None else len(reply.deltas())
        return {
            "prompt_tokens": reply.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": reply.prompt_tokens + completion,
        }

    def _complete(self, body: dict[str, Any], reply: Reply) -> None:
        self._json(
            200,
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", MODEL),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": "".join(reply.deltas())},
                        "finish_reason": "stop",
                    }
                ],
                "usage": self._usage(reply),
            },
        )

    def _stream(self, body: dict[str, Any], reply: Reply, want_usage: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        cid, created, model = f"chatcmpl-{uuid.uuid4().hex[:12]}", int(time.time()), body.get("model", MODEL)

        def chunk(
            delta: dict[str, Any] | None, finish: str | None = None, usage: Any = None
        ) -> dict[str, Any]:
            choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
            out: dict[str, Any] = {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
            }
            if want_usage:
                out["usage"] = usage
            return out

        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": d}) for d in reply.deltas()]
        events.append(chunk({}, "stop"))
        if want_usage:
            events.append(chunk(None, usage=self._usage(reply)))
        for event in events:
            if reply.trickle:
                time.sleep(reply.trickle)
                try:
                    self.wfile.write(b": keep-alive\n\n")
                except OSError:
                    return  # the client hung up
            try:
                self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
                self.wfile.flush()
            except OSError:
                return
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _State


class OpenAIStub:
    """The server, started in a background thread on a free loopback port."""

    def __init__(self) -> None:
        self.state = _State()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.state = self.state
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="openai-stub", daemon=True)

    @property
    def url(self) -> str:
        """The base URL to give the OpenAI client."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every chat request body received, oldest first."""
        return self.state.requests

    @property
    def headers(self) -> list[dict[str, str]]:
        return self.state.headers

    @property
    def mode(self) -> str:
        return self.state.mode

    @mode.setter
    def mode(self, value: str) -> None:
        assert value in ("ok", "error500", "no_stream_options", "no_usage"), value
        self.state.mode = value

    def script(self, *replies: str | Reply) -> None:
        """Queue replies, answered in order, one per chat request."""
        with self.state.lock:
            self.state.replies.extend(r if isinstance(r, Reply) else Reply(r) for r in replies)

    def reset(self) -> None:
        with self.state.lock:
            self.state.replies.clear()
            self.state.requests.clear()
            self.state.embedding_requests.clear()
            self.state.headers.clear()
            self.state.mode = "ok"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def closed_port_url() -> str:
    """A loopback base URL on which nothing listens (a port just bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"
