"""The ``openai`` backend: any OpenAI-compatible chat endpoint (OpenAI, vLLM, Ollama, llama.cpp server).

Settings (section ``llm``): ``base_url`` (e.g. ``http://localhost:11434/v1``; default OpenAI's API),
``api_key`` (optional for local servers), ``model``, ``timeout``, ``temperature``, ``max_tokens``,
``context_window`` (the prompt is budgeted to fit, see :mod:`assistant.backends.context`).

Answers stream: each content delta is yielded as it arrives. Token usage is requested with
``stream_options={"include_usage": True}``; a server that rejects the option is asked again
without it (and never again with it), and when no usage arrives the tokens are counted with
tiktoken. Every endpoint failure (refused connection, timeout, HTTP 4xx/5xx, bad credentials,
a broken stream) becomes a one-line :class:`~assistant.errors.BackendError` that names the
endpoint and the model, never the API key.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant.backends import REFUSAL, Request, Turn
from assistant.backends.context import answer_context, clean_condensed, condense_messages
from assistant.errors import BackendError, ConfigError
from assistant.offline import count_tokens

if TYPE_CHECKING:
    from assistant.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "sk-no-key-required"  # the client insists on a key; local servers ignore it
MAX_RETRIES = 1  # the client's own retry (with backoff) on connection errors, 408/409/429/5xx
CONDENSE_MAX_TOKENS = 128
_KEYLIKE = re.compile(r"\b(sk|key|xox[a-z])-[A-Za-z0-9_*\-.]{4,}", re.IGNORECASE)


class OpenAIBackend:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        import openai  # a core dependency; imported here so other backends never pay for it

        llm = settings.llm
        self.llm = llm
        self.base_url = (llm.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        key = llm.api_key.get_secret_value() if llm.api_key else os.environ.get("OPENAI_API_KEY")
        if not key and self.base_url == OPENAI_URL:
            raise ConfigError(
                "llm.api_key: the openai backend needs an API key for api.openai.com "
                "(set LITASSIST_LLM__API_KEY, or llm.base_url for a local OpenAI-compatible server)"
            )
        self._secret = key or ""
        self.model = llm.model
        self._openai = openai
        self.client = openai.OpenAI(
            base_url=self.base_url, api_key=key or NO_KEY, timeout=llm.timeout, max_retries=MAX_RETRIES
        )
        self._stream_usage = True  # ask for usage in the stream until the server refuses the option
        self._lock = threading.Lock()

    # --- Backend protocol ------------------------------------------------------------------
    def condense(self, question: str, history: list[Turn]) -> str:
        """Ask the model to rewrite a follow-up into a standalone question (the raw one on an empty reply)."""
        if not history:
            return question
        messages: Any = condense_messages(question, history)
        try:
            reply = self.client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0.0,
                max_tokens=CONDENSE_MAX_TOKENS,
                stream=False,
            )
        except Exception as exc:
            raise self._error(exc, "condense") from None
        content = reply.choices[0].message.content if reply.choices else None
        return clean_condensed(content, question)

    def generate(self, req: Request) -> Iterator[str]:
        if not req.hits:
            yield REFUSAL
            return
        ctx = answer_context(req.question, req.hits, self.llm)
        req.shown = len(ctx.sources)  # citations beyond what the model saw are invalid
        stream = self._open_stream(ctx.messages)
        parts: list[str] = []
        usage = None
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                for choice in chunk.choices or []:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        parts.append(delta)
                        yield delta
        except Exception as exc:
            raise self._error(exc, "answer stream") from None
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            req.usage.prompt_tokens = int(usage.prompt_tokens or 0)
            req.usage.completion_tokens = int(usage.completion_tokens or 0)
        else:  # the server sent no usage: count what was sent and received with tiktoken
            req.usage.prompt_tokens = ctx.prompt_tokens
            req.usage.completion_tokens = count_tokens("".join(parts))

    # --- helpers -----------------------------------------------------------------------------
    def _open_stream(self, messages: list[dict[str, str]]) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.llm.temperature,
            "max_tokens": self.llm.max_tokens,
            "stream": True,
        }
        if self._stream_usage:
            try:
                return self.client.chat.completions.create(**kwargs, stream_options={"include_usage": True})
            except self._openai.APIStatusError as exc:
                if exc.status_code not in (400, 422) or "stream_options" not in _body_text(exc):
                    raise self._error(exc, "answer") from None
                with self._lock:
                    self._stream_usage = False  # this server does not know the option: stop sending it
            except Exception as exc:
                raise self._error(exc, "answer") from None
        try:
            return self.client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._error(exc, "answer") from None

    def _error(self, exc: BaseException, what: str) -> BackendError:
        """One line naming the endpoint, the model and what went wrong (never the key)."""
        oa = self._openai
        where = f"openai backend: {what} request to {self.base_url} (model {self.model!r})"
        if isinstance(exc, oa.APITimeoutError) or _is_timeout(exc):
            msg = f"{where} timed out after {self.llm.timeout:g}s (llm.timeout)"
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
        return BackendError(self._scrub(msg))

    def _scrub(self, text: str) -> str:
        if self._secret:
            text = text.replace(self._secret, "***")
        text = _KEYLIKE.sub(lambda m: f"{m.group(1)}-***", text)
        text = " ".join(text.split())
        return text if len(text) <= 400 else text[:397] + "..."


def _body_text(exc: Any) -> str:
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
