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


def _absorb(old: Paper, new: Entry | Paper) -> None:
    """Merge ``new`` (a later entry or paper of the same paper) into ``old``: the longer abstract
    wins, sources are united, and every other field ``old`` has is kept (``new`` fills the gaps)."""
    abstract = " ".join(new.abstract.split())
    if len(abstract) > len(old.abstract):
        old.abstract = abstract
    for source in new.sources if isinstance(new, Paper) else [new.source]:
        if source not in old.sources:
            old.sources.append(source)
    if new.year and not old.year:
        old.year, old.date, old.date_iso = new.year, new.date, new.date_iso
    old.date = _better(old.date, new.date)
    old.upvotes = max(old.upvotes or 0, new.upvotes or 0) or None
    old.org = _better(old.org, new.org)
    old.url = _better(old.url, new.url)
    old.arxiv_id = _better(old.arxiv_id, new.arxiv_id)
    old.venue = _better(old.venue, new.venue)
    old.authors = old.authors or new.authors
    old.n_authors = old.n_authors or new.n_authors


def merge_papers(first: Paper, second: Paper) -> Paper:
    """``first`` with ``second`` (the same paper, seen later) merged in as :func:`merge_entries` merges
    entries (union of sources, the longer abstract, ``first``'s other fields kept); the content hash is
    recomputed. ``first`` is changed in place and returned."""
    _absorb(first, second)
    first.content_hash = content_hash(first.title, first.abstract)
    return first


def merge_entries(entries: list[Entry]) -> list[tuple[Paper, str]]:
    """Deduplicate entries into papers: ids first, then titles, in one pass in listing order.

    An entry with its own id (:attr:`Entry.ref`) is the paper of that id and never merges by title, so
    the same title under two ids stays two papers; other entries merge by arXiv id or normalised title,
    except that two entries of one title with different arXiv ids are two papers. An entry without ids
    joins an own-id paper of its title only when it comes after it (the first entry of a title decides
    what the later ones join; see README "Input formats").
    Returns ``(paper, normalised title)`` in first-seen order. When a paper appears several times, the
    first entry's title and fields are kept (later ones fill the gaps), the longest abstract wins and
    every listing it came from is kept in ``sources``.
    """
    by_key: dict[str, Paper] = {}
    title_to_key: dict[str, str] = {}
    arxiv_to_key: dict[str, str] = {}  # an arXiv id is one paper, whatever key it was first filed under
    order: list[str] = []
    for e in entries:
        tnorm = normalise_title(e.title)
        same_title = title_to_key.get(tnorm)
        if same_title and other_arxiv(e.arxiv_id, by_key[same_title].arxiv_id):
            same_title = None  # two arXiv ids under one title: two papers (as across runs, matching.earlier_id)
        if same_title and e.arxiv_id and has_own_id(same_title):
            same_title = None  # an arXiv paper does not join a record's own-id paper by title alone
        key = e.ref or (arxiv_to_key.get(e.arxiv_id) if e.arxiv_id else None) or same_title or paper_id(e)
        title_to_key.setdefault(tnorm, key)
        if e.arxiv_id and not e.ref:
            arxiv_to_key.setdefault(e.arxiv_id, key)
        old = by_key.get(key)
        if old is None:
            by_key[key] = Paper(
                id=key, title=" ".join(e.title.split()), abstract=" ".join(e.abstract.split()),
                authors=e.authors, n_authors=e.n_authors or (len(e.authors) or None), date=e.date, year=e.year,
                date_iso=e.date_iso, upvotes=e.upvotes, org=e.org, url=e.url, arxiv_id=e.arxiv_id,
                venue=e.venue, sources=[e.source],
            )
            order.append(key)
            continue
        _absorb(old, e)
    out = []
    for key in order:
        p = by_key[key]
        p.content_hash = content_hash(p.title, p.abstract)
        out.append((p, normalise_title(p.title)))
    return out
