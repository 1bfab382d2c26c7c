"""Types every parser returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


@dataclass
class Entry:
    """One paper entry as a listing gives it (before ids and deduplication)."""

    title: str
    abstract: str
    source: str  # the listing file's name
    locator: str  # where in the file: "line 12" or "record 3"
    authors: list[str] = field(default_factory=list)
    n_authors: int | None = None
    date: str | None = None  # exactly as given, e.g. "Apr 22" or "Aug 6, 2024"
    year: int | None = None  # only when the listing gave a year
    date_iso: str | None = None  # YYYY-MM-DD only when a full date with a year was given
    upvotes: int | None = None
    org: str | None = None
    url: str | None = None
    arxiv_id: str | None = None  # bare id, e.g. "2401.12345" (no version suffix)
    venue: str | None = None
    ref: str | None = None  # the record's own id, namespaced: "doi:10.1/x", "pmid:123", "s2:abc", or as given


@dataclass
class Skip:
    """An entry (or whole file) that could not be ingested, with a one-line reason."""

    source: str  # file path as given
    locator: str  # "line 12", "record 3", or "" for the whole file
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.locator}" if self.locator else self.source
        return f"{where}: {self.reason}"


@dataclass
class ParseResult:
    entries: list[Entry] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)


class Parser(Protocol):
    """A listing format. ``sniff`` decides from name + first KB; ``parse`` never raises on bad entries."""

    name: str

    def sniff(self, path: Path, head: str) -> bool: ...

    def parse(self, path: Path, text: str) -> ParseResult: ...
