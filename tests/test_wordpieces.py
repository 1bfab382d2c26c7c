"""Word-piece matching (assistant/wordpieces.py): token vectors from the same model pass, their sign
bits kept in the cache and the registry, and the rare-word match the paper model reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from assistant.answering import get_assistant
from assistant.embedders.cache import CachedEmbedder, text_key, token_bits
from assistant.embedders.local import OnnxMiniLM
from assistant.evidence import Evidence
from assistant.index import Index
from assistant.settings import Settings
from assistant.wordpieces import idf_pooled, piece_idf, rare_match, rare_pieces

LORA_Q = "Which papers reduce catastrophic forgetting with LoRA?"


def test_token_vectors_come_from_the_pass_that_embeds_the_text() -> None:
    model = OnnxMiniLM(threads=1)
    texts = [LORA_Q, "Low-rank adapters."]
    pooled, tokens = model.embed_tokens(texts)
    assert np.allclose(pooled, model.embed(texts), atol=1e-6)
    assert [len(t) for t in tokens] == [model.count_tokens(t) - 2 for t in texts]  # no [CLS] / [SEP]
    assert np.allclose(np.linalg.norm(tokens[0], axis=1), 1.0, atol=1e-5)
    spans = model.word_spans(LORA_Q)
    assert len(spans) == len(tokens[0])
    words = [LORA_Q[a:b] for a, b in spans]
    assert words[0] == "Which" and words.count("LoRA") >= 1 and set(words) <= set(LORA_Q.replace("?", " ? ").split())


def test_rare_match_is_the_cosine_of_the_sign_vectors() -> None:
    rng = np.random.default_rng(0)
    dim = 384
    pieces = rng.normal(size=(4, dim)).astype(np.float32)
    papers = [rng.normal(size=(n, dim)).astype(np.float32) for n in (5, 0, 9)]
    got = rare_match(token_bits(pieces), [token_bits(p) for p in papers], dim)

    def signs(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, 1.0, -1.0) / np.sqrt(dim)

    want = [float((signs(pieces) @ signs(p).T).max(axis=1).mean()) if len(p) else 0.0 for p in papers]
    assert np.allclose(got, want, atol=1e-6)
    assert got[0] != got[2]


def test_token_bits_are_cached_with_the_vectors_and_never_recomputed(tmp_path: Path) -> None:
    cache = CachedEmbedder(OnnxMiniLM(threads=1), tmp_path / "e.sqlite")
    texts = ["Catastrophic forgetting with LoRA.", "Speech recognition."]
    cache.embed(["A chunk window."])  # texts whose pieces nobody reads keep no bits
    assert cache._stored_tokens([text_key("A chunk window.")]) == {}
    cache.embed(texts, keep_tokens=True)
    assert cache.computed == 3
    bits = cache.tokens(texts)
    assert bits is not None and cache.computed == 3  # the same pass stored them
    assert [b.shape for b in bits] == [(cache.count_tokens(t) - 2, 48) for t in texts]
    # a cache written before token bits were kept: the missing ones cost one pass, once
    cache._db.execute("DELETE FROM tokens")
    again = cache.tokens(texts)
    assert again is not None and cache.computed == 5
    assert all(np.array_equal(a, b) for a, b in zip(bits, again, strict=True))
    cache.tokens(texts)
    assert cache.computed == 5


def _two_papers(tmp_path: Path) -> Settings:
    from ingest.pipeline import ingest

    rows = [
        {"title": "Forgetting in continual fine-tuning",
         "abstract": "We reduce catastrophic forgetting when fine-tuning language models with LoRA adapters."},
        {"title": "Forgetting in continual fine-tuning II",
         "abstract": "We reduce catastrophic forgetting when fine-tuning language models with a replay buffer."},
    ]  # fmt: skip
    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([src], settings)
    return settings


def test_the_paper_that_writes_the_questions_rare_word_matches_it_better(tmp_path: Path) -> None:
    # the two abstracts differ in one word: sentence vectors barely tell them apart, the piece match does
    settings = _two_papers(tmp_path)
    a = get_assistant(settings)
    ev = Evidence(a.index, LORA_Q, a.retriever.retrieve(LORA_Q, k=2))
    by_title = {p.hit.paper.title: p.features for p in ev.papers}
    lora, replay = by_title["Forgetting in continual fine-tuning"], by_title["Forgetting in continual fine-tuning II"]
    assert lora["tok_rare"] > replay["tok_rare"] + 0.05
    assert lora["gap_tok_rare"] == 0.0 and replay["gap_tok_rare"] < 0
    assert abs(lora["sent_max"] - replay["sent_max"]) < lora["tok_rare"] - replay["tok_rare"]


def test_the_dense_query_weighs_the_rare_word_that_tells_two_papers_apart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 'LoRA' is in one abstract, 'forgetting' in both: weighted by idf, the question leans on 'LoRA', so
    # dense search separates the two papers by more than the mean-pooled question does
    a = get_assistant(_two_papers(tmp_path))
    margins = {}
    for mode in ("mean", "idf"):
        monkeypatch.setattr(a.retriever.cfg, "dense_query", mode)
        sims = {pid: s for pid, s in a.retriever.dense_chunks(LORA_Q, 10, None).values()}
        titles = {pid: p.title for pid, p in a.index.papers.many(list(sims)).items()}
        by_title = {titles[pid]: s for pid, s in sims.items()}
        margins[mode] = by_title["Forgetting in continual fine-tuning"] - by_title["Forgetting in continual fine-tuning II"]
    assert margins["mean"] > 0
    assert margins["idf"] > margins["mean"] + 0.03
    monkeypatch.setattr(a.retriever.cfg, "dense_query", "mean")
    assert np.array_equal(a.retriever.query_vector(LORA_Q), a.index.embed_query(LORA_Q))


def test_the_dense_query_is_the_pooled_vector_when_no_word_weighs_or_no_token_vectors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = get_assistant(_two_papers(tmp_path))
    bm25 = a.index.ensure_keyword_index()
    framing = "Which papers are there?"  # stop and question words only: idf 0 throughout
    found = a.index.query_tokens(framing)
    assert found is not None and not piece_idf(bm25, framing, found[1]).any()
    assert np.array_equal(idf_pooled(a.index, bm25, framing), a.index.embed_query(framing))
    weighted = idf_pooled(a.index, bm25, LORA_Q)
    assert abs(float(np.linalg.norm(weighted)) - 1.0) < 1e-5
    assert not np.allclose(weighted, a.index.embed_query(LORA_Q), atol=1e-3)
    monkeypatch.setattr(a.index, "query_tokens", lambda text: None)  # an embedder without token vectors
    assert np.array_equal(idf_pooled(a.index, bm25, LORA_Q), a.index.embed_query(LORA_Q))


def test_an_index_without_token_bits_gets_them_at_the_next_ingest_and_asks_embed_nothing(tmp_path: Path) -> None:
    from ingest.pipeline import ingest

    settings = _two_papers(tmp_path)
    index = Index.open(settings)
    stored = index.registry.token_bits_of(index.registry.paper_ids(), 48)
    assert len(stored) == 2 and all(len(b) > 10 for b in stored.values())
    # as an index built before the bits were kept: rows without them, a cache without them
    index.registry._db.execute("UPDATE papers SET tok=NULL")
    index.embedder._db.execute("DELETE FROM tokens")
    a = get_assistant(settings)
    ev = Evidence(a.index, LORA_Q, a.retriever.retrieve(LORA_Q, k=2))
    assert all(np.isnan(p.features["tok_rare"]) for p in ev.papers)  # unmeasured, not computed at ask time
    assert a.index.embedder.computed == 0
    report = ingest([tmp_path / "p.jsonl"], settings)
    assert report.pieces_backfilled == 4  # two titles + two sentences, once
    assert ingest([tmp_path / "p.jsonl"], settings).pieces_backfilled == 0
    index = Index.open(settings)
    again = index.registry.token_bits_of(index.registry.paper_ids(), 48)
    assert {k: v.tobytes() for k, v in again.items()} == {k: v.tobytes() for k, v in stored.items()}


def test_bits_of_changed_content_are_dropped_not_kept(tmp_path: Path) -> None:
    settings = _two_papers(tmp_path)
    reg = Index.open(settings).registry
    pid = reg.paper_ids()[0]
    paper = reg.get(pid)
    assert paper is not None and pid in reg.token_bits_of([pid], 48)
    reg.write(paper, "t", None)  # same content, no bits given: kept
    assert pid in reg.token_bits_of([pid], 48)
    reg.write(paper.model_copy(update={"content_hash": "changed"}), "t", None)
    assert pid not in reg.token_bits_of([pid], 48) and reg.papers_without_tokens(5) == [pid]


def test_an_unmeasured_feature_sits_at_its_training_mean() -> None:
    # an OpenAI-compatible embedder gives no token vectors: the word-piece features are NaN, and the
    # paper model must then decide on its other features, not read them as 0 (far below their mean)
    from assistant.judgement import Linear

    model = Linear(features=["a", "b"], mean=[0.5, 1.0], scale=[0.1, 2.0], coef=[2.0, -1.0], bias=0.3)
    rows = np.array([[np.nan, 3.0], [0.5, 3.0], [0.0, 3.0]])
    got = model.prob(rows)
    assert got[0] == pytest.approx(got[1]) and got[2] < got[1] / 10
    assert all(np.isnan(rare_match(None, [np.zeros((3, 48), np.uint8)] * 2, 384)))


def test_each_sentence_is_matched_alone_and_the_paper_over_all_its_pieces(tmp_path: Path) -> None:
    # one abstract, the question's rare word (LoRA) and name in its second sentence only
    from ingest.pipeline import ingest

    row = {"title": "Forgetting in continual fine-tuning",
           "abstract": "We study how language models lose old skills. "
                       "We reduce catastrophic forgetting with LoRA adapters. "
                       "Results hold on three benchmarks."}  # fmt: skip
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps(row), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([src], settings)
    a = get_assistant(settings)
    ev = Evidence(a.index, LORA_Q, a.retriever.retrieve(LORA_Q, k=1))
    (paper,) = ev.papers
    sents = paper.sentences
    assert len(sents) == 3
    assert sents[1].rare > max(sents[0].rare, sents[2].rare) + 0.05
    assert [s.named for s in sents] == [0.0, 1.0, 0.0]  # 'LoRA' is the question's one named token
    # each sentence's figure is the match against that sentence's own pieces, as the cache holds them
    pieces = rare_pieces(a.index, a.index.ensure_keyword_index(), LORA_Q)
    own = a.index.embedder.tokens([s.text for s in sents])
    assert own is not None
    assert [s.rare for s in sents] == pytest.approx([rare_match(pieces, [b], 384)[0] for b in own])


def test_pieces_split_per_text_as_the_model_cut_them_long_texts_included(tmp_path: Path) -> None:
    # a sentence longer than the model reads (256 tokens) keeps only its first 254 pieces, and a
    # one-word title its two: the split must give every text exactly its own pieces
    from assistant.profiles import profiles
    from ingest.pipeline import ingest

    long_sentence = "We " + " ".join(f"adapt layer{i} weights" for i in range(120)) + " with LoRA."
    row = {"title": "LoRA", "abstract": f"We reduce forgetting. {long_sentence} Results hold."}
    src = tmp_path / "p.jsonl"
    src.write_text(json.dumps(row), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([src], settings)
    index = Index.open(settings)
    (paper,) = index.papers.many(index.registry.paper_ids()).values()
    (prof,) = profiles(index, [paper])
    texts = [paper.title, *(t for t, _ in prof.sentences)]
    assert index.embedder.count_tokens(texts[2]) > index.embedder.max_tokens  # really truncated
    want = index.embedder.tokens(texts)
    assert want is not None and prof.text_bits is not None and len(prof.text_bits) == len(texts)
    assert len(want[2]) == index.embedder.max_tokens - 2 and len(want[0]) == 2  # 'LoRA' is two pieces
    assert all(np.array_equal(got, w) for got, w in zip(prof.text_bits, want, strict=True))


def test_text_matches_are_the_cosines_of_the_sign_vectors_per_text_and_per_paper() -> None:
    from assistant.wordpieces import text_matches

    rng = np.random.default_rng(1)
    dim = 384
    asked = rng.normal(size=(3, dim)).astype(np.float32)
    raw = [[rng.normal(size=(n, dim)).astype(np.float32) for n in sizes] for sizes in ((4, 0, 6), (0,), (2, 5))]

    def signs(v: np.ndarray) -> np.ndarray:
        return np.where(v > 0, 1.0, -1.0) / np.sqrt(dim)

    def best(texts: list[np.ndarray]) -> np.ndarray:  # each question piece's best match over ``texts``
        return (signs(asked) @ signs(np.vstack(texts)).T).max(axis=1)

    per_paper, per_text = text_matches(token_bits(asked), [[token_bits(t) for t in p] for p in raw], dim)
    assert per_paper == pytest.approx([float(best(p).mean()) if sum(map(len, p)) else 0.0 for p in raw])
    assert per_text == [pytest.approx([float(best([t]).mean()) if len(t) else 0.0 for t in p]) for p in raw]
    nan_paper, nan_text = text_matches(None, [[token_bits(t) for t in p] for p in raw], dim)
    assert np.isnan(nan_paper).all() and all(np.isnan(t).all() for t in nan_text)


def test_pieces_that_do_not_split_per_text_still_measure_the_paper(tmp_path: Path) -> None:
    # bits kept under another sentence split (their count no longer adds up per text): the paper is
    # still matched as a whole, and only its sentences' piece features are left unmeasured
    settings = _two_papers(tmp_path)
    a = get_assistant(settings)
    before = Evidence(a.index, LORA_Q, a.retriever.retrieve(LORA_Q, k=2))
    want = {p.hit.paper.id: p.features["tok_rare"] for p in before.papers}
    reg = a.index.registry
    pid = before.papers[0].hit.paper.id
    bits = reg.token_bits_of([pid], 48)[pid]
    reg.set_token_bits({pid: np.vstack([bits, bits[:1]])})  # one piece too many, the best match unchanged
    a.index.__dict__.pop("_profiles", None)
    ev = Evidence(a.index, LORA_Q, a.retriever.retrieve(LORA_Q, k=2))
    got = {p.hit.paper.id: p for p in ev.papers}
    assert got[pid].features["tok_rare"] == pytest.approx(want[pid])
    assert all(np.isnan(s.rare) for s in got[pid].sentences)
    other = next(p for q, p in got.items() if q != pid)
    assert all(not np.isnan(s.rare) for s in other.sentences)
