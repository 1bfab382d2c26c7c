"""BibTeX entries that carry an ``abstract`` field (a small hand-written parser, no dependencies).

Handles ``@type{key, field = value, ...}`` (and ``@type(...)``) with values in braces (nested), in quotes,
bare numbers or ``@string`` macros joined by ``#``. ``@comment`` and ``@preamble`` are ignored. An entry
whose braces do not balance before the next ``@`` at the start of a line is skipped, and parsing goes on.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

from ingest.parsers.base import Entry, ParseResult, Skip
from ingest.parsers.text import collapse_ws, extract_arxiv_id, own_id, parse_date

_ENTRY_RE = re.compile(r"^[ \t]*@[ \t]*([A-Za-z][\w-]*)\s*([{(])", re.M)
_NAME_RE = re.compile(r"[A-Za-z_][\w:.+/-]*")
MONTH_NAMES = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_MONTH_MACROS = {m[:3].lower(): m for m in MONTH_NAMES}
_ACCENTS = {
    "'": "\u0301", "`": "\u0300", "^": "\u0302", '"': "\u0308", "~": "\u0303", "=": "\u0304", ".": "\u0307",
    "u": "\u0306", "v": "\u030c", "H": "\u030b", "c": "\u0327", "k": "\u0328", "r": "\u030a",
    "b": "\u0331", "d": "\u0323",
}  # fmt: skip
_SYMBOLS = {
    "ss": "ß", "o": "ø", "O": "Ø", "ae": "æ", "AE": "Æ", "oe": "œ", "OE": "Œ", "aa": "å", "AA": "Å",
    "l": "ł", "L": "Ł", "i": "ı", "j": "ȷ", "ldots": "…", "dots": "…", "textendash": "–",
    "textemdash": "—", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε",
    "lambda": "λ", "mu": "μ", "pi": "π", "sigma": "σ", "theta": "θ", "tau": "τ", "times": "×",
}  # fmt: skip
_ACCENT_RE = re.compile(r"\\([`'^\"~=.])\s*(?:\{\s*(\\[ij]|[A-Za-z])\s*\}|(\\[ij]|[A-Za-z]))")
_LETTER_ACCENT_RE = re.compile(r"\\([uvHckbdr])(?:\s*\{\s*(\\[ij]|[A-Za-z])\s*\}|\s+(\\[ij]|[A-Za-z]))")
_ESCAPES = {"\\&": "&", "\\%": "%", "\\$": "$", "\\#": "#", "\\_": "_", "\\{": "\ue000", "\\}": "\ue001"}
_COMMAND_RE = re.compile(r"\\([A-Za-z]+)\*?(\{\})?(\s*)")


def _command(m: re.Match[str]) -> str:
    """A control word: a known symbol, nothing (``\\emph{x}`` keeps ``{x}``), or its name (``\\LaTeX``)."""
    name, symbol = m.group(1), _SYMBOLS.get(m.group(1))
    if m.end() < len(m.string) and m.string[m.end()] == "{" and not m.group(2):
        return symbol or ""
    return (symbol or name) + (" " if m.group(3) else "")


class BibError(ValueError):
    """Malformed entry text; ``offset`` is where in the file it was noticed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.offset = offset


def latex_to_text(value: str) -> str:
    """Plain text from a BibTeX value: accents to Unicode, escapes resolved, commands and braces dropped."""

    def accent(m: re.Match[str]) -> str:
        base = m.group(2) or m.group(3)
        base = {"\\i": "i", "\\j": "j"}.get(base, base)
        return unicodedata.normalize("NFC", base + _ACCENTS[m.group(1)])

    s = _LETTER_ACCENT_RE.sub(accent, _ACCENT_RE.sub(accent, value))
    for esc, rep in _ESCAPES.items():
        s = s.replace(esc, rep)
    s = _COMMAND_RE.sub(_command, s)
    s = s.replace("---", "—").replace("--", "–").replace("``", "“").replace("''", "”")
    s = re.sub(r"(?<!\\)~", " ", s).replace("$", "").replace("{", "").replace("}", "")
    s = s.replace("\ue000", "{").replace("\ue001", "}")
    return unicodedata.normalize("NFC", collapse_ws(s))


def _split_top(value: str, sep: re.Pattern[str]) -> list[str]:
    """Split ``value`` on ``sep`` where it occurs outside braces."""
    parts, depth, last = [], 0, 0
    i = 0
    while i < len(value):
        ch = value[i]
        depth += (ch == "{") - (ch == "}")
        if depth == 0:
            m = sep.match(value, i)
            if m and m.end() > i:
                parts.append(value[last:i])
                last = i = m.end()
                continue
        i += 1
    parts.append(value[last:])
    return parts


def split_bib_authors(value: str) -> list[str]:
    """``"Hu, Edward J. and Shen, Yelong and others"`` -> ``["Edward J. Hu", "Yelong Shen"]``."""
    authors = []
    for raw in _split_top(value, re.compile(r"\s+and\s+")):
        parts = [latex_to_text(p) for p in _split_top(raw, re.compile(r"\s*,\s*"))]
        if len(parts) >= 2:  # "Last, First" or "Last, Jr, First"
            parts = [parts[-1], parts[0], *parts[1:-1]]
        name = collapse_ws(" ".join(p for p in parts if p))
        if name and name.lower() != "others":
            authors.append(name)
    return authors


def _find_end(text: str, start: int, stop: int, closer: str) -> int | None:
    """Offset of the delimiter closing the entry body that begins at ``start``, or None before ``stop``."""
    depth, quoted = 0, False
    i = start
    while i < stop:
        ch = text[i]
        if ch == "\\":
            i += 2
            continue
        if ch == '"' and closer == ")" and depth == 0:  # "(...)" entries: a ")" inside quotes is text
            quoted = not quoted
        elif quoted:
            pass
        elif ch == "{":
            depth += 1
        elif ch == "}":
            if depth == 0:
                return i if closer == "}" else None
            depth -= 1
        elif ch == ")" and closer == ")" and depth == 0:
            return i
        i += 1
    return None


class _Fields:
    """Cursor over one entry body: ``key, name = value # value, ...``."""

    def __init__(self, text: str, start: int, end: int, macros: dict[str, str]) -> None:
        self.text, self.pos, self.end, self.macros = text, start, end, macros

    def _ws(self) -> None:
        while self.pos < self.end and self.text[self.pos].isspace():
            self.pos += 1

    def key(self) -> str:
        comma = self.text.find(",", self.pos, self.end)
        cut = self.end if comma < 0 else comma
        head = self.text[self.pos : cut]
        if "=" in head:  # no key at all: the body starts with a field
            return ""
        self.pos = cut + 1 if comma >= 0 else self.end
        return head.strip()

    def fields(self) -> dict[str, str]:
        out: dict[str, str] = {}
        while True:
            self._ws()
            while self.pos < self.end and self.text[self.pos] == ",":
                self.pos += 1
                self._ws()
            if self.pos >= self.end:
                return out
            m = _NAME_RE.match(self.text, self.pos, self.end)
            if not m:
                raise BibError(f"expected a field name, found {self.text[self.pos]!r}", self.pos)
            name, self.pos = m.group(0).lower(), m.end()
            self._ws()
            if self.pos >= self.end or self.text[self.pos] != "=":
                raise BibError(f"expected '=' after field {name!r}", self.pos)
            self.pos += 1
            value = self._value()
            out.setdefault(name, value)
            self._ws()
            if self.pos < self.end and self.text[self.pos] != ",":
                raise BibError(f"expected ',' after field {name!r}", self.pos)

    def _value(self) -> str:
        pieces = [self._piece()]
        self._ws()
        while self.pos < self.end and self.text[self.pos] == "#":
            self.pos += 1
            pieces.append(self._piece())
            self._ws()
        return "".join(pieces)

    def _piece(self) -> str:
        self._ws()
        if self.pos >= self.end:
            raise BibError("missing value", self.pos)
        ch, start = self.text[self.pos], self.pos
        if ch == "{":
            close = _find_end(self.text, start + 1, self.end, "}")
            if close is None:
                raise BibError("unbalanced braces in value", start)
            self.pos = close + 1
            return self.text[start + 1 : close]
        if ch == '"':
            depth, i = 0, start + 1
            while i < self.end and not (self.text[i] == '"' and depth == 0):
                if self.text[i] == "\\":
                    i += 1
                else:
                    depth += (self.text[i] == "{") - (self.text[i] == "}")
                i += 1
            if i >= self.end:
                raise BibError("unterminated quoted value", start)
            self.pos = i + 1
            return self.text[start + 1 : i]
        m = re.compile(r"\d+").match(self.text, self.pos, self.end) or _NAME_RE.match(
            self.text, self.pos, self.end
        )
        if not m:
            raise BibError(f"unexpected {ch!r} where a value should be", start)
        self.pos = m.end()
        word = m.group(0)
        return self.macros.get(word.lower(), word)


class BibtexParser:
    """Parser for BibTeX files whose entries carry abstracts."""

    name = "bibtex"
    extensions: tuple[str, ...] = (".bib", ".bibtex")

    def sniff(self, path: Path, head: str) -> bool:
        """True for ``.bib`` files, or content with an ``@type{`` at the start of a line."""
        return path.suffix.lower() in self.extensions or bool(_ENTRY_RE.search(head))

    def parse(self, path: Path, text: str) -> ParseResult:
        """Parse BibTeX; broken or abstract-less entries become :class:`Skip` records, never exceptions."""
        result = ParseResult()
        source = str(path)
        macros = dict(_MONTH_MACROS)
        starts = list(_ENTRY_RE.finditer(text))
        line, counted = 1, 0  # line numbers are counted on from the previous entry (linear, not quadratic)
        for k, m in enumerate(starts):
            kind = m.group(1).lower()
            line += text.count("\n", counted, m.start())
            counted = m.start()
            if kind in ("comment", "preamble"):
                continue
            stop = starts[k + 1].start() if k + 1 < len(starts) else len(text)
            closer = "}" if m.group(2) == "{" else ")"
            end = _find_end(text, m.end(), stop, closer)
            cursor = _Fields(text, m.end(), stop if end is None else end, macros)
            key = "" if kind == "string" else cursor.key()
            label = f"@{kind} entry {key!r}" if key else f"@{kind} entry"
            if end is None:
                reason = f"{label} is truncated or has unbalanced braces; skipped up to the next entry"
                result.skipped.append(Skip(source, f"line {line}", reason))
                continue
            try:
                fields = cursor.fields()
            except BibError as exc:
                at = line + text.count("\n", m.start(), exc.offset)
                result.skipped.append(Skip(source, f"line {line}", f"{label}: {exc} (line {at})"))
                continue
            if kind == "string":
                macros.update(fields)
                continue
            self._add(result, path, line, label, fields)
        return result

    @staticmethod
    def _add(result: ParseResult, path: Path, line: int, label: str, fields: dict[str, str]) -> None:
        title, abstract = latex_to_text(fields.get("title", "")), latex_to_text(fields.get("abstract", ""))
        problem = (
            "no abstract field" if "abstract" not in fields
            else "no title field" if "title" not in fields
            else "empty abstract" if not abstract
            else "empty title" if not title
            else None
        )  # fmt: skip
        if problem:
            result.skipped.append(Skip(str(path), f"line {line}", f"{label} has {problem}"))
            return
        year_text = latex_to_text(fields.get("year", ""))
        month = latex_to_text(fields.get("month", ""))
        if month.isdigit() and len(month) <= 2 and 1 <= int(month) <= 12:  # int() refuses > 4300 digits
            month = MONTH_NAMES[int(month) - 1]
        date = latex_to_text(fields.get("date", "")) or " ".join(p for p in (month, year_text) if p) or None
        info = parse_date(date)
        year = info.year
        if year is None and year_text:
            year = parse_date(year_text).year
        eprint = latex_to_text(fields.get("eprint", ""))
        prefix = latex_to_text(fields.get("archiveprefix", "") or fields.get("eprinttype", "")).lower()
        arxiv_id = extract_arxiv_id(eprint) if eprint and prefix in ("arxiv", "") else None
        if prefix == "arxiv" and eprint and arxiv_id is None:  # "N/A" kept as an id merged unrelated entries
            reason = f"{label} has eprint {eprint[:40]!r}, which is not an arXiv id (leave it out)"
            result.skipped.append(Skip(str(path), f"line {line}", reason))
            return
        url = latex_to_text(fields.get("url", "")) or None
        doi = latex_to_text(fields.get("doi", ""))
        venue = latex_to_text(fields.get("journal", "") or fields.get("booktitle", "")) or None
        for candidate in (url, venue, doi):
            arxiv_id = arxiv_id or extract_arxiv_id(candidate)
        authors = split_bib_authors(fields.get("author", ""))
        result.entries.append(
            Entry(
                title=title,
                abstract=abstract,
                source=path.name,
                locator=f"line {line}",
                authors=authors,
                n_authors=len(authors) or None,
                date=date,
                year=year,
                date_iso=info.date_iso,
                url=url or (f"https://doi.org/{doi}" if doi else None),
                arxiv_id=arxiv_id,
                venue=venue,
                ref=None if arxiv_id else own_id(doi=doi),
            )
        )


PARSER = BibtexParser()
