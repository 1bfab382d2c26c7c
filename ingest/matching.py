"""Which indexed paper each paper of a run is: the id it keeps, and what the index already knows of it.

A paper first seen without ids is filed under its title's hash and keeps that id when later listings
give its arXiv id (or its title changes), so a run's paper is looked up by arXiv id and by title as
well as by its own id (:func:`resolve_ids`); what the index knows that the listing lacks is kept
(:func:`merge_with_existing`).
"""

from __future__ import annotations

import re

from assistant.models import Paper
from assistant.stores.registry import Registry
from ingest.records import has_own_id, merge_papers, other_arxiv

LOOKUP_BATCH = 500  # papers looked up in the registry per query

_SENTENCE_END = re.compile(r"[.!?][\"'\u201d\u2019)\]]*$")
_ELLIPSIS = re.compile(r"\s*(?:\u2026|\.\.\.)$")


def _looks_cut(abstract: str) -> bool:
    """Whether ``abstract`` looks cut off: it ends with an ellipsis, or not at the end of a sentence."""
    text = abstract.rstrip()
    return text.endswith(("\u2026", "...")) or not _SENTENCE_END.search(text)


def merge_with_existing(paper: Paper, existing: Paper) -> Paper:
    """Keep what the index already knows that this listing lacks; union the sources.

    A shorter abstract that begins the indexed one (an ellipsis at its end aside) is a truncated copy
    (the indexed one is kept) when it looks cut or when the indexed paper also came from a listing this
    run does not read (which may hold the longer text); otherwise, every listing of the paper read
    again, it was shortened on purpose and replaces it."""
    data = paper.model_dump()
    for key, value in existing.model_dump().items():
        if key in ("sources", "content_hash", "abstract", "title"):
            continue
        if data.get(key) in (None, [], "") and value not in (None, [], ""):
            data[key] = value
    data["sources"] = list(dict.fromkeys([*existing.sources, *paper.sources]))
    stem = _ELLIPSIS.sub("", paper.abstract)  # "We te…" begins "We test" without its ellipsis
    prefix = existing.abstract.startswith(stem) and len(existing.abstract) > len(stem)
    if prefix and (_looks_cut(paper.abstract) or not set(existing.sources) <= set(paper.sources)):
        data["abstract"], data["content_hash"] = existing.abstract, existing.content_hash  # truncated copy
    return Paper.model_validate(data)


def earlier_id(registry: Registry, paper: Paper, tnorm: str, holders: dict[str, str | None]) -> str | None:
    """The id under which the index already holds ``paper`` (not registered under its own id), or None.

    First a registered paper holding its arXiv id (whatever it is filed under: a paper first seen in
    a listing without ids keeps its title's hash after it gains one, and its title may change since),
    then one of its title whose arXiv id does not differ. ``holders`` maps each id a paper of this run
    carries or was given to that paper's arXiv id (or None): an id held by a paper of the run is
    taken only when their arXiv ids do not differ either (the second of two same-title papers with
    different arXiv ids meeting a paper filed under that title keeps its own id), and the caller then
    merges the two. A record's own id (``doc-1``) is never replaced, nor handed out by arXiv id."""
    if has_own_id(paper.id):
        return None

    def free(pid: str) -> bool:
        return pid not in holders or not other_arxiv(paper.arxiv_id, holders[pid])

    if paper.arxiv_id:
        for pid in registry.ids_for_arxiv(paper.arxiv_id):
            if not has_own_id(pid) and free(pid):
                return pid
    for pid in registry.ids_for_title(tnorm):
        if paper.arxiv_id and has_own_id(pid):  # an arXiv paper is never a record's own-id paper by title
            continue
        known = registry.get(pid)
        if known is not None and not other_arxiv(paper.arxiv_id, known.arxiv_id) and free(pid):
            return pid
    return None


def resolve_ids(registry: Registry, merged: list[tuple[Paper, str]]) -> list[tuple[Paper, str]]:
    """The papers of a run (``merged``: :func:`ingest.records.merge_entries`' output), each under the
    id it is to be written under, every id once.

    A paper whose id the index does not hold takes the id of the indexed paper it is
    (:func:`earlier_id`); when a paper of the run holds that id already (it carries it, or was given it),
    the two are one paper and are merged as :func:`ingest.records.merge_papers` merges (the one listed
    first keeps its fields). Papers keep the order of ``merged``."""
    holders: dict[str, str | None] = {p.id: p.arxiv_id for p, _ in merged}  # id -> the run paper's arXiv id
    resolved: dict[str, tuple[Paper, str]] = {}
    for start in range(0, len(merged), LOOKUP_BATCH):
        group = merged[start : start + LOOKUP_BATCH]
        absent = set(registry.missing([p.id for p, _ in group]))
        for paper, tnorm in group:
            if paper.id in absent and (earlier := earlier_id(registry, paper, tnorm, holders)):
                holders.pop(paper.id, None)  # unregistered: no lookup hands it out
                paper.id = earlier  # the same paper seen before under another id keeps its first id
            held = resolved.get(paper.id)
            if held is not None:  # a paper of the run holds that id already: the same paper
                resolved[paper.id] = held = (merge_papers(held[0], paper), held[1])
            else:
                resolved[paper.id] = held = (paper, tnorm)
            # the arXiv id the id stands for: a paper without one taking it does not clear the carrier's
            holders[paper.id] = held[0].arxiv_id or holders.get(paper.id)
    return list(resolved.values())
