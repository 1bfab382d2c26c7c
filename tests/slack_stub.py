"""A loopback stand-in for Slack in tests: the Web API (``/api/<method>``) and ``response_url`` webhooks
(``/respond/<name>``) on 127.0.0.1, recording every call; plus request signing per Slack's algorithm."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

BOT_USER = "UBOT"
BOT_ID = "BBOT"
TEAM = "T1"


@dataclass
class Call:
    method: str  # Web API method ("chat.postMessage") or "respond/<name>"
    data: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class SlackStub:
    """Start with ``with SlackStub() as stub``; point ``WebClient(base_url=stub.base_url)`` at it."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.replies: list[dict[str, Any]] = []  # what conversations.replies returns
        self.errors: dict[str, str] = {}  # method -> Slack error code to answer with
        self._cond = threading.Condition()
        self._ts = itertools.count(1)
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self._handle()

            def do_POST(self) -> None:  # noqa: N802
                self._handle()

            def _handle(self) -> None:
                url = urlsplit(self.path)
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                data: dict[str, Any] = dict(parse_qsl(url.query))
                if raw and "json" in (self.headers.get("Content-Type") or ""):
                    data.update(json.loads(raw))
                elif raw:
                    data.update(parse_qsl(raw))
                method = url.path.removeprefix("/api/").strip("/")
                body = stub.reply(method, data)
                with stub._cond:
                    stub.calls.append(Call(method, data, {k.lower(): v for k, v in self.headers.items()}))
                    stub._cond.notify_all()
                out = body.encode() if isinstance(body, str) else json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain" if isinstance(body, str) else "application/json")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- lifecycle ---
    def __enter__(self) -> SlackStub:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/"

    def response_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/respond/{name}"

    # --- behaviour ---
    def reply(self, method: str, data: dict[str, Any]) -> dict[str, Any] | str:
        if method.startswith("respond/"):
            return "ok"
        if method in self.errors:
            return {"ok": False, "error": self.errors[method]}
        if method == "auth.test":
            return {"ok": True, "url": "https://t.slack.com/", "team": "t", "user": "litassist", "team_id": TEAM,
                    "user_id": BOT_USER, "bot_id": BOT_ID}
        if method == "chat.postMessage":
            ts = f"1800000000.{next(self._ts):06d}"
            return {"ok": True, "channel": data.get("channel"), "ts": ts,
                    "message": {"text": data.get("text"), "user": BOT_USER, "bot_id": BOT_ID, "ts": ts}}
        if method == "chat.update":
            return {"ok": True, "channel": data.get("channel"), "ts": data.get("ts"), "text": data.get("text")}
        if method == "conversations.replies":
            return {"ok": True, "messages": self.replies, "has_more": False}
        return {"ok": False, "error": "unknown_method"}

    # --- inspection ---
    def of(self, method: str) -> list[Call]:
        with self._cond:
            return [c for c in self.calls if c.method == method]

    def wait_for(self, method: str, count: int = 1, timeout: float = 180) -> list[Call]:
        """Block until ``count`` calls of ``method`` arrived (polling, never a blind sleep)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([c for c in self.calls if c.method == method]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [c.method for c in self.calls]
                    raise AssertionError(f"waited {timeout}s for {count} x {method}; calls so far: {seen}")
                self._cond.wait(left)
            return [c for c in self.calls if c.method == method]


def sign(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Headers for ``body`` signed as Slack signs requests: ``v0=HMAC-SHA256(secret, "v0:{ts}:{body}")``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {"x-slack-request-timestamp": ts, "x-slack-signature": f"v0={digest}"}
