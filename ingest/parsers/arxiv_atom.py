"""arXiv API Atom feeds (what ``http://export.arxiv.org/api/query`` returns)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from ingest.parsers.base import Entry, ParseResult, Skip
from ingest.parsers.text import collapse_ws, extract_arxiv_id, parse_date

ATOM = "{http://www.w3.org/2005/Atom}"
ARXIV = "{http://arxiv.org/schemas/atom}"
_FEED_RE = re.compile(r"<(?:[\w.-]+:)?feed[\s>]")


def _text(elem: ET.Element, tag: str) -> str:
    child = elem.find(tag)
    return collapse_ws("".join(child.itertext())) if child is not None else ""


def _url(entry: ET.Element, id_text: str) -> str | None:
    for link in entry.findall(f"{ATOM}link"):
        if link.get("rel", "alternate") == "alternate" and link.get("href"):
            return link.get("href")
    return id_text or None


class ArxivAtomParser:
    """Parser for arXiv API Atom XML feeds."""

    name = "arxiv_atom"
    extensions: tuple[str, ...] = (".xml", ".atom")

    def sniff(self, path: Path, head: str) -> bool:
        """True for ``.xml`` / ``.atom`` files, or content with an Atom ``<feed`` element."""
        return path.suffix.lower() in self.extensions or bool(_FEED_RE.search(head))

    def parse(self, path: Path, text: str) -> ParseResult:
        """Parse a feed; malformed XML or entries become :class:`Skip` records, never exceptions."""
        result = ParseResult()
        source = str(path)
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            line = exc.position[0]
            result.skipped.append(Skip(source, f"line {line}", _one_line(f"malformed XML: {exc}")))
            return result
        except (ValueError, RecursionError) as exc:  # e.g. an encoding declaration Python cannot honour
            result.skipped.append(Skip(source, "", _one_line(f"unreadable XML: {exc}")))
            return result
        if root.tag != f"{ATOM}feed":
            result.skipped.append(
                Skip(source, "", f"not an arXiv Atom feed: root element is <{_local(root.tag)}>")
            )
            return result
        for number, entry in enumerate(root.findall(f"{ATOM}entry"), 1):
            locator = f"record {number}"
            id_text = _text(entry, f"{ATOM}id")
            title = _text(entry, f"{ATOM}title")
            summary = _text(entry, f"{ATOM}summary")
            if title == "Error" and ("/api/errors" in id_text or not extract_arxiv_id(id_text)):
                result.skipped.append(Skip(source, locator, f"arXiv API error: {summary or id_text}"))
                continue
            missing = [name for name, value in (("title", title), ("summary", summary)) if not value]
            if missing:
                label = f" ({id_text})" if id_text else ""
                reason = f"entry{label} has no {' or '.join(missing)}"
                result.skipped.append(Skip(source, locator, reason))
                continue
            authors = [name for a in entry.findall(f"{ATOM}author") if (name := _text(a, f"{ATOM}name"))]
            published = _text(entry, f"{ATOM}published") or _text(entry, f"{ATOM}updated")
            date = published[:10] or None
            info = parse_date(date)
            result.entries.append(
                Entry(
                    title=title,
                    abstract=summary,
                    source=path.name,
                    locator=locator,
                    authors=authors,
                    n_authors=len(authors) or None,
                    date=date,
                    year=info.year,
                    date_iso=info.date_iso,
                    url=_url(entry, id_text),
                    arxiv_id=extract_arxiv_id(id_text),
                    venue=_text(entry, f"{ARXIV}journal_ref") or None,
                )
            )
        return result


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _one_line(text: str) -> str:
    return collapse_ws(text)


PARSER = ArxivAtomParser()
