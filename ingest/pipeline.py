"""The ingest pipeline: files -> entries -> papers -> chunks -> (cached) embeddings -> Chroma + BM25.

Idempotent and incremental: unchanged papers are skipped by content hash, embeddings are cached by
text hash, chunk ids are deterministic (upserts never duplicate), and a paper's registry row is
written only after its vectors are stored, so an interrupted run is completed by the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from assistant.index import Index
from assistant.locking import WriteLock
from assistant.models import Chunk, Paper
from assistant.settings import Settings
from ingest.chunking import Chunker
from ingest.parsers import iter_listing_files, read_listing
from ingest.parsers.base import Skip
from ingest.records import merge_entries

Progress = Callable[[int, int], None]  # (advance by, total)
UPSERT_BATCH = 64  # papers per Chroma upsert


@dataclass
class IngestReport:
    """The closing summary of one ingest run."""

    files: int = 0
    entries: int = 0
    papers: int = 0  # unique papers in the input
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    repaired: int = 0
    chunks: int = 0  # chunks (re)written this run
    embedded: int = 0  # texts actually sent to the embedding model
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    total_papers: int = 0
    total_chunks: int = 0

    def as_dict(self) -> dict[str, object]:
        d = self.__dict__.copy()
        d["skipped"] = [str(s) for s in self.skipped]
        return d


def _merge_with_existing(paper: Paper, existing: Paper) -> Paper:
    """Keep what the index already knows that this listing lacks; union the sources."""
    data = paper.model_dump()
    for key, value in existing.model_dump().items():
        if key in ("sources", "content_hash", "abstract", "title"):
            continue
        if data.get(key) in (None, [], "") and value not in (None, [], ""):
            data[key] = value
    data["sources"] = list(dict.fromkeys([*existing.sources, *paper.sources]))
    if existing.abstract.startswith(paper.abstract) and len(existing.abstract) > len(paper.abstract):
        data["abstract"], data["content_hash"] = existing.abstract, existing.content_hash  # truncated copy
    return Paper.model_validate(data)


def _same_paper(paper: Paper, known_id: str, claimed: set[str]) -> bool:
    """Whether ``paper`` is the paper registered as ``known_id`` under the same title: not when both
    carry different arXiv ids (two papers sharing a title), and not when a paper of this run holds
    ``known_id`` itself (taking it would overwrite that paper)."""
    if paper.arxiv_id and known_id.startswith("arxiv:") and known_id != f"arxiv:{paper.arxiv_id}":
        return False
    return known_id not in claimed


def ingest(
    paths: list[Path],
    settings: Settings,
    *,
    rebuild: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest listing files/folders into the index named by ``settings``."""
    t0 = time.perf_counter()
    lock = WriteLock(settings.data_dir)  # one ingest per data dir at a time (held until we return)
    report = IngestReport()
    files, skips = iter_listing_files(paths)
    report.skipped.extend(skips)
    entries = []
    for f in files:
        res = read_listing(f)
        entries.extend(res.entries)
        report.skipped.extend(res.skipped)
    report.files, report.entries = len(files), len(entries)
    merged = merge_entries(entries)
    report.papers = len(merged)

    index = Index.open(settings, create=True)
    if rebuild:
        index.reset()
    orphans, repair = index.reconcile()
    index.store.delete(orphans)  # vectors an interrupted run stored for papers never registered

    todo: list[tuple[Paper, str, bool]] = []  # (paper, normalised title, is_update)
    claimed = {p.id for p, _ in merged}  # ids this run's papers hold; no other paper may take one
    for paper, tnorm in merged:
        known_id = index.registry.id_for_title(tnorm)
        if known_id and known_id != paper.id and _same_paper(paper, known_id, claimed):
            paper.id = known_id  # the same paper seen before under another id keeps its first id
        existing = index.registry.get(paper.id)
        if existing is not None:
            paper = _merge_with_existing(paper, existing)
            if existing.content_hash == paper.content_hash and paper.id not in repair:
                report.unchanged += 1
                if paper != existing:
                    index.registry.write(paper, tnorm, None)  # new source / metadata only
                continue
            if paper.id in repair and existing.content_hash == paper.content_hash:
                report.repaired += 1
            else:
                report.updated += 1
        else:
            report.new += 1
        todo.append((paper, tnorm, existing is not None))

    embedder = index.embedder
    chunker = Chunker(
        settings.ingest.chunk_size,
        settings.ingest.chunk_overlap,
        fits=lambda text: embedder.count_tokens(text) <= embedder.max_tokens,
    )
    planned: list[tuple[Paper, str, bool, list[Chunk]]] = [(p, t, u, chunker.chunk(p)) for p, t, u in todo]
    texts = [c.embed_text for *_, chunks in planned for c in chunks]
    if on_start:
        on_start(len(texts))
    before = embedder.computed
    vectors = embedder.embed(texts, on_batch=on_progress) if texts else None
    report.embedded = embedder.computed - before

    offset = 0
    for start in range(0, len(planned), UPSERT_BATCH):
        group = planned[start : start + UPSERT_BATCH]
        ids, docs, metas = [], [], []
        for paper, _, _, chunks in group:
            for c in chunks:
                ids.append(c.id)
                docs.append(c.embed_text)
                metas.append({"paper_id": paper.id, "chunk": c.index})
        assert vectors is not None
        index.store.upsert(ids, vectors[offset : offset + len(ids)], docs, metas)
        offset += len(ids)
        for paper, tnorm, is_update, chunks in group:
            if is_update:
                keep = {c.id for c in chunks}
                stale = set(index.store.ids(paper.id)) | set(index.registry.chunk_ids(paper.id))
                index.store.delete(sorted(stale - keep))
            index.registry.write(paper, tnorm, chunks)
            report.chunks += len(chunks)

    index.ensure_keyword_index()
    report.total_papers, report.total_chunks = index.registry.counts()
    report.seconds = time.perf_counter() - t0
    lock.release()
    return report
