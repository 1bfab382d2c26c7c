"""What keeps a query's cost flat as the index grows: filters inside the stores, no full loads,
no per-query count(), no stored documents, and re-ingest without listing every id."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from assistant import retrieval
from assistant.index import CHUNK_META, Index
from assistant.models import Filters
from assistant.retrieval import Retriever, chroma_where
from assistant.settings import Settings
from assistant.stores.bm25 import BM25Index
from assistant.stores.chroma import ChromaStore
from assistant.stores.registry import Registry
from assistant.text import terms
from ingest import pipeline
from ingest.pipeline import ingest

ROWS = [
    {"id": "a", "title": "Adapters reduce forgetting", "abstract": "Low-rank adapters reduce catastrophic forgetting.", "year": 2022},
    {"id": "b", "title": "Adapters for speech", "abstract": "Low-rank adapters reduce forgetting in speech models.", "year": 2024},
    {"id": "c", "title": "Forgetting without adapters", "abstract": "Replay buffers reduce catastrophic forgetting."},
]  # fmt: skip
Q = "adapters that reduce catastrophic forgetting"


def _setup(tmp_path: Path, rows: list[dict[str, object]] = ROWS, name: str = "first.jsonl") -> Settings:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    src = tmp_path / name
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    ingest([src], settings)
    return settings


def _ids(settings: Settings, mode: str, **filters: object) -> set[str]:
    return {h.paper.id for h in Retriever(Index.open(settings)).retrieve(Q, k=10, mode=mode, filters=Filters(**filters))}


def test_chroma_where_uses_chunk_metadata_not_paper_lists() -> None:
    assert chroma_where(Filters(), None) is None
    assert chroma_where(Filters(since=2023), None) == {"year": {"$gte": 2023}}
    assert chroma_where(Filters(since=2020, until=2023), ["x.jsonl", "y.jsonl"]) == {
        "$and": [
            {"year": {"$gte": 2020}}, {"year": {"$lte": 2023}},
            {"$or": [{"sources": {"$contains": "x.jsonl"}}, {"sources": {"$contains": "y.jsonl"}}]},
        ]
    }  # fmt: skip
    assert chroma_where(Filters(papers=["a"], exclude=["b"]), None) == {
        "$and": [{"paper_id": {"$in": ["a"]}}, {"paper_id": {"$nin": ["b"]}}]
    }


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_inside_each_store(tmp_path: Path, mode: str) -> None:
    s = _setup(tmp_path)
    assert _ids(s, mode) == {"a", "b", "c"}
    assert _ids(s, mode, since=2023) == {"b"}
    assert _ids(s, mode, until=2023) == {"a"}  # papers without a year fail a year filter
    assert _ids(s, mode, source="FIRST") == {"a", "b", "c"}
    assert _ids(s, mode, source="second") == set()
    # a follow-up's narrowing to the previous answer's papers, or past them ("Any others?")
    assert _ids(s, mode, papers=["a", " c ", "no-such-id"]) == {"a", "c"}
    assert _ids(s, mode, papers=[]) == set()
    assert _ids(s, mode, exclude=["a"]) == {"b", "c"}
    assert _ids(s, mode, papers=["a", "b"], exclude=["a"], since=2023) == {"b"}
    # an unchanged paper seen in a second listing gains that source, in both stores
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps(ROWS[2]) + "\n", encoding="utf-8")
    report = ingest([second], s)
    assert report.unchanged == 1 and report.embedded == 0
    assert _ids(s, mode, source="second") == {"c"}


def test_index_built_before_chunk_metadata_is_upgraded(tmp_path: Path) -> None:
    s = _setup(tmp_path)
    index = Index.open(s)
    ids = index.store.ids()
    index.store.set_metadata(ids, [{"paper_id": cid.rsplit("#", 1)[0], "chunk": 0} for cid in ids])  # old layout
    index.registry.delete_meta(CHUNK_META)
    assert _ids(s, "dense", since=2023) == {"b"}


def test_queries_never_load_everything_or_count(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path)

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("a query must not load every paper/chunk or count the collection")

    for name in ("papers", "chunks", "chunk_ids", "paper_ids"):
        monkeypatch.setattr(Registry, name, boom)
    monkeypatch.setattr(ChromaStore, "count", boom)
    from assistant import ask

    answer = ask("Do low-rank adapters reduce catastrophic forgetting?", settings=s, filters={"since": 2020})
    assert {h.paper.id for h in answer.contexts} == {"a", "b"}
    assert not answer.refused and answer.citations


def test_chroma_holds_no_documents(tmp_path: Path) -> None:
    index = Index.open(_setup(tmp_path))
    docs = index.store.collection.get(include=["documents"])["documents"]
    assert docs and all(d is None for d in docs)


def test_clean_reingest_does_not_list_every_id(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path)

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("a clean re-ingest must not list every vector id")

    monkeypatch.setattr(ChromaStore, "ids", boom)
    report = ingest([tmp_path / "first.jsonl"], s)
    assert (report.unchanged, report.embedded) == (3, 0)


# --- BM25: scores from raw counts, updated in proportion to what changed ----------------------------
DOCS = {
    "p1": "Low-rank adapters reduce catastrophic forgetting in language models.",
    "p2": "Replay buffers reduce forgetting; adapters adapters adapters.",
    "p3": "Speech recognition with transformers and low-rank adapters.",
    "p4": "Diffusion models for image generation.",
}
QUERIES = ["adapters reduce forgetting", "low-rank speech", "diffusion image diffusion", "nothing matches here"]


def _scores(index: BM25Index) -> dict[str, dict[str, float]]:
    return {q: dict(zip(index.ids, index.scores(q).tolist(), strict=True)) for q in QUERIES}


def test_bm25_scores_equal_bm25s_lucene() -> None:
    import bm25s

    ids, texts = list(DOCS), list(DOCS.values())
    ours = BM25Index.build(ids, texts, generation=1)
    ref = bm25s.BM25(k1=1.2, b=0.75)  # bm25s's default variant is Lucene
    ref.index([terms(t) for t in texts], show_progress=False)
    for q in QUERIES:
        toks = [t for t in ours.query_terms(q) if t in ours.df]
        expected = ref.get_scores(toks) if toks else np.zeros(len(ids))
        assert ours.scores(q) == pytest.approx(np.asarray(expected), rel=1e-5, abs=1e-6), q


def test_bm25_update_equals_full_build() -> None:
    old = BM25Index.build(["p1", "p2", "p3"], [DOCS["p1"], "Old text about speech.", DOCS["p3"]], 1, [2020, 2021, None])
    changed = [("p2", DOCS["p2"], 2024, ["b.jsonl"]), ("p4", DOCS["p4"], 2019, ["b.jsonl"])]
    new = old.updated(changed, 2)
    full = BM25Index.build(list(DOCS), list(DOCS.values()), 2, [2020, 2024, None, 2019], [[], ["b.jsonl"], [], ["b.jsonl"]])
    assert sorted(new.ids) == sorted(full.ids) and new.df == full.df
    got, want = _scores(new), _scores(full)
    for q in QUERIES:
        assert got[q] == pytest.approx(want[q], rel=1e-6), q
    m_new, m_full = new.mask(2020, None, None), full.mask(2020, None, None)
    assert m_new is not None and m_full is not None
    assert {i for i, k in zip(new.ids, m_new, strict=True) if k} == {i for i, k in zip(full.ids, m_full, strict=True) if k}
    assert "speech" in old.df and new.df.get("speech") == 1  # p2's old text is gone


def test_ingest_updates_bm25_incrementally(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path)
    more = tmp_path / "more.jsonl"
    rows = [{"id": "d", "title": "Adapters in vision", "abstract": "Adapters for vision transformers.", "year": 2021},
            {**ROWS[0], "abstract": "Low-rank adapters reduce catastrophic forgetting and interference."}]  # fmt: skip
    more.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("adding papers must not re-index every paper")

    with monkeypatch.context() as m:
        m.setattr(BM25Index, "build", boom)
        m.setattr(BM25Index, "from_rows", boom)
        report = ingest([more], s)
    assert (report.new, report.updated) == (1, 1)
    incremental = Index.open(s).ensure_keyword_index()
    assert incremental.generation == Index.open(s).registry.generation()
    shutil.rmtree(Index.open(s).dir / "bm25")
    full = Index.open(s).ensure_keyword_index()
    assert sorted(incremental.ids) == sorted(full.ids) == ["a", "b", "c", "d"]
    for q in [Q, "vision adapters", "interference"]:
        got = dict(zip(incremental.ids, incremental.scores(q).tolist(), strict=True))
        assert got == pytest.approx(dict(zip(full.ids, full.scores(q).tolist(), strict=True)), rel=1e-6), q


def test_keyword_index_after_removal_is_rebuilt(tmp_path: Path) -> None:
    s = _setup(tmp_path)
    reader = Index.open(s)
    assert sorted(reader.ensure_keyword_index().ids) == ["a", "b", "c"]  # held in memory by this reader
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps(ROWS[1]) + "\n", encoding="utf-8")
    ingest([other], s, rebuild=True)  # another process drops a and c
    shutil.rmtree(reader.dir / "bm25")
    assert reader.ensure_keyword_index().ids == ["b"]  # an update of the held index cannot drop a and c


# --- broad filters: unfiltered over-fetch, kept by the paper mask ------------------------------------
MANY = [
    {"id": f"m{i}", "title": f"Adapters study {i}", "abstract": f"Adapters reduce forgetting in setting {i}.",
     "year": 2024 if i % 4 == 0 else 2020}
    for i in range(16)
]  # fmt: skip


def _spy_where(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    calls: list[object] = []
    real = ChromaStore.query

    def spy(self: ChromaStore, vector: np.ndarray, n: int, where: dict[str, object] | None = None) -> object:
        calls.append(where)
        return real(self, vector, n, where)

    monkeypatch.setattr(ChromaStore, "query", spy)
    return calls


def _dense(settings: Settings, k: int, **filters: object) -> list[tuple[str, float | None, list[str]]]:
    hits = Retriever(Index.open(settings)).retrieve(Q, k=k, mode="dense", filters=Filters(**filters))
    return [(h.paper.id, h.dense, h.chunk_ids) for h in hits]


def test_broad_filter_skips_where_with_the_same_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path, MANY, "many.jsonl")
    calls = _spy_where(monkeypatch)
    broad = _dense(s, 16, since=2023)
    assert calls == [None]  # a quarter of the papers pass: no pre-filter inside Chroma
    assert {pid for pid, *_ in broad} == {r["id"] for r in MANY if r["year"] == 2024}
    monkeypatch.setattr(retrieval, "BROAD_FILTER", 1.01)  # force the store's pre-filter
    calls.clear()
    assert _dense(s, 16, since=2023) == broad
    assert calls == [{"year": {"$gte": 2023}}]


def test_broad_filter_falls_back_to_where_when_too_few_survive(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path, MANY, "many.jsonl")
    monkeypatch.setattr(retrieval, "OVERFETCH_MAX", 10)  # 10 nearest of 16: at most 4 of n=8 pass
    s.retrieval.candidates = 8
    calls = _spy_where(monkeypatch)
    hits = _dense(s, 2, since=2023)
    assert calls == [None, {"year": {"$gte": 2023}}]
    assert len(hits) == 2 and all(pid in {"m0", "m4", "m8", "m12"} for pid, *_ in hits)


def test_dense_query_reads_no_metadata(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = Index.open(_setup(tmp_path))
    col = index.store.collection
    real = col.query
    seen: list[object] = []

    def spy(**kw: object) -> object:
        seen.append(kw["include"])
        return real(**kw)

    monkeypatch.setattr(col, "query", spy)
    found = index.store.query(index.embed_query(Q), 10)
    assert seen == [["distances"]]  # metadata costs a SQLite lookup per result; the chunk id names the paper
    assert {pid for _, pid, _ in found} == {"a", "b", "c"} and all(cid.startswith(f"{pid}#") for cid, pid, _ in found)


# --- re-ingest of the same files into an unchanged index --------------------------------------------
def test_reingest_of_unchanged_files_reads_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = _setup(tmp_path)
    first = tmp_path / "first.jsonl"
    with monkeypatch.context() as m:
        m.setattr(pipeline, "_same_as_last_run", lambda *_: None)  # the full comparison, for reference
        slow = ingest([first], s).as_dict()

    def boom(*_: object, **__: object) -> None:
        raise AssertionError("nothing changed: the listing must not be parsed again")

    with monkeypatch.context() as m:
        m.setattr(pipeline, "read_listing", boom)
        fast = ingest([first], s).as_dict()
    assert slow.pop("seconds") >= 0 and fast.pop("seconds") >= 0
    assert fast == slow and fast["unchanged"] == 3

    # any change since is read in full: the file's content, or another ingest writing the index
    first.write_text(first.read_text(encoding="utf-8").replace("Replay buffers", "Rehearsal buffers"), encoding="utf-8")
    assert ingest([first], s).updated == 1
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({**ROWS[1], "abstract": "Changed elsewhere."}) + "\n", encoding="utf-8")
    assert ingest([other], s).updated == 1
    assert ingest([first], s).updated == 1  # b is set back to this file's abstract
    assert "Changed elsewhere." not in Index.open(s).papers["b"].abstract


# --- evidence reads a question's papers together, and keeps a bounded cache ---------------------------
def test_evidence_reads_all_candidate_papers_in_one_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import evidence

    index = Index.open(_setup(tmp_path))
    hits = Retriever(index).retrieve(Q, k=10)
    calls = {"get": 0, "lookup": 0, "chunk_vectors_of": 0, "text_vectors_of": 0}
    for owner, name in (
        (index.store.collection, "get"), (index.embedder, "lookup"),
        (index.registry, "chunk_vectors_of"), (index.registry, "text_vectors_of"),
    ):  # fmt: skip
        real = getattr(owner, name)

        def spy(*a: object, _real: object = real, _name: str = name, **kw: object) -> object:
            calls[_name] += 1
            return _real(*a, **kw)  # type: ignore[operator]

        monkeypatch.setattr(owner, name, spy)
    ev = evidence.Evidence(index, Q, hits)
    assert len(ev.papers) == 3 and all(p.sentences and p.features["chunk_max"] > 0 for p in ev.papers)
    # two registry queries for all papers; neither Chroma's get (~0.1 ms per id) nor a cache row per sentence
    assert calls == {"get": 0, "lookup": 0, "chunk_vectors_of": 1, "text_vectors_of": 1}
    evidence.Evidence(index, Q + " again", hits)
    assert calls == {"get": 0, "lookup": 0, "chunk_vectors_of": 1, "text_vectors_of": 1}  # profiles are kept


def test_registry_rows_hold_the_vectors_scoring_reads_and_old_indexes_get_them(tmp_path: Path) -> None:
    from assistant import evidence, profiles
    from assistant.embedders.cache import text_key
    from assistant.index import VECTOR_COPIES

    s = _setup(tmp_path)
    index = Index.open(s)
    rows = index.registry.chunk_vectors_of(["a", "b", "c"])
    ids = [cid for pid in rows for cid, _ in rows[pid]]
    stored = index.store.vectors(ids)
    assert ids and all(np.allclose(vec, stored[cid], atol=1e-6) for pid in rows for cid, vec in rows[pid])
    texts = {pid: profiles.sentence_texts(index.papers[pid]) for pid in ("a", "b", "c")}
    cached = index.embedder.lookup([t for ts in texts.values() for t in ts])
    own = index.registry.text_vectors_of(["a", "b", "c"])
    assert set(own) == {"a", "b", "c"}
    assert all(np.array_equal(own[p], np.concatenate([cached[text_key(t)] for t in texts[p]])) for p in own)
    hits = Retriever(index).retrieve(Q, k=10)
    before = [(p.features["chunk_max"], p.features["sent_max"]) for p in evidence.Evidence(index, Q, hits).papers]
    # an index built before the registry kept vectors: scoring reads them from the store and cache ...
    index.registry._db.execute("UPDATE chunks SET vec = NULL")
    index.registry._db.execute("UPDATE papers SET vec = NULL")
    index.registry.delete_meta(VECTOR_COPIES)
    old = Index.open(s)
    after = [(p.features["chunk_max"], p.features["sent_max"]) for p in evidence.Evidence(old, Q, hits).papers]
    assert np.allclose(after, before, atol=1e-6)
    # ... and the next ingest copies them into the registry once
    ingest([tmp_path / "first.jsonl"], s)
    again = Index.open(s).registry
    assert all(v is not None for pid, vs in again.chunk_vectors_of(["a", "b", "c"]).items() for _, v in vs)
    assert {p: v.tobytes() for p, v in again.text_vectors_of(["a", "b", "c"]).items()} == {
        p: v.tobytes() for p, v in own.items()
    }


def test_a_vector_copy_that_does_not_match_the_sentence_split_is_not_used(tmp_path: Path) -> None:
    from assistant import profiles

    index = Index.open(_setup(tmp_path))
    paper = index.papers["a"]
    expected = profiles.embed_sentences(index.embedder, [paper])["a"]
    # a copy made under another sentence split: twice as many rows (same total size as n rows of 2 x dim)
    index.registry.set_text_vectors({"a": np.concatenate([expected, expected])})
    (prof,) = profiles.profiles(Index.open(index.settings), [paper])
    assert prof.sentence_vectors.shape == expected[1:].shape
    assert np.array_equal(prof.sentence_vectors, expected[1:]) and np.array_equal(prof.title_vector, expected[0])


def test_a_paper_whose_listing_only_changed_keeps_its_vector_copy(tmp_path: Path) -> None:
    s = _setup(tmp_path)
    before = Index.open(s).registry.text_vectors_of(["a"])["a"]
    ingest([tmp_path / "first.jsonl"], s)  # nothing changed
    second = tmp_path / "second.jsonl"
    second.write_text(json.dumps(ROWS[0]) + "\n", encoding="utf-8")  # the same paper from a second listing
    ingest([second], s)
    index = Index.open(s)
    assert index.papers["a"].sources == ["first.jsonl", "second.jsonl"]
    assert np.array_equal(index.registry.text_vectors_of(["a"])["a"], before)


def test_profile_cache_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import profiles

    monkeypatch.setattr(profiles, "PROFILE_CACHE", 2)
    index = Index.open(_setup(tmp_path))
    hits = Retriever(index).retrieve(Q, k=10)
    first = profiles.profiles(index, [h.paper for h in hits])
    assert len(first) == 3 and len(index.__dict__["_profiles"]) == 2  # the most recent two
    again = profiles.profiles(index, [h.paper for h in hits[1:]])
    assert again[0] is first[1] and again[1] is first[2]


def test_search_breadth_is_a_setting_and_small_collections_are_searched_exhaustively(tmp_path: Path) -> None:
    from assistant.stores.chroma import EXACT_UP_TO

    s = _setup(tmp_path)
    narrow = s.model_copy(update={"store": s.store.model_copy(update={"search_ef": 64})})
    # 3 vectors: searched with ef EXACT_UP_TO whatever the setting, so every index of them answers alike
    assert Index.open(narrow).store.collection.configuration["hnsw"]["ef_search"] == EXACT_UP_TO
    # a large collection searches with the setting (stored with the collection)
    assert ChromaStore.open(narrow, EXACT_UP_TO + 1).collection.configuration["hnsw"]["ef_search"] == 64
    assert _ids(narrow, "dense") == {"a", "b", "c"}


def test_assistant_loads_vectors_and_keyword_index_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.answering import Assistant

    s = _setup(tmp_path)
    started: list[object] = []
    real = Index.prefetch
    monkeypatch.setattr(Index, "prefetch", lambda self: started.append(real(self)) or started[-1])
    a = Assistant(s)
    assert len(started) == 1
    started[0].join(timeout=60)  # type: ignore[attr-defined]
    assert a.index._bm25 is not None  # loaded before any question asked for it
    # a failure while prefetching is left to the question that follows: nothing escapes the thread
    escaped: list[object] = []
    monkeypatch.setattr(threading, "excepthook", escaped.append)
    monkeypatch.setattr(ChromaStore, "warm", lambda self: (_ for _ in ()).throw(RuntimeError("store down")))
    thread = real(Index.open(s))
    thread.join(timeout=60)
    assert not thread.is_alive() and escaped == []


@pytest.mark.parametrize("abstract", [
    "Low-rank adapters reduce forgetting. They also e.g. help speech models.",
    "Our assistant.Based on prior work, adapters help.",  # glued sentences: the whole text tokenizes otherwise
])  # fmt: skip
def test_profile_document_terms_are_the_terms_of_title_and_abstract(tmp_path: Path, abstract: str) -> None:
    from assistant import profiles

    s = _setup(tmp_path, [{"id": "g", "title": "Adapters, again", "abstract": abstract}])
    index = Index.open(s)
    (prof,) = profiles.profiles(index, [index.papers["g"]])
    assert prof.doc_terms == frozenset(terms(f"Adapters, again {abstract}"))
