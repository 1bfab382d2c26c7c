"""Stores: the vector store (Chroma, behind a Protocol), the paper registry and the BM25 sidecar."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class VectorStore(Protocol):
    """Where chunk vectors live. Ids are chunk ids; metadata carries ``paper_id``, ``chunk``, and the
    paper's ``year`` and ``sources`` (a list) when known, which filters match inside the store."""

    def upsert(
        self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]], documents: list[str] | None = None
    ) -> None: ...

    def set_metadata(self, ids: list[str], metadatas: list[dict[str, Any]]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def ids(self, paper_id: str | None = None) -> list[str]: ...

    def count(self) -> int: ...

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]: ...

    def query(self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None) -> list[tuple[str, str, float]]:
        """(chunk id, paper id, cosine similarity) best first; ``where`` filters on chunk metadata."""
        ...

    def drop(self) -> None: ...


def paper_of(chunk_id: str) -> str:
    """The paper id a chunk id names (chunk ids are ``<paper id>#<stamp>-<n>``, see ingest/chunking.py)."""
    return chunk_id.rsplit("#", 1)[0]


def chunk_metadata(paper_id: str, chunk: int, year: int | None, sources: list[str]) -> dict[str, Any]:
    """The metadata stored with a chunk vector (Chroma holds no None and no empty list)."""
    meta: dict[str, Any] = {"paper_id": paper_id, "chunk": chunk}
    if year is not None:
        meta["year"] = year
    if sources:
        meta["sources"] = list(sources)
    return meta
