"""Hugging Face "Daily Papers" listing text (the page copied as plain text).

Layout, paragraph by paragraph (paragraphs are separated by blank lines)::

    Title line
    <blank>
    Abstract paragraph
    <blank>
      • 7 authors            or    stanfordnlp Stanford NLP      (optional metadata block)
    ·                              ·
    May 13 2                       Oct 1, 2025 3                 (date, then an optional upvote count)

Page chrome ("new", "Subscribe", "Daily Papers", "byAK and the research community", a lone date such as
"Dec 11", ...) is not an entry. Titles and abstracts alternate; where a title has no abstract the
parser tells them apart by shape (titles are one short line that is not a sentence).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ingest.parsers.base import Entry, ParseResult, Skip
from ingest.parsers.text import collapse_ws, is_month_day, parse_date

HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
_DISTINCT_HEADERS = HEADER_LINES - {"new", "subscribe"}
_SEPARATORS = frozenset({"·", "⋅", "•", "|"})
_AUTHORS_RE = re.compile(r"^(?:[•·*-]\s*)?(\d+)\s+authors?$", re.I)
_UPVOTES_RE = re.compile(r"^(\d+(?:\.\d+)?)([kK]?)$")
# A sentence break ("... models. We ...") that is not an abbreviation such as "vs." or "et al.".
_SENTENCE_RE = re.compile(r"(?<!\bvs)(?<!\bal)(?<!\bFig)(?<!\bNo)\.\s+[A-Z]")
_MAX_TITLE_CHARS = 300
MAX_UPVOTE_CHARS = 12  # "1.2k" or a count; a longer run of digits is damage, not upvotes


@dataclass
class _Para:
    """A run of non-blank lines; ``line`` is the 1-based number of its first line."""

    line: int
    lines: list[str]

    @property
    def text(self) -> str:
        return collapse_ws(" ".join(self.lines))


@dataclass
class _Meta:
    n_authors: int | None = None
    org: str | None = None
    date: str | None = None
    upvotes: int | None = None
    problem: str | None = None  # a metadata line that is there but unreadable


def _paragraphs(text: str) -> list[_Para]:
    paras: list[_Para] = []
    current: _Para | None = None
    for number, line in enumerate(text.split("\n"), 1):
        if line.strip():
            if current is None:
                current = _Para(number, [])
                paras.append(current)
            current.lines.append(line)
        else:
            current = None
    return paras


def split_date_upvotes(line: str) -> tuple[str, int | None] | None:
    """``"May 13 2"`` -> ``("May 13", 2)``; ``"Aug 6, 2024"`` -> ``("Aug 6, 2024", None)``; else None."""
    s = collapse_ws(line)
    if is_month_day(s):
        return s, None
    if " " not in s:
        return None
    head, last = s.rsplit(" ", 1)
    m = _UPVOTES_RE.match(last)
    if m and is_month_day(head):
        if len(m.group(1)) > MAX_UPVOTE_CHARS:
            raise ValueError(f"upvote count {_short(last, 20)!r} is not a plausible number")
        votes = float(m.group(1)) * (1000 if m.group(2) else 1)
        return head, int(votes)
    return None


def _is_meta(p: _Para) -> bool:
    first = p.lines[0].strip()
    return any(s.strip() in _SEPARATORS for s in p.lines) or bool(_AUTHORS_RE.match(first))


def _is_header(p: _Para) -> bool:
    return len(p.lines) == 1 and (p.text.casefold() in HEADER_LINES or is_month_day(p.text))


def _abstractish(p: _Para) -> bool:
    """Prose rather than a title: several lines, long, ends like a sentence, or has a sentence break."""
    t = p.text
    return len(p.lines) > 1 or len(t) > _MAX_TITLE_CHARS or t.endswith(".") or bool(_SENTENCE_RE.search(t))


def _titleish(line: str) -> bool:
    """One line that reads like a title: short, not a sentence, not metadata."""
    t = collapse_ws(line)
    return bool(t) and len(t) <= _MAX_TITLE_CHARS and not t.endswith(".") and not _SENTENCE_RE.search(t) and not (
        t in _SEPARATORS or _AUTHORS_RE.match(t) or split_date_upvotes_safe(t)
    )


def split_date_upvotes_safe(line: str) -> bool:
    try:
        return split_date_upvotes(line) is not None
    except ValueError:
        return True


def _parse_meta(p: _Para) -> _Meta:
    meta = _Meta()
    for raw in p.lines:
        s = collapse_ws(raw)
        if s in _SEPARATORS:
            continue
        m = _AUTHORS_RE.match(s)
        if m:
            meta.n_authors = int(m.group(1))
            continue
        try:
            du = split_date_upvotes(s)
        except ValueError as exc:
            meta.problem = str(exc)
            continue
        if du is not None:
            meta.date, meta.upvotes = du
        elif meta.org is None and meta.date is None:
            # "stanfordnlp Stanford NLP": the organisation's id, then its display name
            meta.org = s.split(" ", 1)[1] if " " in s else s
    return meta


_ENDS_SENTENCE = re.compile(r"[.!?…)\]\"'”’]\s*$")
_ENDS_LINK = re.compile(r"(?:https?://|www\.|github\.com/)\S+\s*$")  # "Code: https://github.com/…" ends many abstracts


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class HFDailyParser:
    """Parser for the Hugging Face Daily Papers listing text."""

    name = "hf_daily"
    extensions: tuple[str, ...] = (".txt",)

    def sniff(self, path: Path, head: str) -> bool:
        """True for ``.txt`` files, or text that carries the page's header or metadata lines."""
        if path.suffix.lower() in self.extensions:
            return True
        lines = [collapse_ws(s) for s in head.split("\n")]
        if any(s.casefold() in _DISTINCT_HEADERS or _AUTHORS_RE.match(s) for s in lines):
            return True
        paras = _paragraphs(head)
        complete = paras[:-1] if len(paras) > 2 else paras  # the last one may be cut by the head limit
        return len(paras) >= 2 and all(len(p.lines) == 1 for p in complete)

    def parse(self, path: Path, text: str) -> ParseResult:
        """Parse listing text; malformed entries become :class:`Skip` records, never exceptions."""
        result = ParseResult()
        source = str(path)

        def skip(line: int, reason: str) -> None:
            result.skipped.append(Skip(source, f"line {line}", reason))

        paras = _paragraphs(text)
        i, n = 0, len(paras)
        with_meta = False  # whether an entry so far had its author/date block (this layout writes them)
        while i < n:
            p = paras[i]
            nxt = paras[i + 1] if i + 1 < n else None
            if _is_meta(p):
                skip(p.line, "metadata block (authors/date) with no title and abstract before it")
                i += 1
                continue
            if _is_header(p):
                i += 1
                continue
            if _abstractish(p) and (nxt is None or _is_meta(nxt) or not _abstractish(nxt)):
                skip(p.line, f"text with no title before it: {_short(p.text)!r}")
                i += 2 if nxt is not None and _is_meta(nxt) else 1
                continue
            if len(p.lines) > 1 and all(_titleish(line) for line in p.lines):
                # "Second paper on LoR" / "Third paper ...": an entry cut inside its title, glued to the next
                for offset, cut in enumerate(p.lines[:-1]):
                    skip(p.line + offset, f"title {_short(collapse_ws(cut))!r} has no abstract (entry cut short; "
                         f"line {p.line + offset + 1} starts the next title)")
                p = _Para(p.line + len(p.lines) - 1, p.lines[-1:])
            title = p.text
            if nxt is None:
                skip(p.line, f"title {_short(title)!r} has no abstract (end of file)")
                break
            if _is_meta(nxt) or _is_header(nxt):
                skip(p.line, f"title {_short(title)!r} has no abstract (line {nxt.line} is not an abstract)")
                i += 2
                continue
            after = paras[i + 2] if i + 2 < n else None
            if not _abstractish(nxt) and after is not None and not _is_meta(after) and _abstractish(after):
                # Title, title, abstract: the first title lost its abstract.
                skip(p.line, f"title {_short(title)!r} has no abstract (line {nxt.line} is the next title)")
                i += 1
                continue
            if len(nxt.lines) > 1 and _titleish(nxt.lines[-1]) and after is not None and not _is_meta(after) \
                    and _abstractish(after):
                # "abstract cut sho" + "Next title" on the next line: report the cut entry, and keep the next
                # one whole (its title was glued to the cut abstract)
                cut_at = nxt.line + len(nxt.lines) - 1
                paras[i + 1 : i + 2] = [_Para(nxt.line, nxt.lines[:-1]), _Para(cut_at, nxt.lines[-1:])]
                n += 1
                skip(p.line, f"entry {_short(title)!r} is cut short in its abstract (line {cut_at} starts the next title)")
                i += 2
                continue
            if after is None and with_meta and not _ENDS_SENTENCE.search(nxt.text) and not _ENDS_LINK.search(nxt.text):
                # the file ends inside this abstract (no closing sentence or link), in a layout whose entries
                # have author/date lines and this one has none
                skip(p.line, f"entry {_short(title)!r} is cut short in its abstract (end of file)")
                break
            meta = _Meta()
            i += 2
            if after is not None and _is_meta(after):
                meta = _parse_meta(after)
                with_meta = True
                i += 1
            if meta.problem:
                skip(p.line, f"entry {_short(title)!r}: {meta.problem} (line {after.line if after else p.line})")
                continue
            info = parse_date(meta.date)
            result.entries.append(
                Entry(
                    title=title,
                    abstract=nxt.text,
                    source=path.name,
                    locator=f"line {p.line}",
                    n_authors=meta.n_authors,
                    date=meta.date,
                    year=info.year,
                    date_iso=info.date_iso,
                    upvotes=meta.upvotes,
                    org=meta.org,
                )
            )
        return result


PARSER = HFDailyParser()
