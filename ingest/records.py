"""From parsed entries to unique :class:`Paper` records with stable ids."""

from __future__ import annotations

import hashlib

from assistant.models import Paper
from ingest.parsers.base import Entry
from ingest.parsers.text import normalise_title


def content_hash(title: str, abstract: str) -> str:
    """What decides re-embedding: the text that is embedded (title + abstract)."""
    return hashlib.sha256(f"{' '.join(title.split())}\n{' '.join(abstract.split())}".encode()).hexdigest()


def paper_id(entry: Entry) -> str:
    """The record's own id (``doi:…``, ``pmid:…``, ``s2:…`` or its ``id`` as given), else
    'arxiv:<id>' when the arXiv id is known, else 't:' + hash of the normalised title."""
    if entry.ref:
        return entry.ref
    if entry.arxiv_id:
        return f"arxiv:{entry.arxiv_id}"
    return "t:" + hashlib.sha1(normalise_title(entry.title).encode()).hexdigest()[:16]


def _better(a: str | None, b: str | None) -> str | None:
    return a if a else b


def other_arxiv(a: str | None, b: str | None) -> bool:
    """Whether two records of one title carry different arXiv ids: two papers, not one."""
    return bool(a and b and a != b)


def has_own_id(pid: str) -> bool:
    """Whether ``pid`` is an id the record carried itself (not an arXiv id or a title hash)."""
    return not pid.startswith(("t:", "arxiv:"))


def merge_entries(entries: list[Entry]) -> list[tuple[Paper, str]]:
    """Deduplicate entries into papers: ids first, then titles.

    An entry with its own id (:attr:`Entry.ref`) is the paper of that id and never merges by title, so
    the same title under two ids stays two papers; other entries merge by arXiv id or normalised title,
    except that two entries of one title with different arXiv ids are two papers.
    Entries are taken in three passes (those with their own id, then those with an arXiv id, then the
    rest, each in listing order), so what merges with what does not depend on the order of the
    listings: an entry without ids merges with the paper of its title even when it comes first.
    Returns ``(paper, normalised title)`` in first-seen order. When a paper appears several times, the
    longest abstract wins and every listing it came from is kept in ``sources``.
    """
    by_key: dict[str, Paper] = {}
    title_to_key: dict[str, str] = {}
    arxiv_to_key: dict[str, str] = {}  # an arXiv id is one paper, whatever key it was first filed under
    first: dict[str, int] = {}  # key -> position of its first entry in the listings (the output order)
    passes = sorted(range(len(entries)), key=lambda i: 0 if entries[i].ref else 1 if entries[i].arxiv_id else 2)
    for pos in passes:
        e = entries[pos]
        tnorm = normalise_title(e.title)
        same_title = title_to_key.get(tnorm)
        if same_title and other_arxiv(e.arxiv_id, by_key[same_title].arxiv_id):
            same_title = None  # two arXiv ids under one title: two papers (as across runs, pipeline._same_paper)
        key = e.ref or (arxiv_to_key.get(e.arxiv_id) if e.arxiv_id else None) or same_title or paper_id(e)
        title_to_key.setdefault(tnorm, key)
        if e.arxiv_id and not e.ref:
            arxiv_to_key.setdefault(e.arxiv_id, key)
        old = by_key.get(key)
        first[key] = min(first.get(key, pos), pos)
        if old is None:
            by_key[key] = Paper(
                id=key, title=" ".join(e.title.split()), abstract=" ".join(e.abstract.split()),
                authors=e.authors, n_authors=e.n_authors or (len(e.authors) or None), date=e.date, year=e.year,
                date_iso=e.date_iso, upvotes=e.upvotes, org=e.org, url=e.url, arxiv_id=e.arxiv_id,
                venue=e.venue, sources=[e.source],
            )
            continue
        abstract = " ".join(e.abstract.split())
        if len(abstract) > len(old.abstract):
            old.abstract = abstract
        if e.source not in old.sources:
            old.sources.append(e.source)
        if e.year and not old.year:
            old.year, old.date, old.date_iso = e.year, e.date, e.date_iso
        old.date = _better(old.date, e.date)
        old.upvotes = max(old.upvotes or 0, e.upvotes or 0) or None
        old.org = _better(old.org, e.org)
        old.url = _better(old.url, e.url)
        old.arxiv_id = _better(old.arxiv_id, e.arxiv_id)
        old.venue = _better(old.venue, e.venue)
        old.authors = old.authors or e.authors
        old.n_authors = old.n_authors or e.n_authors
    out = []
    for key in sorted(by_key, key=first.__getitem__):
        p = by_key[key]
        p.content_hash = content_hash(p.title, p.abstract)
        out.append((p, normalise_title(p.title)))
    return out
