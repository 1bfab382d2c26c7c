"""Embeddings from any OpenAI-compatible ``/v1/embeddings`` endpoint."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from assistant.endpoint import Endpoint
from assistant.errors import ConfigError
from assistant.offline import count_tokens

if TYPE_CHECKING:
    from assistant.settings import Settings


class OpenAIEmbedder:
    """Remote embedder; ``model_id`` is the endpoint's model name."""

    max_tokens = 8191

    def __init__(self, model: str, base_url: str | None, api_key: str | None, timeout: float) -> None:
        if not (base_url or api_key):
            raise ConfigError(
                "ingest.embedder=openai needs LITASSIST_INGEST__EMBEDDING_BASE_URL or LITASSIST_LLM__API_KEY"
            )
        self.model_id = model
        self._endpoint = Endpoint(base_url, api_key, model, timeout, "openai embedder")

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAIEmbedder:
        ing, llm = settings.ingest, settings.llm
        key = ing.embedding_api_key or llm.api_key
        return cls(
            model=ing.embedding_model,
            base_url=ing.embedding_base_url or llm.base_url,
            api_key=key.get_secret_value() if key else None,
            timeout=llm.timeout,
        )

    def count_tokens(self, text: str) -> int:
        return count_tokens(text)  # tiktoken, offline, special tokens treated as text

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, 1), dtype=np.float32)
        try:
            resp = self._endpoint.client.embeddings.create(model=self.model_id, input=texts)
        except Exception as err:
            raise self._endpoint.error(err, "embedding") from None
        vecs = np.array([d.embedding for d in sorted(resp.data, key=lambda d: d.index)], dtype=np.float32)
        return vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None)
