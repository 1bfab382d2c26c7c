"""Small text helpers shared by the listing parsers: whitespace, titles, dates and arXiv ids."""

from __future__ import annotations

import datetime as dt
import re
import string
import unicodedata
from dataclasses import dataclass

MONTHS: dict[str, int] = {
    "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6,
    "jul": 7, "aug": 8, "sep": 9, "sept": 9, "oct": 10, "nov": 11, "dec": 12,
    "january": 1, "february": 2, "march": 3, "april": 4, "june": 6, "july": 7,
    "august": 8, "september": 9, "october": 10, "november": 11, "december": 12,
}  # fmt: skip

_MONTH_RE = "|".join(sorted(MONTHS, key=len, reverse=True))
# "May 13", "Aug 6, 2024", "September 5 2024" (month first), optionally with a trailing dot on the month.
_MONTH_DAY_RE = re.compile(rf"^(?P<mon>{_MONTH_RE})\.?\s+(?P<day>\d{{1,2}})(?:,\s*(?P<year>\d{{4}}))?$", re.I)
_DAY_MONTH_RE = re.compile(rf"^(?P<day>\d{{1,2}})\s+(?P<mon>{_MONTH_RE})\.?,?\s+(?P<year>\d{{4}})$", re.I)
_MONTH_YEAR_RE = re.compile(rf"^(?P<mon>{_MONTH_RE})\.?,?\s+(?P<year>\d{{4}})$", re.I)
_ISO_RE = re.compile(
    r"^(?P<year>\d{4})(?:-(?P<month>\d{1,2})(?:-(?P<day>\d{1,2}))?)?(?:[T ][\d:.]+(?:Z|[+-][\d:]+)?)?$"
)
_YEAR_RE = re.compile(r"(?<!\d)(1[89]\d\d|20\d\d)(?!\d)")

# New-style ids (0704.0001 onwards, 4+4 or 4+5 digits) and old-style archive/YYMMNNN ids.
_ARXIV_NEW = r"\d{4}\.\d{4,5}"
_ARXIV_OLD = r"[a-z][a-z.-]*(?:\.[A-Z]{2})?/\d{7}"
_ARXIV_ID_RE = re.compile(rf"(?<![\w.])(?P<id>{_ARXIV_NEW}|{_ARXIV_OLD})(?:v\d+)?(?![\w])", re.I)
_ARXIV_URL_RE = re.compile(
    rf"arxiv\.org/(?:abs|pdf|html|format)/(?P<id>{_ARXIV_NEW}|{_ARXIV_OLD})(?:v\d+)?", re.I
)
_ARXIV_PREFIX_RE = re.compile(rf"\barxiv\s*[:.]\s*(?P<id>{_ARXIV_NEW}|{_ARXIV_OLD})(?:v\d+)?", re.I)

_END_PUNCT = string.punctuation + "\u2018\u2019\u201c\u201d\u2013\u2014\u2026"


def collapse_ws(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs, NBSP) to one space and strip the ends."""
    return " ".join(text.split())


def normalise_title(title: str) -> str:
    """Title key for deduplication: NFKC, casefold, invisible characters (Unicode category Cf: zero-width
    space, soft hyphen, direction marks) dropped, collapsed whitespace, punctuation stripped at the ends.

    ``"  Attention is  all you need. "``, ``"ATTENTION IS ALL YOU NEED"`` and ``"Attention\u200b is all
    you need"`` give the same key.
    """
    text = unicodedata.normalize("NFKC", title)
    if not text.isascii():
        text = "".join(c for c in text if unicodedata.category(c) != "Cf")
    return legacy_title_key(text)


def legacy_title_key(title: str) -> str:
    """The title key of indexes built before :func:`normalise_title` dropped invisible characters (it
    differs only for titles holding them): how a paper filed under such a key is found again."""
    text = collapse_ws(unicodedata.normalize("NFKC", title).casefold())
    return text.strip(_END_PUNCT + " ")


@dataclass(frozen=True)
class DateInfo:
    """What a date string says: the year only when given, an ISO date only when day, month and year are."""

    year: int | None = None
    date_iso: str | None = None


def _iso(year: int, month: int, day: int) -> str | None:
    """``YYYY-MM-DD`` when the three numbers form a real calendar date, else None."""
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def parse_date(text: str | None) -> DateInfo:
    """Read year / ISO date out of a date string without inventing anything.

    Understands ``2024-05-01`` (also with a time), ``2024-05``, ``2024``, ``Aug 6, 2024``, ``6 Aug 2024``,
    ``May 2024`` and ``Apr 22`` (no year: both fields None). Other text yields a year only when a
    four-digit year (1800-2099) appears in it.
    """
    if not text:
        return DateInfo()
    s = collapse_ws(text)
    m = _ISO_RE.match(s)
    if m:
        year = int(m["year"])
        if m["day"]:
            return DateInfo(year, _iso(year, int(m["month"]), int(m["day"])))
        return DateInfo(year)
    m = _MONTH_DAY_RE.match(s)
    if m:
        if not m["year"]:
            return DateInfo()
        year = int(m["year"])
        return DateInfo(year, _iso(year, MONTHS[m["mon"].lower()], int(m["day"])))
    m = _DAY_MONTH_RE.match(s)
    if m:
        year = int(m["year"])
        return DateInfo(year, _iso(year, MONTHS[m["mon"].lower()], int(m["day"])))
    m = _MONTH_YEAR_RE.match(s)
    if m:
        return DateInfo(int(m["year"]))
    years = _YEAR_RE.findall(s)
    return DateInfo(int(years[0])) if len(years) == 1 else DateInfo()


def is_month_day(text: str) -> bool:
    """True for a bare listing date such as ``Dec 11`` or ``Aug 6, 2024`` (month first)."""
    return bool(_MONTH_DAY_RE.match(collapse_ws(text)))


def extract_arxiv_id(text: str | None) -> str | None:
    """The bare arXiv id (no version) in an arxiv.org URL, an ``arXiv:`` reference or a bare id, else None.

    ``https://arxiv.org/abs/2401.12345v2`` -> ``2401.12345``; ``arXiv:hep-th/9901001`` -> ``hep-th/9901001``;
    the arXiv DOI ``10.48550/arXiv.2305.14314`` -> ``2305.14314``.
    A URL that is not on arxiv.org yields None even when it contains digits that look like an id.
    """
    if not text:
        return None
    s = text.strip()
    for rx in (_ARXIV_URL_RE, _ARXIV_PREFIX_RE):
        m = rx.search(s)
        if m:
            return m["id"]
    if "://" in s or s.lower().startswith(("www.", "doi")):
        return None
    m = _ARXIV_ID_RE.fullmatch(s)
    return m["id"] if m else None


_DOI_PREFIX_RE = re.compile(r"^(?:https?://(?:dx\.)?doi\.org/|doi:\s*)", re.I)


def own_id(*, id: str | None = None, doi: str | None = None, pmid: str | None = None, s2_id: str | None = None) -> str | None:
    """A record's own id as a paper id, first of: ``id`` as given, ``doi:<doi, lower case>``,
    ``pmid:<n>``, ``s2:<id>`` (None when the record carries none)."""
    if id and id.strip():
        return id.strip()
    if doi and (bare := _DOI_PREFIX_RE.sub("", doi.strip()).strip()):
        return f"doi:{bare.lower()}"
    if pmid and pmid.strip():
        return f"pmid:{pmid.strip()}"
    if s2_id and s2_id.strip():
        return f"s2:{s2_id.strip()}"
    return None
