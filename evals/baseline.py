"""The plain llama-index pipeline as a retrieval baseline (comparison row ``llamaindex-default``).

``VectorStoreIndex.from_vector_store(ChromaVectorStore(our collection), embed_model=<our embedder>)``
with the default retriever, chunks aggregated to papers by the ``paper_id`` metadata (a paper ranks at
its best chunk). Our Chroma records have no ``_node_content`` metadata: ChromaVectorStore then falls back
to its legacy reader, which builds a ``TextNode`` from the stored document (the chunk's title + text)
and keeps ``paper_id``/``chunk`` as metadata. llama-index is imported only when a baseline is built.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.embedders import Embedder
    from assistant.index import Index

NAME = "llamaindex-default"
CHUNKS_PER_PAPER = 5  # chunks asked for per wanted paper (papers average ~4.5 chunks)


@lru_cache(maxsize=1)
def embedding_class() -> type:
    """A llama-index ``BaseEmbedding`` that wraps one of our :class:`Embedder` objects."""
    from llama_index.core.embeddings import BaseEmbedding
    from pydantic import PrivateAttr

    class LocalEmbedding(BaseEmbedding):
        """Our embedder (normally the local MiniLM) behind llama-index's embedding interface."""

        _embedder: Any = PrivateAttr()

        def __init__(self, embedder: Embedder, **kwargs: Any) -> None:
            super().__init__(model_name=embedder.model_id, **kwargs)
            self._embedder = embedder

        @classmethod
        def class_name(cls) -> str:
            return "LitassistLocalEmbedding"

        def _get_query_embedding(self, query: str) -> list[float]:
            return [float(x) for x in self._embedder.embed([query])[0]]

        def _get_text_embedding(self, text: str) -> list[float]:
            return [float(x) for x in self._embedder.embed([text])[0]]

        def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
            return [[float(x) for x in row] for row in self._embedder.embed(texts)]

        async def _aget_query_embedding(self, query: str) -> list[float]:
            return self._get_query_embedding(query)

    return LocalEmbedding


def _no_remote_llm() -> None:
    """Make llama-index's global LLM a MockLLM unless one is set, so nothing reaches for OpenAI."""
    from llama_index.core import Settings as LlamaSettings
    from llama_index.core.llms import MockLLM

    if getattr(LlamaSettings, "_llm", None) is None:
        LlamaSettings.llm = MockLLM()


class LlamaIndexBaseline:
    """Ranks papers with llama-index's default vector retriever over our Chroma collection."""

    name = NAME

    def __init__(self, index: Index) -> None:
        from assistant.offline import ensure_offline

        ensure_offline()
        from llama_index.core import VectorStoreIndex
        from llama_index.vector_stores.chroma import ChromaVectorStore

        _no_remote_llm()
        self.index = index
        self.embed_model = embedding_class()(index.embedder.inner)
        store = ChromaVectorStore(chroma_collection=index.store.collection)
        self.vector_index = VectorStoreIndex.from_vector_store(store, embed_model=self.embed_model)

    def retrieve(self, question: str, k: int = 10) -> list[str]:
        """Up to ``k`` paper ids, best first (from ``CHUNKS_PER_PAPER * k`` retrieved chunks)."""
        retriever = self.vector_index.as_retriever(similarity_top_k=CHUNKS_PER_PAPER * k)
        ranked: list[str] = []
        for hit in retriever.retrieve(question):
            pid = hit.node.metadata.get("paper_id")
            if isinstance(pid, str) and pid not in ranked:
                ranked.append(pid)
        return ranked[:k]
