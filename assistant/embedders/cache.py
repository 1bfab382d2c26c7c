"""Embedding cache keyed by (model id, sha256 of the text): nothing is ever embedded twice.

An embedder that also gives token vectors (``embed_tokens``, the local MiniLM) has them kept here too,
from the same model pass, as sign bits (one bit per dimension: 48 bytes a word piece); the judgement
matches a question's rare words against them (:mod:`assistant.evidence`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
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
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS tokens (model TEXT, key TEXT, bits BLOB, PRIMARY KEY (model, key))"
        )
        self.has_tokens = bool(getattr(inner, "has_tokens", False))  # the model gives token vectors too
        self.token_width = int(getattr(inner, "dim", 0)) // 8  # bytes of one word piece's sign bits
        self._write = threading.Lock()  # one connection, shared by the threads of Gradio and Slack

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def piece_counts(self, texts: list[str]) -> list[int] | None:
        """How many word pieces the model gives each of ``texts`` (as :meth:`tokens` holds them), or None
        when it gives no token vectors."""
        return self.inner.piece_counts(texts) if self.has_tokens else None  # type: ignore[attr-defined]

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

    def embed(
        self, texts: list[str], on_batch: Callable[[int], None] | None = None, keep_tokens: bool = False
    ) -> np.ndarray:
        """Vectors for ``texts``; only cache misses reach the model, in length-sorted batches. With
        ``keep_tokens`` (titles and sentences, whose word pieces the judgement reads) the same pass
        stores their token bits too."""
        keys = [text_key(t) for t in texts]
        cached = self.lookup(texts)
        uses = Counter(keys)
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in cached}
        missing = sorted(todo.items(), key=lambda kv: len(kv[1]))
        if on_batch and len(todo) < len(uses):
            on_batch(sum(n for k, n in uses.items() if k not in todo))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            vecs = self._compute(batch, keep_tokens)
            for (k, _), v in zip(batch, vecs, strict=True):
                cached[k] = v.astype(np.float32)
            self.computed += len(batch)
            if on_batch:
                on_batch(sum(uses[k] for k, _ in batch))
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return np.stack([cached[k] for k in keys])

    def _compute(self, batch: list[tuple[str, str]], keep_tokens: bool = False) -> np.ndarray:
        """Run the model on (key, text) pairs and store what it gives (vectors, and with
        ``keep_tokens`` the token bits of the same pass), in one transaction."""
        texts = [t for _, t in batch]
        tokens: list[np.ndarray] = []
        if keep_tokens and self.has_tokens:
            vecs, tokens = self.inner.embed_tokens(texts)  # type: ignore[attr-defined]
        else:
            vecs = self.inner.embed(texts)
        with self._write:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO vectors(model, key, vec) VALUES (?,?,?)",
                [(self.model_id, k, v.astype(np.float32).tobytes()) for (k, _), v in zip(batch, vecs, strict=True)],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO tokens(model, key, bits) VALUES (?,?,?)",
                [(self.model_id, k, token_bits(t).tobytes()) for (k, _), t in zip(batch, tokens, strict=False)],
            )
            self._db.execute("COMMIT")
        return vecs

    def tokens(self, texts: list[str]) -> list[np.ndarray] | None:
        """The token sign bits of each of ``texts`` (rows of packed bits, one per word piece; see
        :func:`token_bits`), or None when the embedder gives no token vectors. Texts the cache lacks
        bits for go through the model once (their vectors are stored again with them)."""
        if not self.has_tokens:
            return None
        keys = [text_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        uniq = list(dict.fromkeys(keys))
        for start in range(0, len(uniq), 500):
            found.update(self._stored_tokens(uniq[start : start + 500]))
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in found}.items(), key=lambda kv: len(kv[1]))
        for start in range(0, len(todo), self.batch_size):
            batch = todo[start : start + self.batch_size]
            self._compute(batch, keep_tokens=True)
            self.computed += len(batch)
            found.update(self._stored_tokens([k for k, _ in batch]))
        return [found[k] for k in keys]

    def _stored_tokens(self, keys: list[str]) -> dict[str, np.ndarray]:
        marks = ",".join("?" * len(keys))
        rows = self._db.execute(f"SELECT key, bits FROM tokens WHERE model=? AND key IN ({marks})", (self.model_id, *keys))
        return {str(k): np.frombuffer(b, dtype=np.uint8).reshape(-1, self.token_width) for k, b in rows}


def token_bits(vectors: np.ndarray) -> np.ndarray:
    """Token vectors as sign bits, packed (n x dim/8 bytes): a word piece keeps which side of zero each
    dimension is on. Question pieces are packed the same way; matched so, the bits keep what the full
    vectors give the judgement (evals/README.md) at 1/32 of their size."""
    return np.packbits(np.asarray(vectors) > 0, axis=1)

