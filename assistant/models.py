"""Typed records that flow through litassist: papers, chunks, citations and answers."""

from __future__ import annotations

import numbers
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator


class Paper(BaseModel):
    """One unique paper (deduplicated across listings)."""

    id: str = Field(
        description="Stable id: the record's own id (its 'id', or 'doi:…', 'pmid:…', 's2:…') when it carries one, "
        "else 'arxiv:<id>' when known, else 't:<hash of normalised title>'."
    )
    title: str
    abstract: str
    authors: list[str] = Field(default_factory=list)
    n_authors: int | None = None
    date: str | None = Field(default=None, description="Date exactly as the listing gave it.")
    year: int | None = Field(default=None, description="Only when the listing gave a year.")
    date_iso: str | None = Field(default=None, description="YYYY-MM-DD, only when the listing gave a year.")
    upvotes: int | None = None
    org: str | None = None
    url: str | None = None
    arxiv_id: str | None = None
    venue: str | None = None
    sources: list[str] = Field(default_factory=list, description="Listing files this paper came from.")
    content_hash: str = ""

    def link(self) -> str | None:
        """A safe http(s) link: the listing's URL, else the arXiv abstract page, else None."""
        if self.url and self.url.strip().lower().startswith(("http://", "https://")):
            return self.url.strip()
        return f"https://arxiv.org/abs/{self.arxiv_id}" if self.arxiv_id else None


class Chunk(BaseModel):
    """A piece of a paper's abstract, embedded with the paper's title."""

    id: str
    paper_id: str
    index: int
    text: str = Field(description="The chunk's own abstract text (no title).")
    embed_text: str = Field(description="What is embedded and keyword-indexed: title + text.")


MAX_K = 100  # papers one question may retrieve
MAX_UNWRITTEN = 5  # absent names/words a confidence label names at most


def check_k(k: int | None) -> None:
    """Raise :class:`FilterError` unless ``k`` is None or 1..MAX_K."""
    if k is not None and (isinstance(k, bool) or not isinstance(k, numbers.Integral) or not 1 <= k <= MAX_K):
        from assistant.errors import FilterError

        raise FilterError(f"k must be between 1 and {MAX_K} (got {k!r})")


def _papers(n: int) -> str:
    return "1 paper" if n == 1 else f"{n} papers"


class Filters(BaseModel):
    """Retrieval filters. Years apply only to papers whose listing gave a year."""

    model_config = ConfigDict(extra="forbid")

    since: int | None = Field(default=None, description="Earliest year (inclusive).")
    until: int | None = Field(default=None, description="Latest year (inclusive).")
    source: str | None = Field(default=None, description="Substring of the listing file name.")
    papers: list[str] | None = Field(
        default=None,
        description="Only these paper ids (a follow-up about the previous answer's papers is asked of them).",
    )

    exclude: list[str] | None = Field(
        default=None, description="Never these paper ids (a follow-up asking for others leaves out those shown)."
    )

    @field_validator("papers", "exclude")
    @classmethod
    def _strip_ids(cls, ids: list[str] | None) -> list[str] | None:
        return None if ids is None else [i.strip() for i in ids]

    def is_empty(self) -> bool:
        return (self.since is None and self.until is None and not self.source and self.papers is None
                and not self.exclude)

    def describe(self) -> str:
        """The active filters in words ('since 2030, source "003_"'); empty when there are none."""
        parts = [f"since {self.since}" if self.since is not None else "", f"until {self.until}" if self.until is not None else "",
                 f"source {' '.join(self.source.split())!r}" if self.source else "",
                 f"among {_papers(len(self.papers))} chosen" if self.papers is not None else "",
                 f"without {_papers(len(self.exclude))} already shown" if self.exclude else ""]
        return ", ".join(p for p in parts if p)


class Hit(BaseModel):
    """A retrieved paper with its fused score and best chunks."""

    paper: Paper
    score: float
    rank: int
    dense: float | None = None
    bm25: float | None = None
    chunk_ids: list[str] = Field(default_factory=list)


class Citation(BaseModel):
    """A numbered reference in an answer."""

    n: int
    paper_id: str
    title: str
    date: str | None = None
    year: int | None = None
    url: str | None = None
    sources: list[str] = Field(default_factory=list)
    snippet: str = Field(default="", description="The abstract sentence that supports the citing text.")


class Checks(BaseModel):
    """Post-generation citation checks."""

    removed_citations: list[int] = Field(default_factory=list, description="Numbers mapping to no retrieved paper.")
    uncited_sentences: list[str] = Field(default_factory=list)
    unsupported_numbers: list[str] = Field(default_factory=list, description="Numbers absent from cited abstracts.")
    sentences: int = 0

    @property
    def ok(self) -> bool:
        return not (self.removed_citations or self.unsupported_numbers)


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Answer(BaseModel):
    """What :func:`assistant.ask` returns."""

    question: str
    standalone_question: str
    text: str
    citations: list[Citation] = Field(default_factory=list)
    contexts: list[Hit] = Field(default_factory=list, description="Retrieved papers, best first.")
    closest: list[Citation] = Field(default_factory=list, description="On refusal: nearest papers found.")
    refused: bool = False
    confidence: float | None = Field(
        default=None, description="0-1: how likely the indexed papers answer the question (the judgement's model)."
    )
    weak_evidence: bool = Field(default=False, description="Answered, but the evidence is close to the refusal line.")
    not_in_corpus: list[str] = Field(
        default_factory=list,
        description="The question's names and words (typos corrected) that no indexed paper writes.",
    )
    set_aside: list[str] = Field(
        default_factory=list,
        description="Clauses about the asker, not the topic ('For my PhD,'), that the question was answered "
        "without: each wrote only what no indexed paper writes (assistant/framing.py).",
    )
    backend: str
    checks: Checks = Field(default_factory=Checks)
    timings: dict[str, float] = Field(default_factory=dict, description="Milliseconds per stage.")
    usage: Usage = Field(default_factory=Usage)
    filters: Filters = Field(default_factory=Filters)

    def as_turn(self) -> dict[str, Any]:
        """This answer as an assistant turn of ``ask(history=…)``, with the papers it cited kept, so that a
        follow-up about them ("Which of them…", "Any others?") needs no replay of the conversation."""
        return {"role": "assistant", "content": self.text, "papers": [c.paper_id for c in self.citations],
                "confidence": self.confidence}

    def confidence_label(self) -> str:
        """'confidence 0.82', with '(weak evidence)' when answered close to the refusal line; '' if unknown.
        It names the framing the question was read without ("read without 'For my PhD,'"), and a refusal
        or weak answer what else no indexed paper writes ("no indexed paper writes 'X'")."""
        if self.confidence is None:
            return ""
        label = f"confidence {self.confidence:.2f}" + (" (weak evidence)" if self.weak_evidence else "")
        if self.set_aside:
            label += " · read without " + " and ".join(f"'{c}'" for c in self.set_aside)
        lacked = [w for w in self.not_in_corpus if not any(w.lower() in c.lower() for c in self.set_aside)]
        if (self.refused or self.weak_evidence) and lacked:
            label += " · no indexed paper writes " + ", ".join(
                f"'{w if len(w) <= 40 else w[:39] + '…'}'" for w in lacked[:MAX_UNWRITTEN])
        return label

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; the answer text is under ``answer``."""
        data = self.model_dump(mode="json")
        data["answer"] = data.pop("text")
        data["checks"]["ok"] = self.checks.ok
        for hit in data["contexts"]:
            hit["paper"].pop("content_hash", None)
        return data
