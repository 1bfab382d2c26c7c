"""Embedding backends behind one small Protocol, chosen by name ('local' | 'openai')."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

from assistant.errors import ConfigError

if TYPE_CHECKING:
    from assistant.settings import Settings


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    model_id: str  # identifies the vectors (goes into the collection name and the cache key)
    max_tokens: int  # the model's own input limit, in its own tokens

    def embed(self, texts: list[str]) -> np.ndarray:
        """Embed a batch; shape (len(texts), dim), rows L2-normalised."""
        ...

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for ``text`` (special tokens included)."""
        ...


def get_embedder(settings: Settings) -> Embedder:
    """The embedder named by ``settings.ingest.embedder`` (imported lazily)."""
    name = settings.ingest.embedder
    if name == "local":
        from assistant.embedders.local import OnnxMiniLM

        return OnnxMiniLM(threads=settings.ingest.threads)
    if name == "openai":
        from assistant.embedders.openai import OpenAIEmbedder

        return OpenAIEmbedder.from_settings(settings)
    raise ConfigError(f"ingest.embedder: unknown embedder {name!r} (choose 'local' or 'openai')")
