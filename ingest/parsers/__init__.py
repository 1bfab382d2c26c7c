"""Listing parsers: pick one per file (by extension, else by content) and read it without raising.

Public API::

    read_listing(path) -> ParseResult                     # one file; problems come back as Skip records
    iter_listing_files(paths) -> (files, skipped)         # expand folders, report missing paths
    detect_parser(path, head) -> Parser | None            # which parser a file would get
"""

from __future__ import annotations

import os
from pathlib import Path

from ingest.parsers.arxiv_atom import PARSER as ARXIV_ATOM
from ingest.parsers.base import Entry, Parser, ParseResult, Skip
from ingest.parsers.bibtex import PARSER as BIBTEX
from ingest.parsers.hf_daily import PARSER as HF_DAILY
from ingest.parsers.jsonl import PARSER as JSON
from ingest.parsers.text import collapse_ws

__all__ = [
    "ARXIV_ATOM",
    "BIBTEX",
    "HF_DAILY",
    "JSON",
    "LISTING_EXTENSIONS",
    "PARSERS",
    "Entry",
    "ParseResult",
    "Parser",
    "Skip",
    "detect_parser",
    "iter_listing_files",
    "read_listing",
    "source_name",
]

#: Every parser, in the order content sniffing tries them (HF text last: it is the loosest).
PARSERS: tuple[Parser, ...] = (ARXIV_ATOM, JSON, BIBTEX, HF_DAILY)

#: Extension (lower case, with the dot) -> the parser that owns it.
BY_EXTENSION: dict[str, Parser] = {
    ext: parser for parser in PARSERS for ext in getattr(parser, "extensions", ())
}
LISTING_EXTENSIONS: frozenset[str] = frozenset(BY_EXTENSION)

_HEAD_CHARS = 4096
_BINARY_PROBE = 8192


def source_name(path: Path | str) -> str:
    """``path`` as text that can be stored and printed: a file name that is not valid UTF-8 (its bytes
    come back from the OS as lone surrogates) has each bad byte replaced by U+FFFD."""
    return os.fsencode(path).decode("utf-8", "replace")


def detect_parser(path: Path, head: str) -> Parser | None:
    """The parser for ``path``: by its extension first, else the first whose ``sniff`` accepts ``head``."""
    by_ext = BY_EXTENSION.get(path.suffix.lower())
    if by_ext is not None:
        return by_ext
    for parser in PARSERS:
        if parser.sniff(path, head):
            return parser
    return None


def _decode(path: Path, data: bytes) -> str | Skip:
    """UTF-8 text (BOM dropped, newlines unified) or a Skip naming the line of the first bad byte."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start : exc.start + 1].hex()
        return Skip(source_name(path), f"line {line}", f"not valid UTF-8 at line {line} (byte 0x{bad})")
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_listing(path: Path) -> ParseResult:
    """Read and parse one listing file. Never raises for bad input: every problem is a :class:`Skip`.

    Whole-file problems (missing, unreadable, empty, binary, not UTF-8, unrecognised format, nothing
    in it) come back as one Skip with an empty locator or the offending line; entry-level problems
    come back from the parser alongside the entries that did parse.
    """
    path = Path(path)
    source = source_name(path)

    def whole(reason: str, locator: str = "") -> ParseResult:
        return ParseResult(skipped=[Skip(source, locator, reason)])

    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return whole("no such file")
    except IsADirectoryError:
        return whole("is a directory, not a listing file")
    except OSError as exc:
        return whole(f"cannot read file: {collapse_ws(exc.strerror or str(exc))}")
    if not data.strip():
        return whole("empty file")
    if b"\x00" in data[:_BINARY_PROBE]:
        return whole("binary file, not a listing")
    text = _decode(path, data)
    if isinstance(text, Skip):
        return ParseResult(skipped=[text])
    parser = detect_parser(path, text[:_HEAD_CHARS])
    if parser is None:
        return whole("unrecognised format (expected HF Daily Papers text, JSON/JSONL, arXiv Atom or BibTeX)")
    try:
        result = parser.parse(path, text)
    except Exception as exc:  # a parser bug must not abort a whole ingest run; report it as a Skip
        return whole(collapse_ws(f"{parser.name} parser failed: {type(exc).__name__}: {exc}"))
    if not result.entries and not result.skipped:
        return whole(f"no entries found ({parser.name} format)")
    name = source_name(path.name)
    for entry in result.entries:  # stored in the registry and the vectors' metadata: must be clean text
        entry.source = name
    for skip in result.skipped:
        skip.source = source
    return result


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)


def iter_listing_files(
    paths: list[Path], origins: dict[Path, list[int]] | None = None
) -> tuple[list[Path], list[Skip]]:
    """Expand ``paths`` into listing files, in order, each once.

    A folder is walked recursively (sorted), keeping files with a known listing extension and leaving out
    hidden files and folders; a file named explicitly is kept whatever its extension; a path that does
    not exist comes back as a :class:`Skip`. When ``origins`` is given, it is filled with each file's
    named paths: the positions in ``paths`` of every path that yielded it (a file found under two named
    folders counts for both).
    """
    files: list[Path] = []
    skipped: list[Skip] = []
    seen: dict[Path, Path] = {}  # resolved -> the file as first found

    def add(file: Path, position: int) -> None:
        key = file.resolve()
        if key not in seen:
            seen[key] = file
            files.append(file)
        if origins is not None and position not in (came := origins.setdefault(seen[key], [])):
            came.append(position)

    for position, raw in enumerate(paths):
        path = Path(raw)
        try:  # one unreadable path (no permission, name too long, ...) must not stop the others
            if path.is_dir():
                found = sorted(
                    p
                    for p in path.rglob("*")
                    if p.is_file() and p.suffix.lower() in LISTING_EXTENSIONS and not _hidden(p, path)
                )
                for file in found:
                    add(file, position)
            elif path.exists():
                add(path, position)
            else:
                skipped.append(Skip(source_name(path), "", "no such file or folder"))
        except OSError as exc:
            skipped.append(Skip(source_name(path), "", f"cannot read: {collapse_ws(exc.strerror or str(exc))}"))
    return files, skipped
