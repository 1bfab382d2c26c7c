"""What keeps a query's cost flat as the index grows: filters inside the stores, no full loads,
no per-query count(), no stored documents, and re-ingest without listing every id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.index import CHUNK_META, Index
from assistant.models import Filters
from assistant.retrieval import Retriever, chroma_where
from assistant.settings import Settings
from assistant.stores.chroma import ChromaStore
from assistant.stores.registry import Registry
from ingest.pipeline import ingest

ROWS = [
    {"id": "a", "title": "Adapters reduce forgetting", "abstract": "Low-rank adapters reduce catastrophic forgetting.", "year": 2022},
    {"id": "b", "title": "Adapters for speech", "abstract": "Low-rank adapters reduce forgetting in speech models.", "year": 2024},
    {"id": "c", "title": "Forgetting without adapters", "abstract": "Replay buffers reduce catastrophic forgetting."},
]  # fmt: skip
Q = "adapters that reduce catastrophic forgetting"


def _setup(tmp_path: Path) -> Settings:
    settings = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")
    src = tmp_path / "first.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
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


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_filters_inside_each_store(tmp_path: Path, mode: str) -> None:
    s = _setup(tmp_path)
    assert _ids(s, mode) == {"a", "b", "c"}
    assert _ids(s, mode, since=2023) == {"b"}
    assert _ids(s, mode, until=2023) == {"a"}  # papers without a year fail a year filter
    assert _ids(s, mode, source="FIRST") == {"a", "b", "c"}
    assert _ids(s, mode, source="second") == set()
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
