"""The index: registry + Chroma collection + BM25 sidecar + embedder, opened together."""

from __future__ import annotations

import contextlib
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
from assistant.offline import ensure_offline
from assistant.profiles import embed_sentences
from assistant.settings import Settings
from assistant.stores import chunk_metadata, paper_of
from assistant.stores.bm25 import BM25Index
from assistant.stores.chroma import ChromaStore
from assistant.stores.registry import Registry
from assistant.stores.views import ChunksByPaperView, ChunkView, PaperView
from assistant.wordpieces import paper_token_bits


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


INGEST_OPEN = "ingest_open"  # registry meta key set while an ingest writes (cleared when it finishes)
CHUNK_META = "chunk_metadata"  # registry meta key: version of the metadata stored with each vector
CHUNK_META_VERSION = 2  # paper_id, chunk, year, sources
VECTOR_COPIES = "vector_copies"  # registry meta: chunk and paper rows hold the vectors scoring reads
EMPTY_HINT = "the index is empty: run `litassist ingest ../shared/corpus/hf-daily-papers` (or your listing files)"


class Index:
    """Everything retrieval and ingest need about one collection."""

    def __init__(self, settings: Settings) -> None:
        ensure_offline()
        self.settings = settings
        self.dir = settings.index_dir()
        self.registry = Registry(self.dir / "registry.sqlite")
        self._seen_generation = self.registry.generation()  # what the lookups and the store's view hold
        self.store = ChromaStore.open(settings, self.registry.counts()[1], self._seen_generation)
        self._bm25: BM25Index | None = None
        self._query_cache: dict[str, tuple[np.ndarray, tuple[np.ndarray, list[tuple[int, int]]] | None]] = {}
        self._sources: tuple[int, list[str]] | None = None
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

    def prefetch(self) -> threading.Thread:
        """Load the vector index and the BM25 sidecar in a background thread, so the first question
        does not wait for them one after the other and after the query embedder (Chroma loads its
        index outside the GIL). Errors are left to the question that follows, which reports them.
        Not a daemon: a process that ends sooner (a bad filter) waits for it instead of exiting
        while Chroma's native code runs (a crash); a Chroma server loads its own index, so then only
        the sidecar is read."""

        def run() -> None:
            with contextlib.suppress(Exception):
                if not self.settings.store.chroma_host:
                    self.store.warm()
                self.ensure_keyword_index()

        thread = threading.Thread(target=run, name="litassist-prefetch", daemon=False)
        thread.start()
        return thread

    # --- maintenance --------------------------------------------------------------------------
    def reset(self) -> None:
        """Drop this collection's vectors, registry rows and keyword index (``--rebuild``)."""
        self.store.delete(self.store.ids())  # not drop(): readers in other processes hold this collection
        self.registry.clear()
        with _file_lock(self.dir / "bm25.lock"):  # a reader in another process may be loading it
            shutil.rmtree(self.dir / "bm25", ignore_errors=True)
        self._bm25 = None

    def reconcile(self) -> tuple[list[str], set[str]]:
        """Compare Chroma with the registry.

        Returns the orphan vectors (no registered chunk: an ingest interrupted before its registry
        write) and the papers missing vectors (registered chunks absent from Chroma, e.g. a wiped store).
        Lists every id only when the last ingest did not finish or the counts differ; otherwise the
        two agree and this costs two counts.
        """
        if self.registry.get_meta(INGEST_OPEN) is None and self.store.count() == self.registry.counts()[1]:
            return [], set()
        have, registered = set(self.store.ids()), set(self.registry.chunk_ids())
        if have == registered:
            return [], set()
        missing = registered - have
        return sorted(have - registered), {paper_of(cid) for cid in missing}

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
            loaded = self._bm25 if self._bm25 is not None else BM25Index.load(folder)
            if loaded is not None and loaded.generation != gen:
                loaded = BM25Index.load(folder) or loaded  # another process may have brought it up to date
            if loaded is None or loaded.generation != gen:
                loaded = self._keyword_index_at(gen, loaded)
                loaded.save(folder)
            self._bm25 = loaded
            return loaded

    def _keyword_index_at(self, gen: int, old: BM25Index | None) -> BM25Index:
        """The BM25 index of generation ``gen``: ``old`` with the papers written since it was built
        replaced (cost in proportion to them), or a full build when there is no usable ``old``."""
        if old is not None and old.generation < gen:
            changed = list(self.registry.keyword_rows(since_generation=old.generation))
            new = old.updated(changed, gen)
            if new.n_docs == self.registry.counts()[0]:  # otherwise papers were removed (--rebuild)
                return new
        # one keyword document per paper: title + the text of its chunks (= its abstract), streamed
        return BM25Index.from_rows(self.registry.keyword_rows(), gen)

    def ensure_chunk_metadata(self) -> None:
        """Give every stored vector its paper's year and sources (indexes built before filters ran
        inside the store lack them); a no-op once done."""
        if self.registry.get_meta(CHUNK_META) == str(CHUNK_META_VERSION):
            return
        with self._lock, _file_lock(self.dir / "bm25.lock"):
            if self.registry.get_meta(CHUNK_META) == str(CHUNK_META_VERSION):
                return
            ids = self.registry.paper_ids()
            for start in range(0, len(ids), 256):
                papers = self.registry.get_many(ids[start : start + 256])
                cids, metas = [], []
                for p in papers.values():
                    for c in self.registry.chunks_of(p.id):
                        cids.append(c.id)
                        metas.append(chunk_metadata(p.id, c.index, p.year, p.sources))
                self.store.set_metadata(cids, metas)
            self.registry.set_meta(CHUNK_META, CHUNK_META_VERSION)

    def ensure_vector_copies(self) -> None:
        """Copy into the registry what scoring a question reads (indexes built before it kept them):
        each chunk's stored vector into its row, each paper's title + sentence vectors (from the
        embedding cache; an index older than sentence vectors gets them embedded) into its row.
        Scoring then reads a question's candidates in two queries instead of a Chroma ``get``
        (~0.1 ms per id) and a cache row per sentence. A no-op once done."""
        if self.registry.get_meta(VECTOR_COPIES) is not None:
            return
        with self._lock:
            while ids := self.registry.chunks_without_vectors(1000):
                found = self.store.vectors(ids)
                if not found:  # rows without a stored vector (a wiped store): reconcile repairs them
                    break
                self.registry.set_chunk_vectors(found)
            while pids := self.registry.papers_without_vectors(500):  # from the cache (embedded if absent)
                self.registry.set_text_vectors(embed_sentences(self.embedder, list(self.registry.get_many(pids).values())))
            self.registry.set_meta(VECTOR_COPIES, True)

    def ensure_token_copies(self) -> int:
        """Give every paper row its word-piece bits (indexes built before they were kept; see
        :mod:`assistant.wordpieces`): from the embedding cache, or one model pass over the paper's
        title and sentences where the cache lacks them. Returns the texts that went through the model.
        A no-op when every row has them (one indexed lookup), or without token vectors; until it has
        run, questions whose candidates lack them are scored without the word-piece features."""
        if not self.embedder.has_tokens or not self.registry.papers_without_tokens(1):
            return 0
        before = self.embedder.computed
        with self._lock:
            while pids := self.registry.papers_without_tokens(500):
                self.registry.set_token_bits(
                    paper_token_bits(self.embedder, list(self.registry.get_many(pids).values())) or {}
                )
        return self.embedder.computed - before

    def sources(self) -> list[str]:
        """Listing file names in the index (cached per registry generation)."""
        gen = self.registry.generation()
        if self._sources is None or self._sources[0] != gen:
            self._sources = (gen, self.registry.sources())
        return self._sources[1]

    # --- lookups (lazy: one SQLite row per lookup, see assistant/stores/views.py) ---------------
    @cached_property
    def papers(self) -> PaperView:
        return PaperView(self.registry)

    @cached_property
    def chunks(self) -> ChunkView:
        return ChunkView(self.registry)

    @cached_property
    def chunks_by_paper(self) -> ChunksByPaperView:
        return ChunksByPaperView(self.registry)

    def refresh(self) -> None:
        """Drop cached lookups when another process changed the index since they were read, and bring
        the vector store's view up to date (a local Chroma client does not see other processes' writes)."""
        gen = self.registry.generation()
        if self._seen_generation != gen:
            with self._lock:
                for name in ("papers", "chunks", "chunks_by_paper", "_profiles"):
                    self.__dict__.pop(name, None)
        self.store.sync(gen)  # also a view left behind while another process ingested catches up
        self._seen_generation = gen

    def embed_query(self, text: str) -> np.ndarray:
        return self._query(text)[0]

    def query_tokens(self, text: str) -> tuple[np.ndarray, list[tuple[int, int]]] | None:
        """The question's word-piece vectors and, for each, the span of its word in ``text`` (from the
        same model pass as :meth:`embed_query`); None when the embedder gives no token vectors."""
        return self._query(text)[1]

    def _query(self, text: str) -> tuple[np.ndarray, tuple[np.ndarray, list[tuple[int, int]]] | None]:
        found = self._query_cache.get(text)
        if found is None:
            inner = self.embedder.inner
            if self.embedder.has_tokens:
                vecs, tokens = inner.embed_tokens([text])  # type: ignore[attr-defined]
                found = (vecs[0], (tokens[0], inner.word_spans(text)))  # type: ignore[attr-defined]
            else:
                found = (inner.embed([text])[0], None)
            if len(self._query_cache) > 1024:
                self._query_cache.clear()
            self._query_cache[text] = found
        return found

    def forget_queries(self) -> None:
        """Drop the in-process query-embedding cache (so a timing includes embedding the question)."""
        self._query_cache.clear()

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
