"""Hybrid retrieval: Chroma dense search over chunks + BM25 over papers, fused per paper.

Dense chunk similarities are aggregated to papers (best chunk counts once), BM25 ranks papers, and
the two paper rankings are fused with weighted reciprocal rank fusion (rrf_k=15, dense weight 0.6:
tuned on ../shared/evals/dev.jsonl; see evals/README.md for the comparison table).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from assistant.errors import FilterError
from assistant.index import Index
from assistant.models import Filters, Hit, Paper

MODES = ("hybrid", "dense", "bm25")


def allowed_papers(papers: dict[str, Paper], filters: Filters) -> list[str] | None:
    """Paper ids passing ``filters`` (None = no filter). Year filters drop papers without a year."""
    if filters.since is not None and filters.until is not None and filters.since > filters.until:
        raise FilterError(f"filter since={filters.since} is after until={filters.until}")
    if filters.is_empty():
        return None
    out = []
    needle = (filters.source or "").lower()
    for pid, p in papers.items():
        if filters.since is not None and (p.year is None or p.year < filters.since):
            continue
        if filters.until is not None and (p.year is None or p.year > filters.until):
            continue
        if needle and not any(needle in s.lower() for s in p.sources):
            continue
        out.append(pid)
    return out


def _paper_max(chunk_scores: dict[str, float], index: Index) -> dict[str, float]:
    best: dict[str, float] = defaultdict(lambda: -np.inf)
    for cid, s in chunk_scores.items():
        chunk = index.chunks[cid]
        best[chunk.paper_id] = max(best[chunk.paper_id], s)
    return dict(best)


def _ranks(scores: dict[str, float]) -> dict[str, int]:
    return {pid: r for r, (pid, _) in enumerate(sorted(scores.items(), key=lambda kv: -kv[1]), start=1)}


class Retriever:
    """Retrieves papers for a question from an :class:`Index`."""

    def __init__(self, index: Index) -> None:
        self.index = index
        self.cfg = index.settings.retrieval

    def dense_chunks(self, question: str, n: int, allowed: list[str] | None) -> dict[str, float]:
        vec = self.index.embed_query(question)
        known = self.index.chunks  # vectors of an unfinished ingest have no registry row yet: skip them
        return {cid: s for cid, s in self.index.store.query(vec, n, paper_ids=allowed) if cid in known}

    def bm25_papers(self, question: str, n: int, allowed: list[str] | None) -> dict[str, float]:
        bm25 = self.index.ensure_keyword_index()
        scores = bm25.scores(question)
        if allowed is not None:
            keep = set(allowed)
            mask = np.array([pid in keep for pid in bm25.ids], dtype=bool)
            scores = np.where(mask, scores, 0.0)
        top = np.argsort(-scores)[:n]
        return {bm25.ids[i]: float(scores[i]) for i in top if scores[i] > 0}

    def retrieve(
        self, question: str, *, k: int | None = None, filters: Filters | None = None, mode: str | None = None
    ) -> list[Hit]:
        """Top-``k`` papers for ``question``, best first."""
        k = self.cfg.k if k is None else k
        mode = mode or self.cfg.mode
        if mode not in MODES:
            raise FilterError(f"retrieval mode {mode!r} is not one of {', '.join(MODES)}")
        allowed = allowed_papers(self.index.papers, filters or Filters())
        if allowed is not None and not allowed:
            return []
        n = max(self.cfg.candidates, k * 4)
        dense_c = self.dense_chunks(question, n, allowed) if mode in ("hybrid", "dense") else {}
        bm25_p = self.bm25_papers(question, n, allowed) if mode in ("hybrid", "bm25") else {}
        dense_p = _paper_max(dense_c, self.index)
        fused = self.fuse(dense_p, bm25_p)
        best_chunks: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for cid, s in dense_c.items():
            best_chunks[self.index.chunks[cid].paper_id].append((s, cid))
        hits = []
        ranked = [(pid, s) for pid, s in sorted(fused.items(), key=lambda kv: -kv[1]) if pid in self.index.papers]
        for rank, (pid, score) in enumerate(ranked[:k], start=1):
            hits.append(
                Hit(
                    paper=self.index.papers[pid], score=score, rank=rank,
                    dense=dense_p.get(pid), bm25=bm25_p.get(pid),
                    chunk_ids=[c for _, c in sorted(best_chunks.get(pid, []), reverse=True)],
                )
            )
        return hits

    def fuse(self, dense: dict[str, float], bm25: dict[str, float]) -> dict[str, float]:
        """Weighted reciprocal rank fusion of the two paper rankings."""
        if not bm25:
            return dense
        if not dense:
            return bm25
        rd, rb = _ranks(dense), _ranks(bm25)
        kk = self.cfg.rrf_k
        miss = len(rd) + len(rb)
        return {
            pid: self.cfg.dense_weight / (kk + rd.get(pid, miss)) + self.cfg.bm25_weight / (kk + rb.get(pid, miss))
            for pid in set(rd) | set(rb)
        }
