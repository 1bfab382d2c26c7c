"""The Slack bot's Events API transport: a threading HTTP server that verifies each request's
signature (and refuses replays) before anything parses its body, then hands it to the Bolt app
(see :func:`ui.slack_bot.run`)."""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from slack_bolt import App, BoltRequest
from slack_sdk.signature import SignatureVerifier

EVENTS_PATH = "/slack/events"
MAX_BODY = 1_000_000
SOCKET_TIMEOUT_S = 10.0

log = logging.getLogger("litassist.slack")


class RecentKeys:
    """Keys seen in the last ``ttl_s`` seconds (bounded): the memory behind duplicate suppression."""

    def __init__(self, ttl_s: float = 3600, max_keys: int = 10_000) -> None:
        self.ttl_s, self.max_keys = ttl_s, max_keys
        self._keys: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """True when ``key`` is new (and remember it), False for a duplicate."""
        now = time.monotonic()
        with self._lock:
            while self._keys and (len(self._keys) >= self.max_keys or now - next(iter(self._keys.values())) > self.ttl_s):
                self._keys.popitem(last=False)
            if key in self._keys:
                return False
            self._keys[key] = now
            return True


def _unverified(verifier: SignatureVerifier, body: str, headers: Any, replays: RecentKeys) -> str | None:
    """Why a request must be refused (bad/missing/old signature, a replay), or None when it is Slack's."""
    timestamp, signature = headers.get("X-Slack-Request-Timestamp"), headers.get("X-Slack-Signature")
    if not timestamp or not signature or not timestamp.strip().isdigit() or len(timestamp) > 12:
        return "invalid request signature"
    if not verifier.is_valid(body=body, timestamp=timestamp.strip(), signature=signature):
        return "invalid request signature"
    if not replays.add(signature):  # a valid signature is good for one request, not for its replays
        return "replayed request"
    return None


def make_http_server(app: App, host: str, port: int, signing_secret: str | None = None) -> ThreadingHTTPServer:
    """A threading HTTP server passing ``POST /slack/events`` to ``app`` (``port`` 0 picks a free one).

    Requests are verified here, before the body is parsed (``signing_secret``, default the app's):
    a bad, stale or replayed signature gets 401, a slow client is cut off after ``SOCKET_TIMEOUT_S``."""
    secret = signing_secret or getattr(app, "_signing_secret", None)
    verifier = SignatureVerifier(secret) if secret else None
    replays = RecentKeys(ttl_s=600)

    class Handler(BaseHTTPRequestHandler):
        timeout = SOCKET_TIMEOUT_S  # per socket operation: a slow-body client cannot hold a thread forever

        def do_POST(self) -> None:  # noqa: N802 - http.server API
            path, _, query = self.path.partition("?")
            if path != EVENTS_PATH:
                return self._send(404, "not found")
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                return self._send(400, "bad Content-Length")
            if length < 0:
                return self._send(400, "bad Content-Length")
            if length > MAX_BODY:
                return self._send(413, "request too large")
            raw = self._read_body(length)
            if raw is None:
                return self._send(408, "request body too slow")
            try:
                body = raw.decode("utf-8")
            except UnicodeDecodeError:
                return self._send(400, "body is not UTF-8")
            headers: dict[str, str | Sequence[str]] = {k.lower(): v for k, v in self.headers.items()}
            if verifier is not None:  # check the signature before anything parses the body
                problem = _unverified(verifier, body, self.headers, replays)
                if problem:
                    return self._send(401, problem)
            try:
                request = BoltRequest(body=body, query=query, headers=headers)
            except Exception:  # a signed body that is not the JSON object / form Slack sends
                return self._send(400, "malformed request body")
            resp = app.dispatch(request)
            self._send(resp.status, resp.body, resp.headers)

        def _read_body(self, length: int) -> bytes | None:
            """The body, or None when it does not arrive within ``SOCKET_TIMEOUT_S`` in all."""
            deadline = time.monotonic() + SOCKET_TIMEOUT_S
            parts: list[bytes] = []
            got = 0
            while got < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.connection.settimeout(left)
                try:
                    part = self.rfile.read1(min(65536, length - got))
                except (TimeoutError, OSError):
                    return None
                if not part:
                    return None
                parts.append(part)
                got += len(part)
            return b"".join(parts)

        def do_GET(self) -> None:  # noqa: N802 - http.server API
            self._send(200 if self.path == "/health" else 404, "ok" if self.path == "/health" else "not found")

        def _send(self, status: int, body: str, headers: dict[str, Any] | None = None) -> None:
            data = body.encode("utf-8")
            self.send_response(status)
            for key, values in (headers or {}).items():
                if key.lower() != "content-length":
                    for value in values if isinstance(values, list) else [values]:
                        self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("%s " + format, self.address_string(), *args)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server
