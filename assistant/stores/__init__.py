"""Stores: the vector store (Chroma, behind a Protocol), the paper registry and the BM25 sidecar."""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class VectorStore(Protocol):
    """Where chunk vectors live. Ids are chunk ids; metadata carries at least ``paper_id``."""

    def upsert(self, ids: list[str], vectors: np.ndarray, documents: list[str], metadatas: list[dict[str, Any]]) -> None: ...

    def delete(self, ids: list[str]) -> None: ...

    def ids(self, paper_id: str | None = None) -> list[str]: ...

    def count(self) -> int: ...

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]: ...

    def query(self, vector: np.ndarray, n: int, paper_ids: list[str] | None = None) -> list[tuple[str, float]]:
        """(chunk id, cosine similarity) best first; optionally only chunks of ``paper_ids``."""
        ...

    def drop(self) -> None: ...
