"""Per-paper profiles: what scoring a question needs of a retrieved paper, computed once per paper.

A :class:`Profile` holds a paper's title and sentence vectors (embedded at ingest by
:func:`embed_sentences`, read back from the registry's copy), its chunk vectors, term sets, the text
its names are matched in, and its word-piece bits split per text. :func:`profiles` keeps the most
recent ones per index, so a question costs a few reads, not a few per paper or per sentence.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from assistant.embedders.cache import CachedEmbedder
from assistant.models import Paper
from assistant.text import has_glued_sentences, name_text, split_sentences, terms

if TYPE_CHECKING:
    from assistant.index import Index

PROFILE_CACHE = 4096  # papers whose profile a process keeps (~35-60 KB each: vectors, word-piece bits, term sets)
_PROFILE_LOCK = threading.Lock()  # Gradio and Slack score questions from many threads


def sentence_texts(paper: Paper) -> list[str]:
    """What is embedded for a paper besides its chunks: its title, then each abstract sentence."""
    return [paper.title, *split_sentences(paper.abstract)]


def embed_sentences(embedder: CachedEmbedder, papers: Iterable[Paper]) -> dict[str, np.ndarray]:
    """Each paper's title + sentence vectors (rows in :func:`sentence_texts` order), in one call:
    the cache answers what it holds and only the rest reaches the model."""
    return _embed_texts(embedder, {p.id: sentence_texts(p) for p in papers})


def _embed_texts(embedder: CachedEmbedder, texts: dict[str, list[str]]) -> dict[str, np.ndarray]:
    if not texts:
        return {}
    vecs = embedder.embed([t for ts in texts.values() for t in ts], keep_tokens=True)
    out, start = {}, 0
    for pid, ts in texts.items():
        out[pid] = vecs[start : start + len(ts)]
        start += len(ts)
    return out


@dataclass
class Profile:
    """What scoring needs of a paper, computed once per paper (question-independent)."""

    sentences: list[tuple[str, frozenset[str]]]
    sentence_vectors: np.ndarray
    title_vector: np.ndarray | None
    chunk_vectors: np.ndarray
    doc_terms: frozenset[str]
    title_terms: frozenset[str]
    names: str = ""  # title + abstract as :func:`assistant.text.name_text` pieces (names are matched here)
    title_names: str = ""
    sentence_names: list[str] = field(default_factory=list)  # each sentence as name_text pieces
    token_bits: np.ndarray | None = None  # word pieces (None: not kept for this paper)
    text_bits: list[np.ndarray] | None = None  # ``token_bits`` split per text (title, then sentences)


def _text_vectors(index: Index, texts: dict[str, list[str]], dim: int) -> dict[str, np.ndarray]:
    """Title + sentence vectors of each paper (``texts``: its title and sentences by paper id): the
    registry's copy (one row per paper) where it holds one row of ``dim`` values per text, else (an
    index built before it kept them, or a copy made under another sentence split) from the embedding
    cache, all such papers in one call."""
    out: dict[str, np.ndarray] = {}
    for pid, flat in index.registry.text_vectors_of(list(texts)).items():
        if dim and flat.size == len(texts[pid]) * dim:
            out[pid] = flat.reshape(len(texts[pid]), dim)
    return out | _embed_texts(index.embedder, {pid: ts for pid, ts in texts.items() if pid not in out})


def _token_bits(index: Index, papers: list[Paper]) -> dict[str, np.ndarray]:
    """Word-piece bits of ``papers``, from the registry's copy. Nothing is embedded or looked up
    elsewhere: a paper without them (an index built before the bits were kept, until its next ingest
    backfills them) is absent, and its question's piece features are left unmeasured."""
    if not index.embedder.has_tokens:
        return {}
    return index.registry.token_bits_of([p.id for p in papers], index.embedder.token_width)


def _split_bits(
    index: Index, texts_of: dict[str, list[str]], bits: dict[str, np.ndarray]
) -> dict[str, list[np.ndarray]]:
    """Each paper's word-piece bits split per text (title, then sentences), as the model gives each
    text its pieces (``piece_counts``: one tokenizer pass over every text of ``texts_of`` that has
    bits). A paper whose bits do not add up to its texts' pieces (tokenized otherwise when they were
    kept) is left out."""
    have = [pid for pid in texts_of if pid in bits]
    counts = index.embedder.piece_counts([t for pid in have for t in texts_of[pid]]) if have else None
    if counts is None:
        return {}
    out, start = {}, 0
    for pid in have:
        own = counts[start : start + len(texts_of[pid])]
        start += len(own)
        if sum(own) == len(bits[pid]):
            out[pid] = np.split(bits[pid], np.cumsum(own)[:-1])
    return out


def profiles(index: Index, papers: list[Paper]) -> list[Profile]:
    """The :class:`Profile` of each of ``papers``, in order.

    Profiles are kept per index (the most recent :data:`PROFILE_CACHE`; dropped when the index
    changes). The papers not kept are read together: one registry query for their chunks' vectors
    (the copy of what the store holds: embedded windows or derived vectors alike) and one for their
    title and sentence vectors (one row per paper), so a question costs a few reads, not a few per
    paper or per sentence.
    """
    with _PROFILE_LOCK:
        cache: OrderedDict[str, Profile] = index.__dict__.setdefault("_profiles", OrderedDict())
        todo = list({p.id: p for p in papers if p.id not in cache}.values())
    made: dict[str, Profile] = {}
    if todo:
        rows = index.registry.chunk_vectors_of([p.id for p in todo])
        kept = {cid: vec for pid in rows for cid, vec in rows[pid] if vec is not None}
        # rows written before the registry kept vectors: read those from the store
        stored = kept | index.store.vectors([cid for pid in rows for cid, vec in rows[pid] if vec is None])
        texts_of = {p.id: sentence_texts(p) for p in todo}
        text_vecs = _text_vectors(index, texts_of, next((v.size for v in stored.values()), 0))
        bits = _token_bits(index, todo)
        split = _split_bits(index, texts_of, bits)
        for paper in todo:
            texts = texts_of[paper.id]
            own = text_vecs[paper.id]  # title, then sentences
            dim = own.shape[1]
            chunk_rows = [stored[c] for c, _ in rows.get(paper.id, []) if c in stored]
            title_terms, *sentence_terms = (frozenset(terms(t)) for t in texts)
            made[paper.id] = Profile(
                sentences=list(zip(texts[1:], sentence_terms, strict=True)),
                sentence_vectors=own[1:],
                title_vector=own[0],
                chunk_vectors=np.stack(chunk_rows) if chunk_rows else np.zeros((0, dim), dtype=np.float32),
                doc_terms=(  # the same set, without tokenizing the abstract twice
                    frozenset(terms(f"{paper.title} {paper.abstract}")) if has_glued_sentences(paper.abstract)
                    else title_terms.union(*sentence_terms)
                ),  # fmt: skip
                title_terms=title_terms,
                names=name_text(f"{paper.title} {paper.abstract}"),
                title_names=name_text(paper.title),
                sentence_names=[name_text(t) for t in texts[1:]],
                token_bits=bits.get(paper.id),
                text_bits=split.get(paper.id),
            )
    with _PROFILE_LOCK:
        cache.update(made)
        out = []
        for paper in papers:
            prof = cache.get(paper.id) or made[paper.id]
            cache[paper.id] = prof
            cache.move_to_end(paper.id)
            out.append(prof)
        while len(cache) > PROFILE_CACHE:
            cache.popitem(last=False)
    return out
