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

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from assistant.backends import REFUSAL, Request, Turn
from assistant.backends.context import answer_context, clean_condensed, condense_messages
from assistant.endpoint import Deadline, Endpoint, body_text
from assistant.errors import BackendError
from assistant.offline import count_tokens

if TYPE_CHECKING:
    from assistant.settings import Settings

CONDENSE_MAX_TOKENS = 128


class OpenAIBackend:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        import openai  # a core dependency; imported here so other backends never pay for it

        llm = settings.llm
        self.llm = llm
        key = llm.api_key.get_secret_value() if llm.api_key else None
        self.endpoint = Endpoint(llm.base_url, key, llm.model, llm.timeout, "openai backend")
        self.base_url, self.model, self.client = self.endpoint.base_url, llm.model, self.endpoint.client
        self._error = self.endpoint.error
        self._openai = openai
        self._stream_usage = True  # ask for usage in the stream until the server refuses the option
        self._lock = threading.Lock()
        # answers run under one overall deadline (llm.timeout); a retry would silently double it
        self._answer_client = self.client.with_options(max_retries=0)

    # --- Backend protocol ------------------------------------------------------------------
    def condense(self, question: str, history: list[Turn]) -> str:
        """Ask the model to rewrite a follow-up into a standalone question (the raw one on an empty reply)."""
        if not history:
            return question
        messages: Any = condense_messages(question, history)
        deadline = Deadline(self.llm.timeout)
        try:
            reply = self._answer_client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0.0,
                max_tokens=CONDENSE_MAX_TOKENS,
                stream=False,
                timeout=self.llm.timeout,
            )
        except Exception as exc:
            if deadline.expired():
                raise self.endpoint.timeout_error("condense", deadline.elapsed()) from None
            raise self._error(exc, "condense") from None
        content = reply.choices[0].message.content if reply.choices else None
        return clean_condensed(content, question)

    def generate(self, req: Request) -> Iterator[str]:
        if not req.hits:
            yield REFUSAL
            return
        ctx = answer_context(req.question, req.hits, self.llm, evidence=req.evidence)
        req.shown = len(ctx.sources)  # citations beyond what the model saw are invalid
        deadline = Deadline(self.llm.timeout)  # one limit for the whole answer, not per read
        stream = self._open_stream(ctx.messages, deadline)
        watchdog = deadline.watch(getattr(stream, "response", None))
        parts: list[str] = []
        usage = None
        chunks = 0
        try:
            for chunk in stream:
                if getattr(chunk, "usage", None):
                    usage = chunk.usage
                choices = getattr(chunk, "choices", None)
                if isinstance(choices, list):
                    chunks += 1
                for choice in choices or []:
                    delta = choice.delta.content if choice.delta else None
                    if delta:
                        parts.append(delta)
                        yield delta
        except Exception as exc:
            if deadline.expired():
                raise self.endpoint.timeout_error("answer stream", deadline.elapsed()) from None
            raise self._error(exc, "answer stream") from None
        finally:
            watchdog.cancel()
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        if deadline.expired():
            raise self.endpoint.timeout_error("answer stream", deadline.elapsed())
        if not chunks:  # HTTP 200 but no chat.completion.chunk at all: a broken endpoint, not a refusal
            raise BackendError(self.endpoint.scrub(
                f"openai backend: answer stream from {self.base_url} (model {self.model!r}) held no "
                "chat completion chunks (HTTP 200 with a body that is not an OpenAI stream)"
            ))
        if usage is not None and (usage.prompt_tokens or usage.completion_tokens):
            req.usage.prompt_tokens = int(usage.prompt_tokens or 0)
            req.usage.completion_tokens = int(usage.completion_tokens or 0)
        else:  # the server sent no usage: count what was sent and received with tiktoken
            req.usage.prompt_tokens = ctx.prompt_tokens
            req.usage.completion_tokens = count_tokens("".join(parts))

    # --- helpers -----------------------------------------------------------------------------
    def _open_stream(self, messages: list[dict[str, str]], deadline: Deadline) -> Any:
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.llm.temperature,
            "max_tokens": self.llm.max_tokens,
            "stream": True,
            "timeout": max(deadline.left(), 0.001),
        }
        if self._stream_usage:
            try:
                return self._answer_client.chat.completions.create(**kwargs, stream_options={"include_usage": True})
            except self._openai.APIStatusError as exc:
                if exc.status_code not in (400, 422) or "stream_options" not in body_text(exc):
                    raise self._error(exc, "answer") from None
                with self._lock:
                    self._stream_usage = False  # this server does not know the option: stop sending it
            except Exception as exc:
                raise self._answer_error(exc, deadline) from None
        try:
            kwargs["timeout"] = max(deadline.left(), 0.001)
            return self._answer_client.chat.completions.create(**kwargs)
        except Exception as exc:
            raise self._answer_error(exc, deadline) from None

    def _answer_error(self, exc: BaseException, deadline: Deadline) -> BackendError:
        if deadline.expired():
            return self.endpoint.timeout_error("answer", deadline.elapsed())
        return self._error(exc, "answer")
