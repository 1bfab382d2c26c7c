"""The index: registry + Chroma collection + BM25 sidecar + embedder, opened together."""

from __future__ import annotations

import fcntl
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

import numpy as np

from assistant.embedders import get_embedder
from assistant.embedders.cache import CachedEmbedder
from assistant.errors import IndexMissingError
from assistant.models import Chunk, Paper
from assistant.offline import ensure_offline
from assistant.settings import Settings
from assistant.stores.bm25 import BM25Index
from assistant.stores.chroma import ChromaStore
from assistant.stores.registry import Registry


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


EMPTY_HINT = "the index is empty: run `litassist ingest ../shared/corpus/hf-daily-papers` (or your listing files)"


class Index:
    """Everything retrieval and ingest need about one collection."""

    def __init__(self, settings: Settings) -> None:
        ensure_offline()
        self.settings = settings
        self.dir = settings.index_dir()
        self.registry = Registry(self.dir / "registry.sqlite")
        self.store = ChromaStore.open(settings)
        self._bm25: BM25Index | None = None
        self._query_cache: dict[str, np.ndarray] = {}
        self._lock = threading.RLock()

    @classmethod
    def open(cls, settings: Settings, *, create: bool = False) -> Index:
        """Open the index; unless ``create``, an empty index raises :class:`IndexMissingError`."""
        if not create and not (settings.index_dir() / "registry.sqlite").exists():
            raise IndexMissingError(f"{EMPTY_HINT} (data dir: {settings.data_dir})")
        index = cls(settings)
        if not create and index.registry.counts()[0] == 0:
            raise IndexMissingError(f"{EMPTY_HINT} (data dir: {settings.data_dir})")
        return index

    @cached_property
    def embedder(self) -> CachedEmbedder:
        return CachedEmbedder(
            get_embedder(self.settings),
            self.settings.cache_path() / "embeddings.sqlite",
            batch_size=self.settings.ingest.batch_size,
        )

    # --- maintenance --------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop this collection's vectors, registry rows and keyword index (``--rebuild``)."""
        self.store.delete(self.store.ids())  # not drop(): readers in other processes hold this collection
        self.registry.clear()
        with _file_lock(self.dir / "bm25.lock"):  # a reader in another process may be loading it
            shutil.rmtree(self.dir / "bm25", ignore_errors=True)
        self._bm25 = None

    def reconcile(self) -> tuple[list[str], set[str]]:
        """Compare Chroma with the registry (one pass over the ids).

        Returns the orphan vectors (no registered chunk: an ingest interrupted before its registry
        write) and the papers missing vectors (registered chunks absent from Chroma, e.g. a wiped store).
        """
        have, registered = set(self.store.ids()), set(self.registry.chunk_ids())
        if have == registered:
            return [], set()
        missing = registered - have
        return sorted(have - registered), {c.paper_id for c in self.registry.chunks() if c.id in missing}

    def ensure_keyword_index(self) -> BM25Index:
        """The BM25 sidecar, rebuilt when the registry changed since it was built (thread- and
        process-safe: one builder at a time, readers see the old or the new sidecar, never half)."""
        gen = self.registry.generation()
        if self._bm25 is not None and self._bm25.generation == gen:
            return self._bm25
        with self._lock, _file_lock(self.dir / "bm25.lock"):
            gen = self.registry.generation()
            if self._bm25 is not None and self._bm25.generation == gen:
                return self._bm25
            folder = self.dir / "bm25"
            loaded = BM25Index.load(folder)
            if loaded is None or loaded.generation != gen:
                # one keyword document per paper: title + the text of its chunks (= its abstract)
                papers = self.registry.papers()
                loaded = BM25Index.build([p.id for p in papers], [f"{p.title}\n{p.abstract}" for p in papers], gen)
                loaded.save(folder)
            self._bm25 = loaded
            return loaded

    # --- lookups ------------------------------------------------------------------------------
    @cached_property
    def papers(self) -> dict[str, Paper]:
        return {p.id: p for p in self.registry.papers()}

    @cached_property
    def chunks(self) -> dict[str, Chunk]:
        return {c.id: c for c in self.registry.chunks()}

    @cached_property
    def chunks_by_paper(self) -> dict[str, list[Chunk]]:
        out: dict[str, list[Chunk]] = {}
        for c in self.chunks.values():
            out.setdefault(c.paper_id, []).append(c)
        return out

    def refresh(self) -> None:
        """Drop cached lookups when another process changed the index since they were read (and
        re-open the collection, which a ``--rebuild`` elsewhere replaces)."""
        gen = self.registry.generation()
        if getattr(self, "_seen_generation", gen) != gen:
            with self._lock:
                for name in ("papers", "chunks", "chunks_by_paper", "_profiles"):
                    self.__dict__.pop(name, None)
                self.store = ChromaStore.open(self.settings)
        self._seen_generation = gen

    def embed_query(self, text: str) -> np.ndarray:
        vec = self._query_cache.get(text)
        if vec is None:
            vec = self.embedder.inner.embed([text])[0]
            if len(self._query_cache) > 1024:
                self._query_cache.clear()
            self._query_cache[text] = vec
        return vec

    def stats(self) -> dict[str, object]:
        papers, chunks = self.registry.counts()
        return {
            "papers": papers,
            "chunks": chunks,
            "vectors": self.store.count(),
            "collection": self.settings.collection_name(),
            "embedding_model": self.embedder.model_id,
            "data_dir": str(self.settings.data_dir),
            "store": (
                f"http://{self.settings.store.chroma_host}:{self.settings.store.chroma_port}"
                if self.settings.store.chroma_host
                else str(self.settings.data_dir / "chroma")
            ),
        }
