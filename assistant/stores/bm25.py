"""BM25 keyword index persisted beside the Chroma index (the sidecar).

One keyword document per paper (title + abstract, i.e. the text of its chunks): on the dev set this
ranks papers better than chunk-level BM25 aggregated to papers (recall@10 0.862 vs 0.865 but MRR
0.935 vs 0.875), and fuses better with chunk-level dense search.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import uuid
from collections import Counter
from pathlib import Path

import numpy as np

from assistant.text import terms

FORMAT = "papers-v2"  # bump when the document unit or tokenisation changes


class BM25Index:
    """bm25s over stemmed content terms; ``ids`` are paper ids."""

    def __init__(self, ids: list[str], retriever: object, df: dict[str, int], generation: int) -> None:
        self.ids = ids
        self._retriever = retriever
        self.df = df
        self.n_docs = len(ids)
        self.generation = generation

    @classmethod
    def build(cls, ids: list[str], texts: list[str], generation: int) -> BM25Index:
        import bm25s

        tokens = [terms(t) for t in texts]
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        if any(tokens):  # bm25s cannot index a corpus without a single term (max() of an empty vocabulary)
            retriever.index(tokens, show_progress=False)
        df: Counter[str] = Counter()
        for toks in tokens:
            df.update(set(toks))
        return cls(ids, retriever, dict(df), generation)

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        if self.df:
            self._retriever.save(str(tmp / "bm25"))  # type: ignore[attr-defined]
        (tmp / "meta.json").write_text(
            json.dumps({"format": FORMAT, "ids": self.ids, "df": self.df, "generation": self.generation}), encoding="utf-8"
        )
        old = folder.with_name(f"{folder.name}.old-{uuid.uuid4().hex[:8]}")
        with contextlib.suppress(FileNotFoundError):
            folder.rename(old)
        tmp.rename(folder)  # readers see the old sidecar, then the new one, never half of one
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> BM25Index | None:
        meta_file = folder / "meta.json"
        if not meta_file.exists():
            return None
        import bm25s

        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            return None
        retriever = bm25s.BM25.load(str(folder / "bm25")) if meta["df"] else bm25s.BM25()
        return cls(meta["ids"], retriever, meta["df"], int(meta["generation"]))

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency (unknown terms get the highest)."""
        n = self.df.get(term, 0)
        return math.log(1.0 + (self.n_docs - n + 0.5) / (n + 0.5))

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (aligned with ``ids``)."""
        toks = [t for t in terms(query) if t in self.df]
        if not toks or not self.ids or not self.df:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(toks), dtype=np.float32)  # type: ignore[attr-defined]
