"""Hybrid retrieval: Chroma dense search over chunks + BM25 over papers, fused per paper.

The dense query is the question's pooled vector plus its idf-weighted word pieces
(``retrieval.dense_query``). Dense chunk similarities are aggregated to papers (best chunk counts
once), BM25 ranks papers, and the two paper lists are fused: weighted reciprocal rank fusion (rrf_k=30,
dense weight 0.8) plus a small share of score fusion (the mean of each paper's z-scores within the two
lists, weight 0.15), which orders papers the ranks alone nearly tie. Tuned on SciFact train and the seed
dev sets together; see evals/README.md for the tables.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np

from assistant.errors import FilterError
from assistant.index import Index
from assistant.models import Filters, Hit
from assistant.wordpieces import idf_pooled

MODES = ("hybrid", "dense", "bm25")
# A filter passing at least this share of the papers is "broad": Chroma's ``where`` pre-filter costs in
# proportion to the chunks it matches (10k papers, 51k chunks: 178 ms for a 3-year range, 96 ms for one
# year, against 16 ms unfiltered), so such a query fetches the unfiltered nearest chunks, 1.5/share times
# as many (at most OVERFETCH_MAX: 100 cost 16 ms, 4,000 37 ms, 8,000 103 ms), and keeps those of papers
# passing the filter. A narrow filter matches few chunks and keeps ``where``.
BROAD_FILTER = 0.03
OVERFETCH_MAX = 5000


def check_filters(filters: Filters) -> None:
    """Raise :class:`FilterError` for a filter that can match nothing by construction."""
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise FilterError(f"filter since={filters.since} is after until={filters.until}")


def matching_sources(index: Index, filters: Filters) -> list[str] | None:
    """Listing file names matching the source filter (a case-insensitive substring); None = no filter."""
    if not filters.source:
        return None
    needle = filters.source.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].lower() or filters.source.lower()  # a path names its file
    return [s for s in index.sources() if needle in s.lower()]


def passes_any(index: Index, filters: Filters) -> bool:
    """Whether any indexed paper passes ``filters`` (an empty filter passes every paper)."""
    if filters.is_empty():
        return True
    sources = matching_sources(index, filters)
    if sources == []:
        return False
    allowed = index.ensure_keyword_index().mask(filters.since, filters.until, sources, filters.papers, filters.exclude)
    return allowed is None or bool(allowed.any())


def yearless_note(index: Index, filters: Filters) -> str:
    """' (302 of the 414 indexed papers have no year: a year filter leaves them out)' when ``filters``
    name years and some papers have none (a listing date without a year, 'May 16'), else ''."""
    if filters.since is None and filters.until is None:
        return ""
    years = index.ensure_keyword_index().years
    n = int((years <= 0).sum())
    return f" ({n} of the {len(years)} indexed papers have no year: a year filter leaves them out)" if n else ""


def chroma_where(filters: Filters, sources: list[str] | None) -> dict[str, Any] | None:
    """The filters as a Chroma ``where`` on chunk metadata (year, sources, paper ids in or out); papers without a year
    have no ``year`` key, so a year filter drops them."""
    conds: list[dict[str, Any]] = []
    if filters.since is not None:
        conds.append({"year": {"$gte": filters.since}})
    if filters.until is not None:
        conds.append({"year": {"$lte": filters.until}})
    if sources is not None:
        by_source = [{"sources": {"$contains": name}} for name in sources]
        conds.append(by_source[0] if len(by_source) == 1 else {"$or": by_source})
    if filters.papers is not None:
        conds.append({"paper_id": {"$in": list(filters.papers)}})
    if filters.exclude:
        conds.append({"paper_id": {"$nin": list(filters.exclude)}})
    if not conds:
        return None
    return conds[0] if len(conds) == 1 else {"$and": conds}


def _ranks(scores: np.ndarray) -> np.ndarray:
    """1-based rank of each score, best first (ties keep list order)."""
    ranks = np.empty(len(scores), dtype=np.float64)
    ranks[np.argsort(-scores, kind="stable")] = np.arange(1, len(scores) + 1)
    return ranks


class Retriever:
    """Retrieves papers for a question from an :class:`Index`."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.cfg = index.settings.retrieval

    def dense_chunks(
        self, question: str, n: int, where: dict[str, Any] | None, allowed: np.ndarray | None = None
    ) -> dict[str, tuple[str, float]]:
        """Chunk id -> (paper id, cosine similarity) of the ``n`` nearest chunks matching ``where``.

        ``allowed`` is the same filter as a mask over the BM25 paper ids: when it passes a broad share
        of the papers, the unfiltered nearest chunks are fetched (over-fetched by 1/share) and those of
        allowed papers kept, the same chunks ``where`` would find whenever ``n`` of them survive;
        otherwise (or when too few survive) the store filters with ``where``.
        """
        vector = self.query_vector(question)
        found = self._broad_filtered(vector, n, allowed) if where is not None and allowed is not None else None
        if found is None:
            found = self.index.store.query(vector, n, where)
        # vectors of an unfinished ingest have no registry row yet: skip them
        known = self.index.registry.known_chunks([cid for cid, _, _ in found])
        return {cid: (pid, s) for cid, pid, s in found if cid in known}

    def query_vector(self, question: str) -> np.ndarray:
        """The vector dense search looks up for ``question`` (``retrieval.dense_query``; see
        :func:`assistant.wordpieces.idf_pooled`)."""
        if self.cfg.dense_query == "idf":
            return idf_pooled(self.index, self.index.ensure_keyword_index(), question)
        return self.index.embed_query(question)

    def _broad_filtered(self, vector: np.ndarray, n: int, allowed: np.ndarray) -> list[tuple[str, str, float]] | None:
        """The ``n`` nearest chunks of allowed papers from an unfiltered over-fetch, or None when the
        filter is narrow or too few survive (the caller then filters inside the store)."""
        share = float(allowed.mean()) if allowed.size else 0.0
        if share < BROAD_FILTER:
            return None
        fetch = min(OVERFETCH_MAX, math.ceil(n / share * 1.5))
        if fetch < n:
            return None
        rows = self.index.ensure_keyword_index().rows
        hits = self.index.store.query(vector, fetch)
        kept = [h for h in hits if (r := rows.get(h[1])) is not None and allowed[r]]
        if len(kept) >= n or len(hits) < fetch:  # enough survive, or nothing more to fetch
            return kept[:n]
        return None

    def bm25_papers(self, question: str, n: int, mask: np.ndarray | None = None) -> dict[str, float]:
        """Paper id -> BM25 score of the ``n`` best papers passing ``mask`` (aligned with the BM25 ids)."""
        bm25 = self.index.ensure_keyword_index()
        scores = bm25.scores(question)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        top = np.argpartition(-scores, n)[:n] if len(scores) > n else np.arange(len(scores))  # O(papers), no full sort
        top = top[np.argsort(-scores[top], kind="stable")]
        return {bm25.ids[i]: float(scores[i]) for i in top if scores[i] > 0}

    def retrieve(
        self, question: str, *, k: int | None = None, filters: Filters | None = None, mode: str | None = None
    ) -> list[Hit]:
        """Top-``k`` papers for ``question``, best first (filters are applied inside both stores)."""
        k = self.cfg.k if k is None else k
        mode = mode or self.cfg.mode
        if mode not in MODES:
            raise FilterError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")
        filters = filters or Filters()
        check_filters(filters)
        sources = matching_sources(self.index, filters)
        if sources == [] or filters.papers == []:
            return []
        if not filters.is_empty():
            self.index.ensure_chunk_metadata()
        n = max(self.cfg.candidates, k * 4)
        allowed = None
        if not filters.is_empty():
            allowed = self.index.ensure_keyword_index().mask(filters.since, filters.until, sources, filters.papers, filters.exclude)
        where = chroma_where(filters, sources)
        dense_c = self.dense_chunks(question, n, where, allowed) if mode in ("hybrid", "dense") else {}
        bm25_p = self.bm25_papers(question, n, allowed) if mode in ("hybrid", "bm25") else {}
        dense_p: dict[str, float] = {}
        best_chunks: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for cid, (pid, s) in dense_c.items():
            dense_p[pid] = max(dense_p.get(pid, -np.inf), s)  # a paper's best chunk counts once
            best_chunks[pid].append((s, cid))
        fused = self.fuse(dense_p, bm25_p)
        order = [pid for pid, _ in sorted(fused.items(), key=lambda kv: -kv[1])]
        papers = self.index.papers.many(order[: k + 16])  # a few spare for papers not (yet) registered
        ranked = [pid for pid in order[: k + 16] if pid in papers][:k]
        return [
            Hit(
                paper=papers[pid], score=fused[pid], rank=rank, dense=dense_p.get(pid), bm25=bm25_p.get(pid),
                chunk_ids=[c for _, c in sorted(best_chunks.get(pid, []), reverse=True)],
            )
            for rank, pid in enumerate(ranked, start=1)
        ]

    def fuse(self, dense: dict[str, float], bm25: dict[str, float]) -> dict[str, float]:
        """Fused score of every paper in either list: weighted reciprocal rank fusion, scaled so a paper
        first in both lists scores 1, plus ``score_weight`` x the mean of its z-scores in the two lists.

        A z-score is standardised within the list (mean and spread of its papers' scores). A paper
        missing from the dense list gets the list's lowest similarity (its true one is at most that);
        one missing from the BM25 list gets a BM25 score of 0 (measured as good as its exact score).
        """
        if not bm25:
            return dense
        if not dense:
            return bm25
        kk, wd, wb = self.cfg.rrf_k, self.cfg.dense_weight, self.cfg.bm25_weight
        pids = list(dense) + [p for p in bm25 if p not in dense]
        dv = np.fromiter(dense.values(), dtype=np.float64, count=len(dense))
        bv = np.fromiter(bm25.values(), dtype=np.float64, count=len(bm25))
        at = {p: i for i, p in enumerate(bm25)}
        where_b = np.array([at.get(p, -1) for p in pids])  # position in the BM25 list, -1 = absent
        miss = len(dense) + len(bm25)
        rank_d = np.full(len(pids), miss, dtype=np.float64)
        rank_d[: len(dense)] = _ranks(dv)
        rank_b = np.where(where_b >= 0, _ranks(bv)[where_b], miss)
        scale = (kk + 1) / (wd + wb) if wd + wb > 0 else 1.0
        fused = (wd / (kk + rank_d) + wb / (kk + rank_b)) * scale
        if self.cfg.score_weight > 0:
            d = np.concatenate([dv, np.full(len(pids) - len(dense), dv.min())])
            b = np.where(where_b >= 0, bv[where_b], 0.0)
            fused += self.cfg.score_weight * (_zscores(d, dv) + _zscores(b, bv)) / 2
        return dict(zip(pids, fused.tolist(), strict=True))


def _zscores(values: np.ndarray, within: np.ndarray) -> np.ndarray:
    """``values`` standardised by the mean and standard deviation of ``within`` (0 where it has no spread)."""
    sd = float(within.std())
    return (values - within.mean()) / sd if sd > 1e-9 else np.zeros_like(values)
