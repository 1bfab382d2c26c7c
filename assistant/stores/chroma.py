"""Chroma vector store: ``PersistentClient`` under the data dir, or ``HttpClient`` for a server."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from assistant.errors import BackendError
from assistant.locking import StoreLock, WriteLock
from assistant.stores import paper_of

if TYPE_CHECKING:
    from assistant.settings import Settings


def make_client(settings: Settings) -> Any:
    """A Chroma client for the configured mode (telemetry off)."""
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    store = settings.store
    if store.chroma_host:
        from assistant.stores.deadline import bound, probe

        probe(store)  # a server that never answers fails here, within store.timeout
        try:
            return bound(chromadb.HttpClient(
                host=store.chroma_host, port=store.chroma_port, ssl=store.chroma_ssl, settings=chroma_settings
            ), store)
        except Exception as err:  # chromadb raises plain ValueError/ConnectionError here
            raise BackendError(
                f"cannot reach the Chroma server at {store.chroma_host}:{store.chroma_port} ({err})"
            ) from err
    path = settings.data_dir / "chroma"
    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(path), settings=chroma_settings)


@dataclass
class _View:
    """This process's one client of a local store folder, and the registry generation its view holds
    of each collection there.

    A local Chroma client loads the vector index once and never sees what another process writes
    later: after an ``ingest`` in another terminal, a running Gradio app or Slack bot searched the old
    vectors (new papers reached it only through BM25; after a ``--rebuild``, deleted ones). So every
    store of one folder shares one client, and when a collection's registry generation moves past the
    view's, the client is closed and opened again, which reloads the index from disk. That happens
    under the store's write lock (no read or write of any thread or process is in flight, and the
    stores of the folder pick up the new client under their lock, :meth:`ChromaStore._current`), and
    not while an ingest of this process writes the folder (its client sees its own writes,
    :meth:`ChromaStore.own_writes`), nor while one of another process is between its writes:
    re-opened per question, a large index would be reloaded from disk (seconds) by every question
    asked during a long ingest, so the view catches up once it has finished (:meth:`ChromaStore.sync`).
    While a writer is inside or waiting (a ``--rebuild`` holds the store lock throughout) the re-open
    waits for it; a read that had to wait for another process's writer re-opens before it searches. Lock order: the store
    lock, then ``_VIEWS_LOCK``."""

    client: Any
    generations: dict[str, int]
    epoch: int = 0
    own_writers: int = 0

    def stale(self, name: str, generation: int | None) -> bool:
        return generation is not None and not self.own_writers and self.generations.get(name) != generation


_VIEWS: dict[str, _View] = {}
_VIEWS_LOCK = threading.Lock()


def _local_view(settings: Settings, generation: int | None, lock: StoreLock) -> _View:
    """The shared client of ``settings``' local store folder, re-opened when ``generation`` (the
    collection's registry generation, None when unknown) is not the one its view holds."""
    key, name = str((settings.data_dir / "chroma").resolve()), settings.collection_name()
    with _VIEWS_LOCK:
        view = _VIEWS.get(key)
        if view is None:
            view = _VIEWS[key] = _View(make_client(settings), {} if generation is None else {name: generation})
        if not view.stale(name, generation):
            return view
    if WriteLock.held(settings.data_dir) and not lock.writer_active():
        return view  # another process is ingesting, between writes: catch up when it is done
    # (a writer inside or waiting, e.g. a rebuild: every read waits for it anyway, and must then read anew)
    with lock.writing(), _VIEWS_LOCK:  # nobody is inside the store while its client is replaced
        if view.stale(name, generation):
            _reopen(view, settings)
            view.generations[name] = generation  # type: ignore[assignment]  # stale() implies not None
    return view


def _reopen(view: _View, settings: Settings) -> None:
    """Replace the view's client by a new one, which reads the store from disk (call holding the
    store's write lock and ``_VIEWS_LOCK``)."""
    with contextlib.suppress(Exception):
        view.client.close()
    view.client, view.epoch = make_client(settings), view.epoch + 1


# A collection of up to this many vectors is searched with ef = this (exhaustive for it: ~1-2 ms at 1,300).
# Below that, HNSW results depend on how the graph happened to be built: two ingests of the seed corpus
# (1,300 vectors) at ef 200 found different top-50s and refused different questions out-of-fold. Chroma
# applies ef when it loads the index, so a process that ingests and then answers keeps the ef of the open.
EXACT_UP_TO = 5000


def _with_search_ef(col: Any, ef: int) -> Any:
    """``col`` searching with HNSW breadth ``ef`` (``store.search_ef``; stored with the collection, so it
    is written only when it differs, e.g. for a collection made before the setting existed)."""
    with contextlib.suppress(Exception):  # a server without collection configuration keeps its default
        if ((col.configuration or {}).get("hnsw") or {}).get("ef_search") != ef:
            col.modify(configuration={"hnsw": {"ef_search": ef}})
    return col


class ChromaStore:
    """One Chroma collection of chunk vectors (cosine space, our own embeddings only)."""

    def __init__(
        self, client: Any, name: str, search_ef: int = 200, lock: StoreLock | None = None, view: _View | None = None
    ) -> None:
        self.name = name
        self.search_ef = search_ef
        self._settings: Settings | None = None  # set for a local store (ChromaStore.open): what sync() re-opens
        self._lock = lock  # local files: readers and writers of other processes take turns (StoreLock)
        self._view = view  # a local store follows its folder's shared client (_View)
        # embedding_function=None: Chroma must never load its default (downloading) model.
        with self._writing():
            self._client, self._epoch = (view.client, view.epoch) if view else (client, 0)  # read under the lock
            self._col = _with_search_ef(self._client.get_or_create_collection(
                name=name, embedding_function=None, metadata={"hnsw:space": "cosine"}
            ), search_ef)

    def _reading(self) -> AbstractContextManager[bool]:
        return self._lock.reading() if self._lock else nullcontext(False)

    def _writing(self) -> AbstractContextManager[bool]:
        return self._lock.writing() if self._lock else nullcontext(False)

    def _current(self) -> Any:
        """The collection, from the folder's current client (call with the store lock held: the client
        is replaced only under its write lock)."""
        view = self._view
        if view is not None and view.epoch != self._epoch:
            self._client, self._epoch = view.client, view.epoch
            self._col = self._client.get_collection(name=self.name, embedding_function=None)
        return self._col

    @contextmanager
    def own_writes(self, generation: Callable[[], int]) -> Iterator[None]:
        """Held while an ingest of this process writes the store: the client sees its own writes, so a
        question meanwhile does not re-open it; afterwards the view holds registry ``generation()``."""
        view = self._view
        if view is None:
            yield
            return
        with _VIEWS_LOCK:
            view.own_writers += 1
        try:
            yield
        finally:
            with _VIEWS_LOCK:
                view.own_writers -= 1
                with contextlib.suppress(Exception):  # a registry that cannot answer: re-opened next time
                    view.generations[self.name] = generation()

    @classmethod
    def open(cls, settings: Settings, vectors: int = 0, generation: int | None = None) -> ChromaStore:
        """The collection of ``settings``; ``vectors`` (how many it holds, from the registry) decides
        the search breadth: a collection of at most :data:`EXACT_UP_TO` vectors is searched exhaustively,
        so every index of the same papers returns the same neighbours, whatever its graph. A local
        store whose view is older than registry ``generation`` is re-read from disk (:class:`_View`)."""
        ef = settings.store.search_ef
        if vectors <= EXACT_UP_TO:  # not max(ef, vectors): an index loaded now keeps its ef as it grows
            ef = max(ef, EXACT_UP_TO)
        if settings.store.chroma_host:  # a server serves every client its current vectors
            return cls(make_client(settings), settings.collection_name(), ef)
        lock = StoreLock(settings.data_dir)
        store = cls(None, settings.collection_name(), ef, lock, _local_view(settings, generation, lock))
        store._settings = settings
        return store

    def sync(self, generation: int) -> None:
        """Bring a local store's view up to registry ``generation`` if it lags (a re-open put off while
        another process was ingesting); a dictionary lookup when it does not."""
        if self._settings is not None and self._lock is not None:
            _local_view(self._settings, generation, self._lock)

    @property
    def collection(self) -> Any:
        with self._reading():
            return self._current()

    def upsert(
        self, ids: list[str], vectors: np.ndarray, metadatas: list[dict[str, Any]], documents: list[str] | None = None
    ) -> None:
        """Store vectors with their metadata; ``documents`` only when something will read them back."""
        if ids:
            with self._writing():
                self._current().upsert(ids=ids, embeddings=vectors, metadatas=metadatas, documents=documents)

    def set_metadata(self, ids: list[str], metadatas: list[dict[str, Any]]) -> None:
        """Replace the metadata of stored vectors (e.g. a paper gained a source)."""
        if ids:
            with self._writing():
                self._current().update(ids=ids, metadatas=metadatas)

    def delete(self, ids: list[str]) -> None:
        if ids:
            with self._writing():
                self._current().delete(ids=ids)

    def ids(self, paper_id: str | None = None) -> list[str]:
        where = {"paper_id": paper_id} if paper_id else None
        with self._reading():
            return list(self._current().get(where=where, include=[])["ids"])

    def vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        """Stored vectors by chunk id (for registry rows without their copy, and the copies' backfill)."""
        if not ids:
            return {}
        with self._reading():
            res = self._current().get(ids=ids, include=["embeddings"])
        return {cid: np.asarray(vec, dtype=np.float32) for cid, vec in zip(res["ids"], res["embeddings"], strict=True)}

    def warm(self) -> None:
        """Load the vector index into memory now (Chroma loads it on the first read of any vector:
        seconds for a large collection)."""
        with self._reading():
            self._current().get(limit=1, include=["embeddings"])

    def count(self) -> int:
        with self._reading():
            return int(self._current().count())

    def query(
        self, vector: np.ndarray, n: int, where: dict[str, Any] | None = None
    ) -> list[tuple[str, str, float]]:
        """(chunk id, paper id, cosine similarity) best first, among chunks whose metadata match ``where``.

        No ``count()`` first: Chroma returns fewer than ``n`` when it holds fewer, and an empty list
        when it holds none. No metadata either: reading it back is a SQLite lookup per result (9 of 25 ms
        for 100 results at 51k chunks, 28 ms for 600), and the paper id is part of the chunk id.
        """
        if n <= 0:
            return []
        epoch = self._view.epoch if self._view else 0
        with self._reading() as waited:
            if not waited or self._view is None or self._view.own_writers:
                return self._search(vector, n, where)
        self._after_writer(epoch)  # it waited for another process's writer: what that wrote is on disk only
        with self._reading():
            return self._search(vector, n, where)

    def _search(self, vector: np.ndarray, n: int, where: dict[str, Any] | None) -> list[tuple[str, str, float]]:
        try:
            res = self._current().query(query_embeddings=[vector], n_results=n, where=where, include=["distances"])
        except Exception as err:  # chromadb's own errors ('pool timed out while waiting for an open connection')
            said = " ".join(str(err).split()) or "no message"
            raise BackendError(f"the vector store failed to search: {said} ({type(err).__name__})") from err
        return [(cid, paper_of(cid), 1.0 - float(d)) for cid, d in zip(res["ids"][0], res["distances"][0], strict=True)]

    def _after_writer(self, epoch: int) -> None:
        """Re-open the folder's client after a read waited for a writer of another process (a
        ``--rebuild``, a write batch), unless it was re-opened since ``epoch`` or this process writes."""
        if self._view is None or self._settings is None or self._lock is None:
            return
        with self._lock.writing(), _VIEWS_LOCK:
            if self._view.epoch == epoch and not self._view.own_writers:
                _reopen(self._view, self._settings)

    def drop(self) -> None:
        with self._writing():
            self._current()
            with contextlib.suppress(Exception):  # absent already
                self._client.delete_collection(self.name)
            self._col = _with_search_ef(self._client.get_or_create_collection(
                name=self.name, embedding_function=None, metadata={"hnsw:space": "cosine"}
            ), self.search_ef)
