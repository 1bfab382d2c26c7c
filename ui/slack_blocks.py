"""Slack message text in both directions: Block Kit replies out, questions (with inline filters) in.

Outgoing: :func:`answer_blocks` renders an :class:`~assistant.models.Answer` as mrkdwn sections (the
answer with its ``[n]`` citations) followed by a compact sources list in context blocks, within Slack's
limits (3,000 characters per text object, 50 blocks). A long answer is split at line, sentence or word
boundaries, never inside a ``[n]`` citation or an ``&amp;`` entity; only the sources list is trimmed.
Control characters, escape sequences and bidi overrides in paper text are dropped (:func:`escape`).

Incoming: :func:`unescape` turns Slack's formatting back into plain text and :func:`parse_question`
pulls ``since:2024 until:2025 source:003 k:5`` out of the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from assistant.backends import NO_GROUNDED_ANSWER
from assistant.citations import CITE_GROUP
from assistant.errors import FilterError
from assistant.models import MAX_K, Answer, Citation
from assistant.text import terminal_safe

TEXT_LIMIT = 3000  # characters per section / context text object
MAX_BLOCKS = 50  # blocks per message
FALLBACK_LIMIT = 3000  # the plain ``text`` fallback (notifications, screen readers, thread history)
TITLE_LIMIT = 200
SNIPPET_LIMIT = 240  # a closest paper's best sentence, on a refusal

Block = dict[str, Any]

_CITE = CITE_GROUP
_ENTITY = re.compile(r"&(?:amp|lt|gt);")
_LINE = re.compile(r"(?<=\n)")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_SPACE = re.compile(r"\s+")
_BOLD = re.compile(r"\*\*(\S(?:.*?\S)?)\*\*")
_HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*$", re.MULTILINE)
_FILTER = re.compile(r"(?<!\S)(since|until|source|k):(\S*)", re.IGNORECASE)


# --- outgoing ---------------------------------------------------------------------------------
def escape(text: str) -> str:
    """Escape the three characters Slack's mrkdwn reserves (``&``, ``<``, ``>``); control characters,
    escape sequences and bidi overrides (text from abstracts) are dropped (:func:`assistant.text.terminal_safe`)."""
    return terminal_safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_mrkdwn(text: str) -> str:
    """Escaped mrkdwn from the answer's Markdown-ish text (``**bold**`` and headings become ``*bold*``)."""
    text = _HEADING.sub(lambda m: f"**{m.group(1)}**", text.strip())
    return _BOLD.sub(r"*\1*", escape(text))


def _protected(text: str) -> list[tuple[int, int]]:
    return [m.span() for pattern in (_CITE, _ENTITY) for m in pattern.finditer(text)]


def _cuts(text: str, pattern: re.Pattern[str], spans: list[tuple[int, int]]) -> list[str]:
    """``text`` cut after each match of ``pattern`` that is not inside a protected span."""
    parts, start = [], 0
    for m in pattern.finditer(text):
        if m.end() <= start or any(a < m.start() < b or a < m.end() < b for a, b in spans):
            continue
        parts.append(text[start : m.end()])
        start = m.end()
    parts.append(text[start:])
    return [p for p in parts if p]


def _hard_cut(text: str, limit: int) -> list[str]:
    out = []
    while len(text) > limit:
        cut = limit
        for a, b in _protected(text):
            if a < cut < b:
                cut = a
        cut = cut if cut > 0 else limit
        out.append(text[:cut])
        text = text[cut:]
    return [*out, text]


def split_text(text: str, limit: int = TEXT_LIMIT) -> list[str]:
    """Split ``text`` into pieces of at most ``limit`` characters at line, then sentence, then word
    boundaries (never inside a ``[n]`` citation or an entity). Joining the pieces gives ``text`` back."""
    if len(text) <= limit:
        return [text]
    spans = _protected(text)
    for pattern in (_LINE, _SENTENCE, _SPACE):
        units = _cuts(text, pattern, spans)
        if len(units) > 1:
            break
    else:
        return _hard_cut(text, limit)
    pieces: list[str] = []
    current = ""
    for unit in units:
        if len(current) + len(unit) <= limit:
            current += unit
            continue
        if current:
            pieces.append(current)
        if len(unit) <= limit:
            current = unit
        else:
            *head, current = split_text(unit, limit)
            pieces.extend(head)
    if current:
        pieces.append(current)
    return pieces


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _url(url: str) -> str:
    return terminal_safe(url).strip().replace(" ", "%20").replace("|", "%7C").replace("<", "%3C").replace(">", "%3E")


def source_line(citation: Citation, label: str, *, snippet: bool = False) -> str:
    """``*[n]* <url|Title> · date`` (title only when there is no link), with ``— "best sentence"`` when
    ``snippet`` is set (a refusal's closest papers: the sentence that came nearest to answering)."""
    title = escape(_shorten(citation.title, TITLE_LIMIT))
    shown = f"<{_url(citation.url)}|{title}>" if citation.url else title
    when = citation.date or (str(citation.year) if citation.year else "")
    line = f"{label} {shown}" + (f" · {escape(when)}" if when else "")
    if snippet and citation.snippet.strip():
        line += f' — "{escape(_shorten(citation.snippet, SNIPPET_LIMIT))}"'
    return line


def section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def _pack_lines(lines: list[str]) -> list[Block]:
    blocks, current = [], ""
    for line in lines:
        line = _shorten(line, TEXT_LIMIT)
        if current and len(current) + 1 + len(line) > TEXT_LIMIT:
            blocks.append(context(current))
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        blocks.append(context(current))
    return blocks


def sources_blocks(header: str, lines: list[str], budget: int) -> list[Block]:
    """Context blocks listing ``lines`` under ``header`` in at most ``budget`` blocks; trailing lines that
    do not fit are replaced by ``+N more sources``."""
    if not lines or budget < 1:
        return []
    for shown in range(len(lines), -1, -1):
        more = [f"+{len(lines) - shown} more sources"] if shown < len(lines) else []
        blocks = _pack_lines([header, *lines[:shown], *more])
        if len(blocks) <= budget:
            return blocks
    return [context(f"{header} +{len(lines)} sources")]


def _closest_entry(line: str, title: str) -> bool:
    """Whether ``line`` is the refusal's list entry for ``title``: ``- Title`` or ``- Title — "snippet"``."""
    return line == f"- {title}" or line.startswith(f"- {title} ")


def refusal_text(answer: Answer) -> str:
    """The refusal without the list of closest papers that ends it (``ask()`` writes a ``…:`` header and
    one ``- Title`` line per closest paper, in order; they are shown as links, with their best sentence,
    in the context blocks instead)."""
    lines = answer.text.rstrip().splitlines()
    n = len(answer.closest)
    listed = 0 < n < len(lines) and lines[-n - 1].rstrip().endswith(":") and all(
        _closest_entry(line, c.title) for line, c in zip(lines[-n:], answer.closest, strict=True)
    )
    return ("\n".join(lines[: -n - 1]).strip() if listed else "") or answer.text.strip()


def fallback(text: str) -> str:
    """A plain ``text`` fallback of at most :data:`FALLBACK_LIMIT` characters, cut at a boundary."""
    pieces = split_text(text, FALLBACK_LIMIT - 2)
    return pieces[0].rstrip() + (" …" if len(pieces) > 1 else "")


def answer_blocks(answer: Answer, note: str | None = None) -> tuple[str, list[Block]]:
    """``(text, blocks)`` for an answer: mrkdwn sections, then the numbered sources (or, on a refusal,
    the closest papers), then ``note`` (e.g. the active filters) in a last context block."""
    if answer.refused:
        body = to_mrkdwn(refusal_text(answer))
        # a refusal by the backend: the judgement found papers likely to answer, so they are not called non-answers
        by_backend = answer.text.startswith(NO_GROUNDED_ANSWER)
        header = "*Closest papers:*" if by_backend else "*Closest papers (they do not answer it):*"
        lines = [source_line(c, "•", snippet=True) for c in answer.closest]
    else:
        body = to_mrkdwn(answer.text)
        header = "*Sources*"
        lines = [source_line(c, f"*[{c.n}]*") for c in answer.citations]
    note = " · ".join(x for x in (escape(answer.confidence_label()), note) if x)  # the label quotes question words
    tail = [context(_shorten(note, TEXT_LIMIT))] if note else []
    pieces = [p.strip() for p in split_text(body)]
    sections = [section(p) for p in pieces if p]
    room = MAX_BLOCKS - len(tail) - (1 if lines else 0)
    if len(sections) > room:  # only an absurdly long answer gets here: keep whole sections
        sections = sections[: room - 1] + [section("_… the rest of the answer does not fit in one Slack message._")]
    blocks = sections + sources_blocks(header, lines, MAX_BLOCKS - len(sections) - len(tail)) + tail
    return fallback(to_mrkdwn(answer.text)), blocks


def notice(text: str) -> tuple[str, list[Block]]:
    """``(text, blocks)`` for a short notice (errors, rate limits, help); ``text`` is already mrkdwn."""
    return fallback(text), [section(p.strip()) for p in split_text(text)[: MAX_BLOCKS] if p.strip()]


# --- incoming ---------------------------------------------------------------------------------
def strip_mentions(text: str, user_id: str | None) -> str:
    """Remove ``<@USER>`` / ``<@USER|name>`` mentions of ``user_id`` (the bot)."""
    if not user_id:
        return text.strip()
    return " ".join(re.sub(rf"<@{re.escape(user_id)}(?:\|[^>]*)?>", " ", text).split())


def unescape(text: str) -> str:
    """Slack formatting back to plain text: ``<url|label>`` → label, ``<@U1>`` → ``@U1``, entities decoded."""

    def link(m: re.Match[str]) -> str:
        target, _, label = m.group(1).partition("|")
        if target.startswith(("@", "#")):
            return target[0] + (label or target[1:])
        if target.startswith("!"):
            return "@" + (label or target[1:].split("^")[0])
        return label or target

    text = re.sub(r"<([^<>]+)>", link, text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@dataclass
class Query:
    """A question with the filters typed inline (``carried``: taken over from earlier in its thread)."""

    question: str
    filters: dict[str, Any] = field(default_factory=dict)
    k: int | None = None
    carried: bool = False

    def explicit(self) -> bool:
        """Whether any inline filter (``k`` included) is set."""
        return bool(self.filters) or self.k is not None

    def describe(self) -> str | None:
        """``since 2024 · source 003 · k 5`` when any filter is set."""
        parts = [f"{key} {value}" for key, value in self.filters.items()]
        if self.k is not None:
            parts.append(f"k {self.k}")
        return " · ".join(parts) or None


def _year(name: str, value: str) -> int:
    if not re.fullmatch(r"\d{4}", value):
        raise FilterError(f"{name}: expected a year like {name}:2024, got {name}:{value or '(nothing)'}")
    return int(value)


def parse_question(text: str) -> Query:
    """Pull ``since:YYYY``, ``until:YYYY``, ``source:NAME`` and ``k:N`` out of ``text``.

    Raises :class:`FilterError` (naming the filter) on a bad value."""
    query = Query(question="")
    for m in _FILTER.finditer(text):
        name, value = m.group(1).lower(), m.group(2).strip("\"'`")
        if name in ("since", "until"):
            query.filters[name] = _year(name, value)
        elif name == "source":
            if not value:
                raise FilterError("source: expected part of a listing file name, like source:003")
            query.filters["source"] = value
        else:
            if not value.isdigit() or not 1 <= int(value) <= MAX_K:
                raise FilterError(f"k: expected a number of papers from 1 to {MAX_K}, got k:{value or '(nothing)'}")
            query.k = int(value)
    since, until = query.filters.get("since"), query.filters.get("until")
    if since is not None and until is not None and since > until:
        raise FilterError(f"since:{since} is after until:{until}")
    query.question = " ".join(_FILTER.sub(" ", text).split())
    return query


def strip_filters(text: str) -> str:
    """``text`` without inline filters (lenient: never raises)."""
    return " ".join(_FILTER.sub(" ", text).split())
