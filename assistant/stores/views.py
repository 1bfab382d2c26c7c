"""Read-only mapping views over the registry, so nothing loads every paper or chunk up front.

``index.papers[pid]``, ``pid in index.papers``, ``index.chunks[cid]`` and
``index.chunks_by_paper.get(pid, [])`` keep their meaning; each lookup reads one row from SQLite
(recent ones are kept in a small LRU). Iterating a view reads every id, so keep that to tools
that need the whole collection (evals, the UI's paper list).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Generic, TypeVar

from assistant.models import Chunk, Paper
from assistant.stores.registry import Registry

V = TypeVar("V")
_MISSING = object()


class _LRUView(Mapping[str, V], Generic[V]):
    def __init__(self, load: Callable[[str], V | None], keys: Callable[[], list[str]], size: int = 4096) -> None:
        self._load = load
        self._keys = keys
        self._size = size
        self._cache: OrderedDict[str, V | None] = OrderedDict()
        self._lock = threading.Lock()  # Gradio and Slack look papers up from many threads

    def _lookup(self, key: str) -> V | None:
        with self._lock:
            value = self._cache.get(key, _MISSING)
            if value is not _MISSING:
                self._cache.move_to_end(key)
                return value  # type: ignore[return-value]
        loaded = self._load(key)
        with self._lock:
            self._cache[key] = loaded
            if len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return loaded

    def __getitem__(self, key: str) -> V:
        value = self._lookup(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._lookup(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys())

    def __len__(self) -> int:
        return len(self._keys())


class PaperView(_LRUView[Paper]):
    """Papers by id, read on demand."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.get, registry.paper_ids)
        self._registry = registry

    def __len__(self) -> int:
        return self._registry.counts()[0]

    def many(self, ids: list[str]) -> dict[str, Paper]:
        """The registered papers among ``ids`` in one query (cached ones are not read again)."""
        found = {i: p for i in ids if (p := self._cache.get(i)) is not None and isinstance(p, Paper)}
        found |= self._registry.get_many([i for i in ids if i not in found])
        return found


class ChunkView(_LRUView[Chunk]):
    """Chunks by chunk id, read on demand."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(registry.chunk, registry.chunk_ids)


class ChunksByPaperView(_LRUView[list[Chunk]]):
    """A paper's chunks in order (``get(pid, [])`` for a paper without chunks), read on demand."""

    def __init__(self, registry: Registry) -> None:
        super().__init__(lambda pid: registry.chunks_of(pid) or None, registry.paper_ids, size=1024)
