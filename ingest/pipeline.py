"""The ingest pipeline: files -> entries -> papers -> chunks -> (cached) embeddings -> Chroma + BM25.

Idempotent and incremental: unchanged papers are skipped by content hash, embeddings are cached by
text hash, chunk ids are deterministic (upserts never duplicate), and a paper's registry row is
written only after its vectors are stored, so an interrupted run is completed by the next one.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from assistant.embedders.cache import CachedEmbedder
from assistant.errors import InputError
from assistant.index import INGEST_OPEN, Index
from assistant.locking import StoreLock, WriteLock, make_folder
from assistant.models import Chunk, Paper
from assistant.profiles import embed_sentences, sentence_texts
from assistant.settings import Settings
from assistant.stores import chunk_metadata
from assistant.stores.registry import Registry
from assistant.wordpieces import paper_token_bits
from ingest.chunking import Chunker, SentenceChunker, derive_vectors
from ingest.matching import LOOKUP_BATCH, merge_with_existing, resolve_ids
from ingest.memory import release_free_memory
from ingest.parsers import LISTING_EXTENSIONS, iter_listing_files, read_listing, source_name
from ingest.parsers.base import Skip
from ingest.parsers.text import normalise_title
from ingest.records import merge_entries

Progress = Callable[[int, int], None]  # (advance by, total)
UPSERT_BATCH = 256  # papers chunked, embedded, stored and registered together (bounds ingest memory)
TRIM_EVERY = 8  # batches between handing the memory of written papers back to the OS (see ingest/memory.py)
LAST_RUN = "last_ingest"  # registry meta: digest of the last complete run's files, its generation, its counts
TITLE_KEYS = "title_keys"  # registry meta: the normalise_title version the stored title keys follow
TITLE_KEYS_VERSION = 2  # 2: invisible characters (category Cf) dropped


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
    embedded: int = 0  # texts sent to the model for chunk vectors (with 'sentences' chunking: titles + sentences)
    sentences_embedded: int = 0  # titles and abstract sentences sent to the model (judgement features)
    pieces_backfilled: int = 0  # texts run through the model again for their word pieces (older indexes, once)
    skipped: list[Skip] = field(default_factory=list)
    seconds: float = 0.0
    total_papers: int = 0
    total_chunks: int = 0

    def as_dict(self) -> dict[str, object]:
        d = self.__dict__.copy()
        d["skipped"] = [str(s) for s in self.skipped]
        return d


def ingest(
    paths: list[Path],
    settings: Settings,
    *,
    rebuild: bool = False,
    on_start: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest listing files/folders into the index named by ``settings``. ``on_start(n)`` and
    ``on_progress(k)`` count the papers embedded and written; a rebuild embeds them all first (before it
    empties the index, see :func:`_warm`) and calls ``on_start`` again when it writes them."""
    lock = WriteLock(settings.data_dir)  # one ingest per data dir at a time (held until the view is marked)
    try:
        make_folder(settings.cache_path(), "LITASSIST_CACHE_DIR" if settings.cache_dir else "LITASSIST_DATA_DIR")
        with ExitStack() as held:
            index = Index.open(settings, create=True)

            def lock_store() -> None:  # a rebuild rewrites every vector: no reader of another process may look in
                if not settings.store.chroma_host:  # from emptying the index to its last write (StoreLock)
                    held.enter_context(StoreLock(settings.data_dir).writing())

            with index.store.own_writes(index.registry.generation):  # questions of this process keep its client
                return _ingest(index, paths, rebuild, on_start, on_progress, lock_store)
    finally:  # however it ends: a failed run must not keep other ingests or readers waiting
        lock.release()


def _ingest(
    index: Index,
    paths: list[Path],
    rebuild: bool,
    on_start: Callable[[int], None] | None,
    on_progress: Callable[[int], None] | None,
    lock_store: Callable[[], None],
) -> IngestReport:
    t0 = time.perf_counter()
    report = IngestReport()
    origins: dict[Path, list[int]] = {}
    files, skips = iter_listing_files(paths, origins)
    report.skipped.extend(skips)
    digest = _inputs_digest(files)
    merged, before = None, None
    if rebuild:  # read first: a mistyped path or a file where nothing parses must not empty the index
        per_file: dict[Path, tuple[int, Skip | None]] = {}
        merged = _read(files, report, per_file)
        _refuse_rebuild(paths, skips, origins, per_file, merged)
        before = index.embedder.computed
        _warm(index, [p for p, _ in merged], report, on_start, on_progress)  # readers go on meanwhile
        lock_store()  # on_start is called again for the writing, from the cache
        index.reset()
    index.ensure_chunk_metadata()
    index.registry.ensure_arxiv_index()  # a registry written before it (here: under the write lock)
    _migrate_title_keys(index.registry)
    orphans, repair = index.reconcile()
    index.ensure_vector_copies()
    report.pieces_backfilled = index.ensure_token_copies()
    same = None if rebuild or orphans or repair else _same_as_last_run(index, digest)
    if same is not None:  # the same files into an index nobody changed since: nothing to parse or compare
        same.skipped = report.skipped + same.skipped
        same.pieces_backfilled = report.pieces_backfilled
        same.total_papers, same.total_chunks = index.registry.counts()
        same.seconds = time.perf_counter() - t0
        return same
    if merged is None:
        merged = _read(files, report)
    index.store.delete(orphans)  # vectors an interrupted run stored for papers never registered

    todo: list[tuple[Paper, str, bool]] = []  # (paper, normalised title, is_update)
    resolved = resolve_ids(index.registry, merged)  # each under the id it is written under, every id once
    report.papers = len(resolved)  # two listings' papers found to be one indexed paper count once
    del merged
    for group in _batches(resolved, LOOKUP_BATCH):
        known = index.registry.get_many([p.id for p, _ in group])
        for paper, tnorm in group:
            existing = known.get(paper.id)
            if existing is not None:
                paper = merge_with_existing(paper, existing)
                if existing.content_hash == paper.content_hash and paper.id not in repair:
                    report.unchanged += 1
                    if paper != existing:  # new source / metadata only
                        index.registry.write(paper, tnorm, None)
                        _restamp(index, paper)
                    continue
                if paper.id in repair and existing.content_hash == paper.content_hash:
                    report.repaired += 1
                else:
                    report.updated += 1
            else:
                report.new += 1
            todo.append((paper, tnorm, existing is not None))
    assert len({p.id for p, _, _ in todo}) == len(todo), "two papers of a run under one id"

    embedder = index.embedder
    chunker, by_sentence = _chunkers(index)
    if on_start:
        on_start(len(todo))  # progress counts papers: chunks are made one batch at a time
    before = embedder.computed if before is None else before  # a rebuild counts what it embedded first
    if todo:
        index.registry.set_meta(INGEST_OPEN, True)
    del resolved  # ``todo`` holds the papers still to write, and drops each batch once written
    release_free_memory()  # what parsing and the lookups freed
    written = 0
    while todo:  # chunk, embed, store, register: memory bounded by a batch
        batch = todo[:UPSERT_BATCH]
        del todo[:UPSERT_BATCH]
        own, bits, per_paper, vectors = _embedded(embedder, chunker, by_sentence, [p for p, _, _ in batch], report)
        planned = [(p, t, u, cs) for (p, t, u), cs in zip(batch, per_paper, strict=True)]
        chunks = [c for cs in per_paper for c in cs]
        metas = [chunk_metadata(p.id, c.index, p.year, p.sources) for p, _, _, cs in planned for c in cs]
        index.store.upsert([c.id for c in chunks], vectors, metas)
        start = 0
        for paper, tnorm, is_update, cs in planned:
            if is_update:
                keep = {c.id for c in cs}
                stale = set(index.store.ids(paper.id)) | set(index.registry.chunk_ids(paper.id))
                index.store.delete(sorted(stale - keep))
            index.registry.write(paper, tnorm, cs, vectors[start : start + len(cs)], own[paper.id], bits.get(paper.id))
            start += len(cs)
            report.chunks += len(cs)
        if on_progress:
            on_progress(len(batch))
        written += 1
        if written % TRIM_EVERY == 0:  # the papers written so far are freed: give their pages back
            release_free_memory()
    index.registry.delete_meta(INGEST_OPEN)
    release_free_memory()  # before the keyword index is built beside the (now largest) vector index
    report.embedded = embedder.computed - before - (report.sentences_embedded if by_sentence is None else 0)
    index.ensure_keyword_index()
    report.total_papers, report.total_chunks = index.registry.counts()
    parsed = [[sk.source, sk.locator, sk.reason] for sk in report.skipped[len(skips) :]]
    index.registry.set_meta(LAST_RUN, {
        "digest": digest, "generation": index.registry.generation(),
        "report": {"files": report.files, "entries": report.entries, "papers": report.papers, "skipped": parsed},
    })  # fmt: skip
    report.seconds = time.perf_counter() - t0
    return report


def _read(
    files: list[Path], report: IngestReport, per_file: dict[Path, tuple[int, Skip | None]] | None = None
) -> list[tuple[Paper, str]]:
    """The unique papers of ``files`` (the parsed entries are dropped here: 0.27 GB at 100k papers);
    ``per_file`` gets each file's number of entries and its first problem (or None)."""
    entries = []
    for f in files:
        res = read_listing(f)
        entries.extend(res.entries)
        report.skipped.extend(res.skipped)
        if per_file is not None:
            per_file[f] = (len(res.entries), res.skipped[0] if res.skipped else None)
    report.files, report.entries = len(files), len(entries)
    merged = merge_entries(entries)
    del entries
    release_free_memory()  # the file texts and parsed records, freed in between the papers kept
    return merged


def _refuse_rebuild(
    paths: list[Path],
    missing: list[Skip],
    origins: dict[Path, list[int]],
    per_file: dict[Path, tuple[int, Skip | None]],
    merged: list[tuple[Paper, str]],
) -> None:
    """Raise :class:`InputError` (before anything is reset) when ``--rebuild`` would empty the index of
    input that is not there: a named path (file or folder) that is missing, unreadable or gave no paper
    (``origins``: the named paths each file came from, as :func:`iter_listing_files` fills it), or a file
    read that gave none (unreadable, not UTF-8, malformed, every record bad: ``per_file``). A file of
    which only some records are bad does not stop it: the index is rebuilt from the good ones."""
    problems = [str(sk) for sk in missing]
    problems += [str(sk or Skip(source_name(f), "", "no entries found")) for f, (n, sk) in per_file.items() if n == 0]
    reported = {sk.source for sk in missing}  # a named path that gave files gave none of its papers only
    yielded = {position for came in origins.values() for position in came}  # when each of them is in problems
    for position, path in enumerate(paths):
        if position not in yielded and (name := source_name(Path(path))) not in reported:
            problems.append(f"{name}: no listing file in it ({', '.join(sorted(LISTING_EXTENSIONS))})")
    if not merged and not problems:
        problems = [f"no paper could be read from {', '.join(source_name(Path(p)) for p in paths) or 'no path'}"]
    if problems:
        more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
        raise InputError(f"--rebuild refused, the index is left as it was: {'; '.join(problems[:3])}{more}")


def _migrate_title_keys(registry: Registry) -> None:
    """Bring the title keys stored by an earlier version up to today's :func:`normalise_title` (once):
    a paper indexed under a title with invisible characters is then found again by its title, under
    the id it was filed under, instead of coming back as a duplicate."""
    if registry.get_meta(TITLE_KEYS) == str(TITLE_KEYS_VERSION):
        return
    stale = {pid: key for pid, old, title in registry.title_keys() if (key := normalise_title(title)) != old}
    if stale:
        registry.set_title_keys(stale)
    registry.set_meta(TITLE_KEYS, TITLE_KEYS_VERSION)


def _inputs_digest(files: list[Path]) -> str:
    """A digest of the listing files (path and content) an ingest reads."""
    h = hashlib.sha256()
    for f in files:
        h.update(os.fsencode(f.resolve()) + b"\0")  # a name that is not UTF-8 is bytes, not text
        if not f.is_file():  # a pipe ('ingest <(cat page.txt)') can be read once, by the parser: never the same run
            h.update(f"stream {time.time_ns()}".encode())
            continue
        try:
            with f.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
        except OSError as err:  # reading it reports the skip; a run that skipped a file can be repeated
            h.update(f"unreadable {err.errno}".encode())
    return h.hexdigest()


def _same_as_last_run(index: Index, digest: str) -> IngestReport | None:
    """The report of a re-ingest of the last complete run's files when nothing changed since (same
    files, same content, no registry write since: every paper would be found unchanged), else None."""
    raw = index.registry.get_meta(LAST_RUN)
    last = json.loads(raw) if raw else None
    if not last or last["digest"] != digest or last["generation"] != index.registry.generation():
        return None
    r = last["report"]
    return IngestReport(
        files=r["files"], entries=r["entries"], papers=r["papers"], unchanged=r["papers"],
        skipped=[Skip(*sk) for sk in r["skipped"]],
    )  # fmt: skip


T = TypeVar("T")


def _derived(
    embedder: CachedEmbedder, chunker: Chunker, papers: list[Paper], own: dict[str, np.ndarray],
    plans: list[tuple[list[list[int]], list[int]]],
) -> np.ndarray:
    """Chunk vectors of ``papers`` derived from ``own``, their title and sentence vectors.

    A sentence too long for the model (rare: > 256 word pieces) stands in its chunks for the mean of
    its pieces' vectors, so no abstract text is cut off by the model (the sentence's own vector, which
    the judgement reads, is the model's truncated one)."""
    rows = []
    for paper, (groups, sizes) in zip(papers, plans, strict=True):
        vecs = own[paper.id]
        for i, text in enumerate(sentence_texts(paper)):
            if len(text) > embedder.max_tokens - 2 and len(pieces := chunker.pieces(text)) > 1:  # short: fits
                mean = embedder.embed(pieces).mean(axis=0)
                vecs = vecs.copy() if vecs is own[paper.id] else vecs
                vecs[i] = mean / (float(np.linalg.norm(mean)) or 1.0)
        rows.append(derive_vectors(vecs[0], vecs[1:], groups, sizes))
    return np.concatenate(rows)


def _chunkers(index: Index) -> tuple[Chunker, SentenceChunker | None]:
    settings, embedder = index.settings, index.embedder
    chunker = Chunker(
        settings.ingest.chunk_size,
        settings.ingest.chunk_overlap,
        fits=lambda text: embedder.count_tokens(text) <= embedder.max_tokens,
    )
    return chunker, SentenceChunker(settings.ingest.chunk_size) if settings.ingest.chunking == "sentences" else None


def _embedded(
    embedder: CachedEmbedder, chunker: Chunker, by_sentence: SentenceChunker | None, papers: list[Paper],
    report: IngestReport | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[list[Chunk]], np.ndarray]:
    """What ``papers`` are stored with: their title + sentence vectors (judgement features), the sign bits
    of their word pieces (same model pass), their chunks and the chunks' vectors."""
    count = embedder.computed
    own = embed_sentences(embedder, papers)
    bits = paper_token_bits(embedder, papers) or {}
    if report is not None:
        report.sentences_embedded += embedder.computed - count
    if by_sentence is not None:  # every text embedded once; chunk vectors derived from them
        plans = [by_sentence.plan(paper) for paper in papers]
        vectors = _derived(embedder, chunker, papers, own, [(g, n) for _, g, n in plans])
        return own, bits, [cs for cs, *_ in plans], vectors
    per_paper = [chunker.chunk(paper) for paper in papers]
    return own, bits, per_paper, embedder.embed([c.embed_text for cs in per_paper for c in cs])


def _warm(
    index: Index, papers: list[Paper], report: IngestReport, on_start: Callable[[int], None] | None,
    on_progress: Callable[[int], None] | None,
) -> None:
    """Embed every text a rebuild of ``papers`` stores into the embedding cache, before the rebuild
    empties the index and takes the store lock: questions in other processes go on meanwhile, and then
    wait only while the rebuild writes from the cache (about 5 ms a paper: 1.4 s for the 414 seed papers,
    11 s for 2,070), not the hours a large collection takes to embed anew (they gave up after
    ``StoreLock.WAIT_S``, 120 s, with a "busy" error; past ~20k papers the writing alone takes that long)."""
    chunker, by_sentence = _chunkers(index)
    if on_start:
        on_start(len(papers))
    for batch in _batches(papers, UPSERT_BATCH):
        _embedded(index.embedder, chunker, by_sentence, batch, report)
        if on_progress:
            on_progress(len(batch))
    release_free_memory()


def _batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _restamp(index: Index, paper: Paper) -> None:
    """Give the stored vectors of an unchanged paper its new year/sources (filters read them)."""
    chunks = index.registry.chunks_of(paper.id)
    metas = [chunk_metadata(paper.id, c.index, paper.year, paper.sources) for c in chunks]
    index.store.set_metadata([c.id for c in chunks], metas)
