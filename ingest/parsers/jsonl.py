"""JSON Lines (one object per line) and JSON (a list of objects, or ``{"papers": [...]}``) listings.

Each record needs ``title`` and ``abstract`` strings; optional fields are ``authors`` (a list of strings,
or one string separated by ", " / " and "), ``date`` ("2024-05-01", "2024", or free text kept as given),
``year``, ``url``, ``arxiv_id`` (else derived from an arxiv.org ``url``), ``venue``, ``n_authors``,
``upvotes`` and ``org``.

A record's own id becomes the paper id: ``id`` (or BEIR's ``_id``) as given, else ``doi`` (as
``doi:10.…``), ``pmid`` (``pmid:…``) or ``s2_id`` (``s2:…``). BEIR ``corpus.jsonl`` records
(``_id``, ``title``, ``text``) are read directly: ``text`` stands in for a missing ``abstract``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ingest.parsers.base import Entry, ParseResult, Skip
from ingest.parsers.text import collapse_ws, extract_arxiv_id, own_id, parse_date

_AUTHOR_SPLIT_RE = re.compile(r",\s*(?:and\s+)?|\s+and\s+|\s*;\s*")
_SURROGATE_RE = re.compile("[\ud800-\udfff]")
MAX_DIGITS = 18  # a whole-number field longer than this is a bad value, not a count


class BigNumber:
    """A JSON integer too long to be a real count (kept out of ``int()``, which refuses > 4300 digits)."""

    def __init__(self, digits: str) -> None:
        self.digits = digits


def _parse_int(digits: str) -> int | BigNumber:
    return int(digits) if len(digits.lstrip("-")) <= MAX_DIGITS else BigNumber(digits)


class NonFinite:
    """``NaN``, ``Infinity`` or ``-Infinity``: Python's ``json`` accepts them, JSON does not (a field
    holding one is a bad value of that record, not the text "nan")."""

    def __init__(self, name: str) -> None:
        self.name = name


def loads(text: str) -> Any:
    """``json.loads`` that never fails on a huge integer (it becomes a :class:`BigNumber` field value)
    and keeps ``NaN`` / ``Infinity`` out of the values (they become :class:`NonFinite`)."""
    return json.loads(text, parse_int=_parse_int, parse_constant=NonFinite)


class RecordError(ValueError):
    """A record that cannot become an :class:`Entry`; the message names the field."""


def _type_name(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )


def _opt_str(rec: dict[str, Any], key: str) -> str | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise RecordError(f"field {key!r} must be a string, got {_type_name(value)}")
    return collapse_ws(str(value)) or None


def _opt_int(rec: dict[str, Any], key: str) -> int | None:
    value = rec.get(key)
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit() and len(value.strip()) <= MAX_DIGITS:
        return int(value.strip())
    if isinstance(value, BigNumber) or (isinstance(value, str) and value.strip().isdigit()):
        raise RecordError(f"field {key!r} is not a plausible number (more than {MAX_DIGITS} digits)")
    raise RecordError(f"field {key!r} must be a whole number, got {_type_name(value)}")


def split_authors(value: object) -> list[str]:
    """Authors as a list: a list of strings is kept, one string is split on ", " / " and " / ";"."""
    if value is None:
        return []
    if isinstance(value, str):
        return [a for a in (collapse_ws(p) for p in _AUTHOR_SPLIT_RE.split(value)) if a]
    if isinstance(value, list) and all(isinstance(a, str) for a in value):
        return [a for a in (collapse_ws(p) for p in value) if a]
    raise RecordError(f"field 'authors' must be a list of strings or a string, got {_type_name(value)}")


def _check_surrogates(key: str, value: object) -> None:
    """A lone UTF-16 surrogate (an escaped ``"\\ud800"``) cannot be stored or hashed, nor can ``NaN``
    (not JSON): reject the record."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, NonFinite):
            raise RecordError(f"field {key!r} holds {item.name}, which is not valid JSON (write null)")
    texts = [v for v in items if isinstance(v, str)]
    for text in [key, *texts]:
        m = _SURROGATE_RE.search(text)
        if m:
            raise RecordError(f"field {key!r} holds an invalid character (lone surrogate \\u{ord(m.group(0)):04x})")


def _arxiv_id(rec: dict[str, Any], url: str | None) -> str | None:
    """The record's arXiv id: its ``arxiv_id`` field (a bare id, ``arXiv:…`` or an arxiv.org URL), else
    one in its arxiv.org ``url``. A given ``arxiv_id`` that is no arXiv id ("N/A", "none", "TBD") is a
    bad value: kept as an id, it would merge every record carrying the same placeholder."""
    given = _opt_str(rec, "arxiv_id")
    if given is None:
        return extract_arxiv_id(url)
    found = extract_arxiv_id(given)
    if found is None:
        raise RecordError(f"field 'arxiv_id' is not an arXiv id: {given[:40]!r} (leave it out or write null)")
    return found


def record_to_entry(rec: object, source: str, locator: str) -> Entry:
    """Turn one decoded JSON record into an :class:`Entry`; raises :class:`RecordError` naming the field."""
    if not isinstance(rec, dict):
        raise RecordError(f"expected an object, got {_type_name(rec)}")
    if rec.get("abstract") is None and isinstance(rec.get("text"), str) and ("_id" in rec or "id" in rec):
        rec = {**rec, "abstract": rec["text"]}  # a BEIR corpus record
    for key, value in rec.items():
        _check_surrogates(key, value)
    fields: dict[str, str] = {}
    for key in ("title", "abstract"):
        if key not in rec or rec[key] is None:
            raise RecordError(f"missing required field {key!r}")
        if not isinstance(rec[key], str):
            raise RecordError(f"field {key!r} must be a string, got {_type_name(rec[key])}")
        fields[key] = collapse_ws(rec[key])
        if not fields[key]:
            raise RecordError(f"field {key!r} is empty")
    authors = split_authors(rec.get("authors"))
    date = _opt_str(rec, "date")
    info = parse_date(date)
    year = info.year if info.year is not None else _opt_int(rec, "year")
    url = _opt_str(rec, "url")
    arxiv_id = _arxiv_id(rec, url)
    n_authors = _opt_int(rec, "n_authors")
    return Entry(
        title=fields["title"],
        abstract=fields["abstract"],
        source=source,
        locator=locator,
        authors=authors,
        n_authors=len(authors) if authors else n_authors,
        date=date,
        year=year,
        date_iso=info.date_iso,
        upvotes=_opt_int(rec, "upvotes"),
        org=_opt_str(rec, "org"),
        url=url,
        arxiv_id=arxiv_id,
        venue=_opt_str(rec, "venue"),
        ref=own_id(
            id=_opt_str(rec, "id") or _opt_str(rec, "_id"), doi=_opt_str(rec, "doi"),
            pmid=_opt_str(rec, "pmid"), s2_id=_opt_str(rec, "s2_id"),
        ),
    )


def _looks_like_jsonl(text: str) -> bool:
    """Several non-blank lines of which one of the first few is a complete JSON object on its own
    (not only the first: a first record that is broken or too deeply nested must not hide the rest)."""
    lines = [s for s in text.split("\n") if s.strip()]
    if len(lines) < 2:
        return False
    for line in lines[:5]:
        try:
            if isinstance(loads(line), dict):
                return True
        except (ValueError, RecursionError):
            continue
    return False


class JsonParser:
    """Parser for ``.jsonl`` (one object per line) and ``.json`` (list, or object with ``papers``)."""

    name = "json"
    extensions: tuple[str, ...] = (".jsonl", ".ndjson", ".json")

    def sniff(self, path: Path, head: str) -> bool:
        """True for the JSON extensions, or content that starts with ``{`` or ``[``."""
        return path.suffix.lower() in self.extensions or head.lstrip().startswith(("{", "["))

    def parse(self, path: Path, text: str) -> ParseResult:
        """Parse JSON or JSON Lines; bad lines/records become :class:`Skip` records, never exceptions."""
        suffix = path.suffix.lower()
        if suffix in (".jsonl", ".ndjson"):
            return self._parse_lines(path, text)
        if suffix == ".json":
            return self._parse_document(path, text)
        try:
            loads(text)
        except (ValueError, RecursionError):
            if _looks_like_jsonl(text):
                return self._parse_lines(path, text)
        return self._parse_document(path, text)

    def _parse_lines(self, path: Path, text: str) -> ParseResult:
        result = ParseResult()
        record = 0
        for number, line in enumerate(text.split("\n"), 1):
            if not line.strip():
                continue
            record += 1
            locator = f"line {number}"
            try:
                rec = loads(line)
            except json.JSONDecodeError as exc:
                reason = f"record {record}: invalid JSON at column {exc.colno}: {exc.msg}"
                result.skipped.append(Skip(str(path), locator, reason))
                continue
            except (ValueError, RecursionError) as exc:
                result.skipped.append(Skip(str(path), locator, f"record {record}: invalid JSON: {exc}"))
                continue
            try:
                result.entries.append(record_to_entry(rec, path.name, locator))
            except RecordError as exc:
                result.skipped.append(Skip(str(path), locator, f"record {record}: {exc}"))
        return result

    def _parse_document(self, path: Path, text: str) -> ParseResult:
        result = ParseResult()
        try:
            doc = loads(text)
        except (ValueError, RecursionError) as exc:
            if _looks_like_jsonl(text):  # JSON Lines in a '.json' file, whichever record is broken
                return self._parse_lines(path, text)
            if not isinstance(exc, json.JSONDecodeError):
                result.skipped.append(Skip(str(path), "", f"invalid JSON: {exc}"))
                return result
            reason = f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
            result.skipped.append(Skip(str(path), f"line {exc.lineno}", reason))
            return result
        records = doc.get("papers") if isinstance(doc, dict) else doc
        if not isinstance(records, list):
            what = "an object without a 'papers' list" if isinstance(doc, dict) else _type_name(doc)
            reason = f"expected a list of paper objects or an object with a 'papers' list, got {what}"
            result.skipped.append(Skip(str(path), "", reason))
            return result
        for number, rec in enumerate(records, 1):
            locator = f"record {number}"
            try:
                result.entries.append(record_to_entry(rec, path.name, locator))
            except RecordError as exc:
                result.skipped.append(Skip(str(path), locator, str(exc)))
        return result


PARSER = JsonParser()
