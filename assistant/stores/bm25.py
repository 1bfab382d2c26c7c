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

from assistant.text import corrected_terms, terms

FORMAT = "papers-v3"  # bump when the document unit or tokenisation changes


class BM25Index:
    """bm25s over stemmed content terms; ``ids`` are paper ids, ``years`` (0 = none) and ``sources``
    (listing file names per paper) are aligned with them so filters become boolean masks."""

    def __init__(
        self, ids: list[str], retriever: object, df: dict[str, int], generation: int,
        years: list[int] | None = None, sources: list[list[str]] | None = None,
    ) -> None:  # fmt: skip
        self.ids = ids
        self._retriever = retriever
        self.df = df
        self.n_docs = len(ids)
        self.generation = generation
        self._query_terms: dict[str, list[str]] = {}
        self.years = np.asarray(years if years is not None else [0] * len(ids), dtype=np.int32)
        self.sources = sources if sources is not None else [[] for _ in ids]
        self._by_source: dict[str, np.ndarray] | None = None

    @classmethod
    def build(
        cls, ids: list[str], texts: list[str], generation: int,
        years: list[int | None] | None = None, sources: list[list[str]] | None = None,
    ) -> BM25Index:  # fmt: skip
        import bm25s

        tokens = [terms(t) for t in texts]
        retriever = bm25s.BM25(k1=1.2, b=0.75)
        if any(tokens):  # bm25s cannot index a corpus without a single term (max() of an empty vocabulary)
            retriever.index(tokens, show_progress=False)
        df: Counter[str] = Counter()
        for toks in tokens:
            df.update(set(toks))
        year_list = [y or 0 for y in years] if years is not None else None
        return cls(ids, retriever, dict(df), generation, year_list, sources)

    def mask(self, since: int | None, until: int | None, sources: list[str] | None) -> np.ndarray | None:
        """Papers passing a year range and/or any of ``sources`` (None = no filter); papers
        without a year fail a year filter."""
        if since is None and until is None and sources is None:
            return None
        keep = np.ones(self.n_docs, dtype=bool)
        if since is not None:
            keep &= self.years >= since
        if until is not None:
            keep &= (self.years <= until) & (self.years > 0)
        if sources is not None:
            if self._by_source is None:
                rows: dict[str, list[int]] = {}
                for i, names in enumerate(self.sources):
                    for name in names:
                        rows.setdefault(name, []).append(i)
                self._by_source = {name: np.asarray(r, dtype=np.int64) for name, r in rows.items()}
            hit = np.zeros(self.n_docs, dtype=bool)
            for name in sources:
                if name in self._by_source:
                    hit[self._by_source[name]] = True
            keep &= hit
        return keep

    def save(self, folder: Path) -> None:
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}")
        tmp.mkdir(parents=True)
        if self.df:
            self._retriever.save(str(tmp / "bm25"))  # type: ignore[attr-defined]
        (tmp / "meta.json").write_text(
            json.dumps({
                "format": FORMAT, "ids": self.ids, "df": self.df, "generation": self.generation,
                "years": self.years.tolist(), "sources": self.sources,
            }), encoding="utf-8"
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
        return cls(meta["ids"], retriever, meta["df"], int(meta["generation"]), meta["years"], meta["sources"])

    def idf(self, term: str) -> float:
        """Smoothed inverse document frequency (unknown terms get the highest)."""
        n = self.df.get(term, 0)
        return math.log(1.0 + (self.n_docs - n + 0.5) / (n + 0.5))

    def query_terms(self, query: str) -> list[str]:
        """The query's terms, typos corrected against this index's vocabulary ('trainng' -> 'train');
        remembered per query (retrieval and evidence both ask for them)."""
        cache = self._query_terms
        if query not in cache:
            if len(cache) > 1024:
                cache.clear()
            cache[query] = corrected_terms(query, self.df)
        return list(cache[query])

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document for ``query`` (aligned with ``ids``)."""
        toks = [t for t in self.query_terms(query) if t in self.df]
        if not toks or not self.ids or not self.df:
            return np.zeros(len(self.ids), dtype=np.float32)
        return np.asarray(self._retriever.get_scores(toks), dtype=np.float32)  # type: ignore[attr-defined]
