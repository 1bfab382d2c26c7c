"""Answer-generation backends behind one small Protocol, chosen by name.

``extractive`` (no LLM, the default), ``openai`` (any OpenAI-compatible endpoint) and ``local``
(a managed llama.cpp server, optional extra, reached as ``openai``). Each module is imported only when its backend is used.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from assistant.errors import ConfigError
from assistant.models import Hit, Usage

if TYPE_CHECKING:
    from assistant.evidence import Evidence
    from assistant.settings import Settings

REFUSAL = "INSUFFICIENT_EVIDENCE"
NO_GROUNDED_ANSWER = "No grounded answer"  # how a refusal by the backend opens (the judgement had found papers)
BACKENDS = ("extractive", "openai", "local")

Turn = dict[str, Any]  # {"role": "user"|"assistant", "content": str}; an answer may keep "papers", "confidence"


@dataclass
class Request:
    """What a backend answers from: a standalone question and numbered evidence (hit n = [n])."""

    question: str
    hits: list[Hit]
    evidence: Evidence
    usage: Usage = field(default_factory=Usage)
    shown: int | None = None  # set by a backend whose prompt held only hits[:shown] (context budget)
    quoted: dict[int, str] = field(default_factory=dict)  # hit n -> the abstract sentence the answer quotes
    scope: str = "the indexed papers"  # what the papers were drawn from, in words (a follow-up narrows it)
    every: bool = False  # the question is about every one of them (a follow-up on an earlier answer's papers)


class Backend(Protocol):
    name: str

    def generate(self, req: Request) -> Iterator[str]:
        """Stream the answer text (citing hits as [n]); yield ``REFUSAL`` alone when unanswerable."""
        ...

    def condense(self, question: str, history: list[Turn]) -> str:
        """Rewrite a follow-up into a standalone question using the conversation."""
        ...


def get_backend(name: str, settings: Settings) -> Backend:
    """The backend called ``name`` (imported lazily)."""
    if name == "extractive":
        from assistant.backends.extractive import ExtractiveBackend

        return ExtractiveBackend(settings)
    if name == "openai":
        from assistant.backends.openai import OpenAIBackend

        return OpenAIBackend(settings)
    if name == "local":
        from assistant.backends.local import LocalBackend

        return LocalBackend(settings)
    raise ConfigError(f"llm.backend: unknown backend {name!r} (choose one of {', '.join(BACKENDS)})")


def available_backends(settings: Settings) -> list[str]:
    """Backends that can run with the current settings and installed extras."""
    import importlib.util

    names = ["extractive"]
    if settings.llm.base_url or settings.llm.api_key:
        names.append("openai")
    if importlib.util.find_spec("xllamacpp") is not None:
        names.append("local")
    return names
