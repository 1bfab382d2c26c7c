"""Word-piece matching: how well a paper's own words answer the rarest words of a question.

A sentence vector blends every word of a sentence into one point, so a paper on the right topic that
lacks the one word that matters ('… with LoRA', '… for speech recognition') can sit as close to the
question as one that has it. Here each word piece keeps its own contextual vector (MiniLM's token
outputs, from the same model pass that embeds the sentence at ingest; kept as sign bits, see
:func:`assistant.embedders.cache.token_bits`). For a question, the pieces of its rarest words (by the
BM25 idf of the word each piece belongs to: the rarest third, at least three) are each matched to the
closest piece anywhere in a paper's title and abstract (cosine of the sign vectors; a misspelt word
weighs as the word BM25 corrects it to), and the matches
are averaged (``tok_rare``, a paper feature of :mod:`assistant.evidence`); the same average over one
sentence's pieces alone is the sentence feature ``rare`` (:func:`text_matches` gives both in one pass). Late interaction in the manner of ColBERT (Khattab and
Zaharia, 2020), restricted to the question words that carry the most information.

The same idf weights pool the question's piece vectors into the vector dense search looks up
(:func:`idf_pooled`, ``retrieval.dense_query``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from assistant.embedders.cache import CachedEmbedder, token_bits
from assistant.models import Paper
from assistant.profiles import sentence_texts
from assistant.stores.bm25 import BM25Index
from assistant.text import terms

if TYPE_CHECKING:
    from assistant.index import Index

MIN_PIECES = 3  # a question's rare pieces: its rarest third, but at least this many


def paper_token_bits(embedder: CachedEmbedder, papers: Iterable[Paper]) -> dict[str, np.ndarray] | None:
    """Each paper's word-piece bits (title, then every abstract sentence, rows one after another), from
    the cache where it holds them, else one model pass; None when the embedder gives no token vectors."""
    texts = {p.id: sentence_texts(p) for p in papers}
    found = embedder.tokens([t for ts in texts.values() for t in ts])
    if found is None:
        return None
    out, start = {}, 0
    for pid, ts in texts.items():
        out[pid] = np.vstack(found[start : start + len(ts)])
        start += len(ts)
    return out


def rare_pieces(index: Index, bm25: BM25Index, question: str) -> np.ndarray | None:
    """Sign bits (as :func:`token_bits` packs them) of the question's rarest word pieces (see module
    docstring), or None when the embedder gives no token vectors."""
    found = index.query_tokens(question)
    if found is None:
        return None
    vectors, spans = found
    if not len(vectors):
        return token_bits(vectors)
    weights = piece_idf(bm25, question, spans)
    top = np.argsort(-weights, kind="stable")[: max(MIN_PIECES, len(weights) // 3)]
    return token_bits(vectors[top])


def piece_idf(bm25: BM25Index, question: str, spans: list[tuple[int, int]]) -> np.ndarray:
    """For each word piece (``spans``: its word's characters in ``question``), the BM25 idf of its word
    (the highest of the word's terms; a misspelt word weighs as the word BM25 corrects it to; 0 for a
    stop word or punctuation)."""
    fixed = dict(zip(terms(question), bm25.query_terms(question), strict=True))  # typos corrected, as BM25 has them
    idf = {w: max((bm25.idf(fixed.get(t, t)) for t in terms(w)), default=0.0) for w in {question[a:b] for a, b in spans}}
    return np.array([idf[question[a:b]] for a, b in spans], dtype=np.float64)


def idf_pooled(index: Index, bm25: BM25Index, question: str) -> np.ndarray:
    """The question's dense query vector for retrieval: the model's mean-pooled vector plus the mean of
    its word-piece vectors weighted by each word's idf (:func:`piece_idf`), both unit length, the sum
    normalised. Framing that every question shares ('which papers …', 'any work on …', 'I'm looking
    for …') weighs little and the words that name the topic much, as in weighted-average sentence
    embeddings (Arora et al., 2017, with idf for word frequency); the pooled half keeps the model's own
    reading. The pooled vector alone when the embedder gives no token vectors or no word carries weight."""
    pooled = index.embed_query(question)
    found = index.query_tokens(question)
    if found is None or not len(found[0]):
        return pooled
    vectors, spans = found
    summed = piece_idf(bm25, question, spans) @ vectors
    norm = float(np.linalg.norm(summed))
    if norm < 1e-9:
        return pooled
    both = summed / norm + pooled
    return (both / np.linalg.norm(both)).astype(np.float32)


def piece_matches(pieces: np.ndarray, bits: list[np.ndarray], dim: int) -> np.ndarray:
    """For each array of word-piece bits in ``bits`` (a text, or a whole paper), the best match of each
    of the question's ``pieces`` among its pieces (rows: ``bits``; columns: ``pieces``; -1, the lowest
    cosine, for an array without pieces). A match is the cosine of the two sign vectors,
    1 - 2 x (differing bits) / ``dim``: XOR and bit counts over every array's pieces at once, no
    floating-point matrix product (whose BLAS threads would compete with the encoder's for the cores)."""
    out = np.full((len(bits), len(pieces)), -1.0)
    have = [i for i, b in enumerate(bits) if len(b)]
    if not have or not len(pieces):
        return out
    word = np.dtype(np.uint64 if pieces.shape[1] % 8 == 0 else np.uint8)
    every: np.ndarray = np.ascontiguousarray(np.vstack([bits[i] for i in have])).view(word)  # pieces x words
    asked: np.ndarray = np.ascontiguousarray(pieces).view(word)
    differ = np.bitwise_count(np.bitwise_xor(every[None, :, :], asked[:, None, :]))
    sims = 1.0 - 2.0 * differ.sum(axis=2, dtype=np.int32).T / dim  # all pieces x question pieces
    starts = np.cumsum([0] + [len(bits[i]) for i in have])[:-1]
    out[have] = np.maximum.reduceat(sims, starts, axis=0)
    return out


def rare_match(pieces: np.ndarray | None, bits: list[np.ndarray], dim: int) -> list[float]:
    """For each paper's word-piece bits, the mean over the question's ``pieces`` (bits too) of the best
    match among the paper's pieces (:func:`piece_matches`; 0 for a paper or question without pieces;
    NaN for every paper when ``pieces`` is None, i.e. the embedder gives no token vectors)."""
    return text_matches(pieces, [[b] for b in bits], dim)[0]


def text_matches(
    pieces: np.ndarray | None, papers: list[list[np.ndarray]], dim: int
) -> tuple[list[float], list[list[float]]]:
    """Each paper's ``tok_rare`` (as :func:`rare_match` gives it for the paper's pieces as a whole) and
    the same measure for each of its texts alone (title, then each sentence): one pass of
    :func:`piece_matches` over every text of every paper. ``papers`` holds each paper's texts' bits;
    NaN throughout when ``pieces`` is None."""
    if pieces is None:
        return [math.nan] * len(papers), [[math.nan] * len(texts) for texts in papers]
    if not len(pieces):
        return [0.0] * len(papers), [[0.0] * len(texts) for texts in papers]
    rows = piece_matches(pieces, [b for texts in papers for b in texts], dim)
    paper_out: list[float] = []
    text_out: list[list[float]] = []
    start = 0
    for texts in papers:
        own = rows[start : start + len(texts)]
        start += len(texts)
        has = [len(b) > 0 for b in texts]
        paper_out.append(float(own.max(axis=0).mean()) if any(has) else 0.0)
        text_out.append([float(r.mean()) if h else 0.0 for r, h in zip(own, has, strict=True)])
    return paper_out, text_out
