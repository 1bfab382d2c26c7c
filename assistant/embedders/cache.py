"""Embedding cache keyed by (model id, sha256 of the text): nothing is ever embedded twice."""

from __future__ import annotations

import hashlib
import sqlite3
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from assistant.embedders import Embedder


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CachedEmbedder:
    """Wraps an :class:`Embedder`; looks texts up in SQLite first and stores what it computes."""

    def __init__(self, inner: Embedder, path: Path, batch_size: int = 32) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.inner = inner
        self.model_id = inner.model_id
        self.max_tokens = inner.max_tokens
        self.batch_size = batch_size
        self.computed = 0  # texts actually sent to the model (for the ingest summary)
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key TEXT, vec BLOB, PRIMARY KEY (model, key))"
        )

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def lookup(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Cached vectors for the texts that have one, by text key."""
        found: dict[str, np.ndarray] = {}
        keys = [text_key(t) for t in texts]
        for start in range(0, len(keys), 500):
            part = keys[start : start + 500]
            marks = ",".join("?" * len(part))
            rows = self._db.execute(
                f"SELECT key, vec FROM vectors WHERE model=? AND key IN ({marks})", (self.model_id, *part)
            )
            for key, blob in rows:
                found[key] = np.frombuffer(blob, dtype=np.float32)
        return found

    def embed(self, texts: list[str], on_batch: Callable[[int], None] | None = None) -> np.ndarray:
        """Vectors for ``texts``; only cache misses reach the model, in length-sorted batches."""
        keys = [text_key(t) for t in texts]
        cached = self.lookup(texts)
        uses = Counter(keys)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in cached}
        missing = sorted(todo.items(), key=lambda kv: len(kv[1]))
        if on_batch and len(todo) < len(uses):
            on_batch(sum(n for k, n in uses.items() if k not in todo))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            vecs = self.inner.embed([t for _, t in batch])
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(model, key, vec) VALUES (?,?,?)",
                [(self.model_id, k, v.astype(np.float32).tobytes()) for (k, _), v in zip(batch, vecs, strict=True)],
            )
            self._db.execute("COMMIT")
            for (k, _), v in zip(batch, vecs, strict=True):
                cached[k] = v.astype(np.float32)
            self.computed += len(batch)
            if on_batch:
                on_batch(sum(uses[k] for k, _ in batch))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([cached[k] for k in keys])
