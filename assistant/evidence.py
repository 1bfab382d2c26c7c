"""Evidence scoring over retrieved abstracts: which sentences support the question, and how well.

Used by the extractive backend to compose answers and by every backend to decide refusal and pick
the supporting snippet of each citation. Dense similarities come from the chunk vectors already in
the embedding cache, so scoring costs no model calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from assistant.embedders.cache import text_key
from assistant.index import Index
from assistant.models import Hit
from assistant.text import split_sentences, terms


@dataclass
class Sentence:
    hit: int  # 1-based position of the paper in the hits
    text: str
    lexical: float  # idf-weighted share of the question's terms in this sentence
    dense: float  # similarity of the question to the chunk holding this sentence
    terms: set[str] = field(default_factory=set)

    @property
    def score(self) -> float:
        return 0.65 * self.lexical + 0.35 * max(self.dense, 0.0)


@dataclass
class PaperEvidence:
    hit: Hit
    coverage: float  # idf-weighted share of question terms in title + abstract
    title_coverage: float
    dense: float  # best chunk similarity
    sentences: list[Sentence]

    @property
    def relevance(self) -> float:
        """0-1 evidence strength used for refusal and for which papers a list answer includes."""
        return 0.6 * self.coverage + 0.4 * max(self.dense, 0.0)

    def best(self) -> Sentence | None:
        return max(self.sentences, key=lambda s: s.score, default=None)


@dataclass
class Profile:
    """What scoring needs of a paper, computed once per paper (question-independent)."""

    sentences: list[tuple[str, frozenset[str]]]
    sentence_chunks: list[list[int]]  # rows of ``vectors`` whose chunk holds the sentence
    doc_terms: frozenset[str]
    title_terms: frozenset[str]
    vectors: np.ndarray


def profile(index: Index, paper_id: str) -> Profile:
    """The cached :class:`Profile` of a paper (the cache is dropped when the index changes)."""
    cache: dict[str, Profile] = index.__dict__.setdefault("_profiles", {})
    if paper_id in cache:
        return cache[paper_id]
    paper = index.papers[paper_id]
    chunks = index.chunks_by_paper.get(paper_id, [])
    cached = index.embedder.lookup([c.embed_text for c in chunks])
    found = {c.id: cached[text_key(c.embed_text)] for c in chunks if text_key(c.embed_text) in cached}
    found |= index.store.vectors([c.id for c in chunks if c.id not in found])  # cache absent or cleared
    rows = [(c.text, found[c.id]) for c in chunks if c.id in found]
    vectors = np.stack([v for _, v in rows]) if rows else np.zeros((0, 1), dtype=np.float32)
    sentences, where = [], []
    for sent in split_sentences(paper.abstract):
        sentences.append((sent, frozenset(terms(sent))))
        where.append([i for i, (t, _) in enumerate(rows) if sent[:40] in t])
    prof = Profile(
        sentences=sentences,
        sentence_chunks=where,
        doc_terms=frozenset(terms(f"{paper.title} {paper.abstract}")),
        title_terms=frozenset(terms(paper.title)),
        vectors=vectors,
    )
    cache[paper_id] = prof
    return prof


class Evidence:
    """Scores every sentence of every retrieved abstract against the question."""

    def __init__(self, index: Index, question: str, hits: list[Hit]) -> None:
        bm25 = index.ensure_keyword_index()
        qterms = list(dict.fromkeys(terms(question)))
        self.weights = {t: bm25.idf(t) for t in qterms}
        total = sum(self.weights.values()) or 1.0
        self.question = question
        qvec = index.embed_query(question)
        self.papers: list[PaperEvidence] = []
        for pos, hit in enumerate(hits, start=1):
            prof = profile(index, hit.paper.id)
            chunk_sims = prof.vectors @ qvec if len(prof.vectors) else np.zeros(0, dtype=np.float32)
            fallback = hit.dense or 0.0
            sents = []
            for (text, st), where in zip(prof.sentences, prof.sentence_chunks, strict=True):
                lex = sum(w for t, w in self.weights.items() if t in st) / total
                dense = max((float(chunk_sims[i]) for i in where), default=fallback)
                sents.append(Sentence(pos, text, lex, dense, set(st)))
            self.papers.append(
                PaperEvidence(
                    hit=hit,
                    coverage=sum(w for t, w in self.weights.items() if t in prof.doc_terms) / total,
                    title_coverage=sum(w for t, w in self.weights.items() if t in prof.title_terms) / total,
                    dense=float(chunk_sims.max()) if len(chunk_sims) else fallback,
                    sentences=sents,
                )
            )

    def best_sentence_score(self, papers: int = 5) -> float:
        """Score of the single best supporting sentence among the leading papers (refusal signal)."""
        return max((s.score for p in self.papers[:papers] for s in p.sentences), default=0.0)

    def top_relevance(self) -> float:
        return max((p.relevance for p in self.papers), default=0.0)

    def snippet(self, hit_pos: int) -> str:
        best = self.papers[hit_pos - 1].best()
        return best.text if best else ""
