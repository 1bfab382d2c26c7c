"""One way to reach an OpenAI-compatible endpoint: the client, and failures as one-line errors.

Used by the ``openai`` answer backend, the ``openai`` embedder and the eval suite's LLM judge, so every
endpoint failure reads the same: what was asked, of which URL and model, and why — never the key.
"""

from __future__ import annotations

import os
from typing import Any

from assistant.errors import BackendError, ConfigError, redact

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "sk-no-key-required"  # the client insists on a key; local servers ignore it
MAX_RETRIES = 1  # the client's own retry (with backoff) on connection errors, 408/409/429/5xx


class Endpoint:
    """An ``openai.OpenAI`` client for ``base_url`` (default: OpenAI) plus error mapping."""

    def __init__(self, base_url: str | None, api_key: str | None, model: str, timeout: float, label: str) -> None:
        import openai

        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url == OPENAI_URL:
            raise ConfigError(
                f"llm.api_key: the {label} needs an API key for api.openai.com "
                "(set LITASSIST_LLM__API_KEY, or llm.base_url for a local OpenAI-compatible server)"
            )
        self.label, self.model, self.timeout = label, model, timeout
        self._secret = key or ""
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key or NO_KEY, timeout=timeout, max_retries=MAX_RETRIES
        )

    def error(self, exc: BaseException, what: str) -> BackendError:
        """One line naming the endpoint, the model and what went wrong (never the key)."""
        oa = self._openai
        where = f"{self.label}: {what} request to {self.base_url} (model {self.model!r})"
        if isinstance(exc, oa.APITimeoutError) or _is_timeout(exc):
            msg = f"{where} timed out after {self.timeout:g}s (llm.timeout)"
        elif isinstance(exc, oa.APIConnectionError) or _is_connection(exc):
            cause = exc.__cause__ or exc.__context__
            detail = f": {type(cause).__name__}: {cause}" if cause is not None else f": {exc}"
            msg = f"{where} failed, endpoint unreachable{detail} (is the server running? check llm.base_url)"
        elif isinstance(exc, oa.AuthenticationError | oa.PermissionDeniedError):
            msg = f"{where} was rejected, HTTP {exc.status_code}: check llm.api_key"
        elif isinstance(exc, oa.NotFoundError):
            msg = f"{where} failed, HTTP 404 (unknown model or wrong llm.base_url): {_server_message(exc)}"
        elif isinstance(exc, oa.APIStatusError):
            msg = f"{where} failed, HTTP {exc.status_code}: {_server_message(exc)}"
        elif isinstance(exc, oa.APIError):
            msg = f"{where} failed: {exc.message}"
        else:
            msg = f"{where} failed: {type(exc).__name__}: {exc}"
        return BackendError(self.scrub(msg))

    def timeout_error(self, what: str, waited: float) -> BackendError:
        """The overall deadline passed: says which endpoint and how long it waited."""
        where = f"{self.label}: {what} request to {self.base_url} (model {self.model!r})"
        return BackendError(
            self.scrub(f"{where} timed out after {self.timeout:g}s (llm.timeout, overall; waited {waited:.1f}s)")
        )

    def scrub(self, text: str) -> str:
        """``text`` without the key or anything key-like, on one line, at most 400 characters."""
        text = " ".join(redact(text, [self._secret]).split())
        return text if len(text) <= 400 else text[:397] + "..."


def body_text(exc: Any) -> str:
    """Message and body of an API error (to recognise a server that rejects an option)."""
    body = getattr(exc, "body", None)
    return f"{getattr(exc, 'message', '')} {body}"


def _server_message(exc: Any) -> str:
    """The server's own error message, short."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        message = inner.get("message") if isinstance(inner, dict) else inner
        if message:
            return str(message)[:200]
    response = getattr(exc, "response", None)
    text = getattr(response, "text", "") if response is not None else ""
    return (str(text).strip() or getattr(exc, "message", "") or type(exc).__name__)[:200]


def _is_timeout(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.TimeoutException | TimeoutError)


def _is_connection(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, httpx.TransportError | ConnectionError)


class Deadline:
    """An overall time limit for one request, reads and retries included (not a per-read timeout)."""

    def __init__(self, seconds: float) -> None:
        import time

        self._clock = time.monotonic
        self.seconds = seconds
        self.start = self._clock()

    def left(self) -> float:
        return max(0.0, self.seconds - self.elapsed())

    def elapsed(self) -> float:
        return self._clock() - self.start

    def expired(self) -> bool:
        return self.elapsed() >= self.seconds

    def watch(self, response: Any) -> Any:
        """A started timer that cuts ``response``'s connection when the deadline passes (a server that
        keeps the stream alive with comments or a token now and then cannot hold the caller longer)."""
        import threading

        timer = threading.Timer(self.left(), cut_connection, args=(response,))
        timer.daemon = True
        timer.start()
        return timer


def cut_connection(response: Any) -> None:
    """Shut down the socket under an ``httpx.Response`` (wakes a thread blocked reading it)."""
    import contextlib
    import socket

    with contextlib.suppress(Exception):
        stream = response.extensions.get("network_stream")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)
        else:
            response.close()
