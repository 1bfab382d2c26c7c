"""Sentence chunking: chunks of whole sentences whose vectors are derived from sentence vectors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from assistant.index import Index
from assistant.models import Paper
from assistant.profiles import sentence_texts
from assistant.settings import Settings
from assistant.text import split_sentences
from ingest.chunking import TITLE_WEIGHT, SentenceChunker, derive_vectors
from ingest.pipeline import ingest

LONG = " ".join(f"Sentence number {i} explains one more detail about sparse adapters and forgetting." for i in range(40))


def _paper(abstract: str, title: str = "Sparse Adapters Forever") -> Paper:
    return Paper(id="p1", title=title, abstract=abstract, content_hash="0" * 64)


def test_chunks_are_whole_sentences_within_the_size() -> None:
    chunker = SentenceChunker(96)
    chunks, groups, _ = chunker.plan(_paper(LONG))
    sentences = split_sentences(LONG)
    assert len(chunks) > 3
    assert [j for g in groups for j in g] == list(range(len(sentences))), "every sentence once, in order"
    for chunk, group in zip(chunks, groups, strict=True):
        assert chunk.text == " ".join(sentences[j] for j in group)
        assert chunker.count(chunk.text) <= 96 + len(group), "packed up to the size (joining spaces aside)"
        assert chunk.embed_text == f"Sparse Adapters Forever\n{chunk.text}"
    assert len({c.id for c in chunks}) == len(chunks)


def test_a_sentence_longer_than_the_size_is_a_chunk_of_its_own_and_no_abstract_is_no_chunk() -> None:
    long_sentence = "Adapters " + "help " * 150 + "a lot."
    _, groups, _ = SentenceChunker(64).plan(_paper(f"Short one. {long_sentence} Short two."))
    assert groups == [[0], [1], [2]]
    empty_chunks, empty_groups, _ = SentenceChunker(64).plan(_paper(""))
    assert len(empty_chunks) == 1 and empty_groups == [[]], "a title-only paper still has one vector"


def test_derived_vector_is_the_normalised_mean_of_sentences_plus_title() -> None:
    rng = np.random.default_rng(0)
    title, sents = rng.normal(size=8), rng.normal(size=(3, 8))
    out = derive_vectors(title, sents, [[0, 1], [2], []])
    want = sents[[0, 1]].mean(axis=0) + TITLE_WEIGHT * title
    assert np.allclose(out[0], want / np.linalg.norm(want), atol=1e-6)
    weighted = derive_vectors(title, sents, [[0, 1]], sizes=[30, 10, 5])  # sentence token counts
    want = (30 * sents[0] + 10 * sents[1]) / 40 + TITLE_WEIGHT * title
    assert np.allclose(weighted[0], want / np.linalg.norm(want), atol=1e-6)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert np.allclose(out[2], title / np.linalg.norm(title), atol=1e-6)


def test_ingest_embeds_each_text_once_and_stores_derived_vectors(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    src = tmp_path / "long.jsonl"
    src.write_text(json.dumps({"title": "Sparse Adapters Forever", "abstract": LONG}) + "\n", encoding="utf-8")
    report = ingest([src], s)
    index = Index.open(s)
    paper = index.registry.papers()[0]
    texts = sentence_texts(paper)
    assert report.embedded == report.sentences_embedded == len(texts), "title + sentences, nothing else"
    chunks = index.registry.chunks_of(paper.id)
    assert len(chunks) == report.total_chunks > 1 and "_s128_" in s.collection_name()
    vecs = index.embedder.embed(texts)  # cache hits
    _, groups, sizes = SentenceChunker(128).plan(paper)
    stored = index.store.vectors([c.id for c in chunks])
    want = derive_vectors(vecs[0], vecs[1:], groups, sizes)
    for c, row in zip(chunks, want, strict=True):
        assert np.allclose(stored[c.id], row, atol=1e-5)
    assert ingest([src], s).embedded == 0


def test_a_sentence_too_long_for_the_model_counts_in_full(tmp_path: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", ingest={"chunk_size": 1024})
    tail = " ".join(f"marker{i}" for i in range(300))
    src = tmp_path / "long.jsonl"
    src.write_text(json.dumps({"title": "Long", "abstract": f"Adapters forget less. Adapters help {tail}."}) + "\n")
    report = ingest([src], s)
    index = Index.open(s)
    paper = index.registry.papers()[0]
    texts = sentence_texts(paper)
    assert len(texts) == 3 and index.embedder.count_tokens(texts[2]) > index.embedder.max_tokens
    assert report.embedded > 3, "the long sentence is embedded in pieces as well"
    (chunk,) = index.registry.chunks_of(paper.id)
    truncated = index.embedder.embed(texts)  # the model's vectors (the long one cut at 256 word pieces)
    stored = index.store.vectors([chunk.id])[chunk.id]
    _, groups, sizes = SentenceChunker(1024).plan(paper)
    assert groups == [[0, 1]]
    assert not np.allclose(stored, derive_vectors(truncated[0], truncated[1:], groups, sizes)[0], atol=1e-3)
