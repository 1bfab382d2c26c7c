"""Ingest gives the memory it freed back to the OS (its peak must not carry the parsing peak and
every written paper next to Chroma's HNSW index; the figures are in ``make bench-scale``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from assistant.index import Index
from assistant.settings import Settings
from assistant.stores.chroma import ChromaStore
from ingest import memory, pipeline


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(memory._malloc_trim() is None, reason="needs glibc's malloc_trim (Linux)")
def test_release_free_memory_returns_pages_freed_between_live_blocks() -> None:
    # ~1 KB blocks (beyond CPython's small-object allocator: malloc), like abstracts and file lines;
    # every 16th survives, so the heap cannot shrink from its top and the freed pages stay resident
    blocks = [bytes([i % 251]) * 1000 + str(i).encode() for i in range(160_000)]
    keep = blocks[15::16]
    del blocks
    before = _rss_mb()
    assert memory.release_free_memory()
    after = _rss_mb()
    assert before - after > 60, f"RSS {before:.0f} -> {after:.0f} MB: freed pages were not returned"
    assert len(keep) == 10_000


def test_release_free_memory_is_a_noop_without_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    memory._malloc_trim.cache_clear()
    monkeypatch.setattr(sys, "platform", "darwin")
    try:
        assert memory.release_free_memory() is False
    finally:
        memory._malloc_trim.cache_clear()


def test_ingest_releases_memory_after_parsing_while_writing_and_before_bm25(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events: list[str] = []
    monkeypatch.setattr(pipeline, "release_free_memory", lambda: events.append("release") or True)
    monkeypatch.setattr(pipeline, "UPSERT_BATCH", 1)
    monkeypatch.setattr(pipeline, "TRIM_EVERY", 2)
    upsert, keyword = ChromaStore.upsert, Index.ensure_keyword_index
    monkeypatch.setattr(ChromaStore, "upsert", lambda self, *a, **k: (events.append("upsert"), upsert(self, *a, **k))[1])
    monkeypatch.setattr(Index, "ensure_keyword_index", lambda self: (events.append("bm25"), keyword(self))[1])
    src = tmp_path / "five.jsonl"
    src.write_text("".join(json.dumps({"id": f"p{i}", "title": f"Paper {i} on adapters",
                                       "abstract": f"Adapters number {i} reduce forgetting."}) + "\n"
                           for i in range(5)), encoding="utf-8")  # fmt: skip
    pipeline.ingest([src], Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache"))
    first = events.index("upsert")
    assert "release" in events[:first], "the parsing peak is given back before the first vectors are stored"
    writing = events[first : events.index("bm25")]
    assert writing == ["upsert", "upsert", "release", "upsert", "upsert", "release", "upsert", "release"], (
        "every TRIM_EVERY batches, and once more before the keyword index is built"
    )
