"""HTML, BibTeX and example questions for the Gradio UI (pure functions, no Gradio import).

Everything that reaches the page from a paper (titles, abstracts, listing names, URLs) is
HTML-escaped here, without its control characters and bidi overrides (:func:`assistant.text.terminal_safe`); the only markup added is our own (``<mark>`` around a citation's supporting
sentence, links, ``<details>`` for retrieved-but-uncited papers).
"""

from __future__ import annotations

import html
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping

from assistant.models import Answer, Citation, Filters, Paper
from assistant.text import terminal_safe

# --- sources panel ---------------------------------------------------------------------------


_IMAGE_OPEN = re.compile(r"!(?=\[)")


def chat_markdown(text: str) -> str:
    """Answer text (quoted from abstracts) made safe for the Chatbot's markdown: no raw HTML (``<img>``,
    ``<script>``...), no markdown image (``![x](https://...)`` would make the browser fetch it), no
    terminal escapes or bidi overrides; links stay text the user may click, nothing loads by itself."""
    text = terminal_safe(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _IMAGE_OPEN.sub(r"\\!", text)


def _esc(text: object) -> str:
    """HTML-escaped ``text`` without control characters, escape sequences or bidi controls."""
    return html.escape(terminal_safe(str(text)), quote=True)


def paper_url(url: str | None, paper: Paper | None) -> str | None:
    """The paper's safe http(s) link: its listing URL, else its arXiv abstract page, else ``None``."""
    if url and url.strip().lower().startswith(("http://", "https://")):
        return url.strip()
    return paper.link() if paper is not None else None


def _find(abstract: str, snippet: str) -> tuple[int, int] | None:
    words = snippet.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    found = re.search(pattern, abstract) or re.search(pattern, abstract, re.IGNORECASE)
    return found.span() if found else None


def highlight(abstract: str, snippet: str) -> str:
    """``abstract`` as escaped HTML with ``snippet`` wrapped in ``<mark>`` (whitespace-tolerant).

    When the snippet is not found in the abstract it is shown, marked, before the abstract.
    """
    span = _find(abstract, snippet)
    if span is None:
        return f"<mark>{_esc(snippet)}</mark><br>{_esc(abstract)}" if snippet.strip() else _esc(abstract)
    start, end = span
    return f"{_esc(abstract[:start])}<mark>{_esc(abstract[start:end])}</mark>{_esc(abstract[end:])}"


def _clip(text: str, width: int, *, tail: bool) -> str:
    if len(text) <= width:
        return text
    return "… " + text[-width:].split(" ", 1)[-1] if tail else text[:width].rsplit(" ", 1)[0] + " …"


def excerpt(abstract: str, snippet: str, width: int = 220) -> str:
    """The marked snippet with the sentence before and after it (escaped HTML, '…' where cut)."""
    span = _find(abstract, snippet)
    if span is None:
        return f"<mark>{_esc(snippet)}</mark>" if snippet.strip() else _esc(_clip(abstract, 2 * width, tail=False))
    start, end = span
    before = re.split(r"(?<=[.!?])\s+", abstract[:start].strip())[-1] if abstract[:start].strip() else ""
    after = re.split(r"(?<=[.!?])\s+", abstract[end:].strip())[0] if abstract[end:].strip() else ""
    lead = "… " if abstract[:start].strip() != before else ""
    trail = " …" if abstract[end:].strip() != after else ""
    before, after = _clip(before, width, tail=True), _clip(after, width, tail=False)
    lead = "" if before.startswith("…") else lead
    trail = "" if after.endswith("…") else trail
    return (
        f"{lead}{_esc(before)}{' ' if before else ''}<mark>{_esc(abstract[start:end])}</mark>"
        f"{' ' if after else ''}{_esc(after)}{trail}"
    )


def filters_label(filters: Filters) -> str:
    """'2024–2025', 'since 2024', 'until 2023' or '' (plus the listing filter, and a follow-up's narrowing to
    or past the papers of the previous answer, when set)."""
    parts = []
    if filters.since is not None and filters.until is not None:
        parts.append(f"years {filters.since}–{filters.until}")
    elif filters.since is not None:
        parts.append(f"since {filters.since}")
    elif filters.until is not None:
        parts.append(f"until {filters.until}")
    if filters.source:
        parts.append(f"listing ~ {filters.source}")
    if filters.papers is not None:
        n = len(filters.papers)
        parts.append(f"among {n} earlier paper{'' if n == 1 else 's'}")
    if filters.exclude:
        parts.append(f"without {len(filters.exclude)} already cited")
    return ", ".join(parts)


def _meta(date: str | None, year: int | None, sources: list[str], url: str | None) -> str:
    bits = []
    if date:
        bits.append(_esc(date))
    elif year:
        bits.append(str(year))
    if sources:
        bits.append("listing: " + ", ".join(_esc(s) for s in sources))
    if url:
        bits.append(f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">link</a>')
    return f'<div class="la-meta">{" · ".join(bits) or "no date or listing known"}</div>'


def _citation_item(c: Citation, paper: Paper | None, css: str) -> str:
    url = paper_url(c.url, paper)
    title = _esc(c.title)
    if url:
        title = f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    abstract = paper.abstract if paper is not None else ""
    full = (
        f'<details class="la-full"><summary>Full abstract</summary>'
        f'<p class="la-abstract">{highlight(abstract, c.snippet)}</p></details>'
        if abstract
        else ""
    )
    return (
        f'<li class="{css}" id="la-src-{c.n}" data-n="{c.n}">'
        f'<div class="la-title"><span class="la-num">[{c.n}]</span> {title}</div>'
        f"{_meta(c.date, c.year, c.sources, url)}"
        f'<p class="la-excerpt">{excerpt(abstract, c.snippet)}</p>{full}</li>'
    )


def _paper_item(paper: Paper) -> str:
    url = paper_url(paper.url, paper)
    title = _esc(paper.title)
    if url:
        title = f'<a href="{_esc(url)}" target="_blank" rel="noopener noreferrer">{title}</a>'
    return (
        f'<li class="la-retrieved-item"><div class="la-title">{title}</div>'
        f"{_meta(paper.date, paper.year, paper.sources, url)}"
        f'<details><summary>Abstract</summary><p class="la-abstract">{_esc(paper.abstract)}</p></details></li>'
    )


def sources_html(answer: Answer | None, papers: Mapping[str, Paper] | None = None, *, turn: int = 0) -> str:
    """The sources panel for ``answer``: cited (or, on refusal, closest) papers, then the rest.

    ``papers`` supplies abstracts for papers not among ``answer.contexts``; ``turn`` is written to
    ``data-turn`` so a browser can tell one answer's panel from the next.
    """
    if answer is None:
        return (
            '<div class="la-sources la-empty" data-turn="0"><p>The papers cited by the latest answer '
            "appear here, with the supporting sentence highlighted in each abstract.</p></div>"
        )
    by_id = dict(papers or {})
    by_id.update({h.paper.id: h.paper for h in answer.contexts})
    shown = answer.closest if answer.refused else answer.citations
    label = filters_label(answer.filters)
    active = f' <span class="la-filters">Filters: {_esc(label)}</span>' if label else ""
    if answer.confidence_label():
        active += f' <span class="la-confidence">{_esc(answer.confidence_label())}</span>'
    if answer.refused:
        head = (
            '<div class="la-notice">No answer in the indexed papers.'
            f"{' Closest papers found:' if shown else ''}{active}</div>"
        )
        kind, css = "la-refusal", "la-closest"
    else:
        head = f'<div class="la-head">Cited in the latest answer ({len(shown)}){active}</div>'
        kind, css = "la-answer", "la-cited"
    items = "".join(_citation_item(c, by_id.get(c.paper_id), css) for c in shown)
    listed = {c.paper_id for c in shown}
    rest = [h.paper for h in answer.contexts if h.paper.id not in listed]
    more = ""
    if rest:
        what = "retrieved but not cited" if not answer.refused else "also retrieved"
        more = (
            f'<details class="la-more"><summary>{len(rest)} more papers {what}</summary>'
            f'<ol class="la-retrieved">{"".join(_paper_item(p) for p in rest)}</ol></details>'
        )
    return (
        f'<div class="la-sources {kind}" data-turn="{turn}">{head}'
        f'<ol class="la-list">{items}</ol>{more}</div>'
    )


def status_html(stats: Mapping[str, object] | None, backend: str, *, error: str | None = None) -> str:
    """One status line: papers indexed, embedding model, backend; or the empty-index notice."""
    if error is not None or stats is None:
        message = error or "the index is empty"
        message = _esc(message[:1].upper() + message[1:])
        message = re.sub(r"`([^`]+)`", r"<code>\1</code>", message)
        return (
            '<div class="la-status la-status-missing"><b>No papers are indexed yet.</b> '
            f"{message}. Then reload this page.</div>"
        )
    return (
        f'<div class="la-status">{_esc(stats.get("papers", 0))} papers indexed · embedding model '
        f"<code>{_esc(stats.get('embedding_model', '?'))}</code> · backend <code>{_esc(backend)}</code></div>"
    )


# --- BibTeX ----------------------------------------------------------------------------------

_LATEX = {"\\": r"\textbackslash{}", "{": r"\{", "}": r"\}", "&": r"\&", "%": r"\%", "$": r"\$",
          "#": r"\#", "_": r"\_", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_RE = re.compile(r"[\\{}&%$#_~^]")


def bib_escape(text: str) -> str:
    """Escape ``text`` for a BibTeX field: braces and LaTeX specials, whitespace collapsed."""
    return _LATEX_RE.sub(lambda m: _LATEX[m.group()], " ".join(text.split()))


def _bib_url(url: str) -> str:
    """URLs stay verbatim (the url package reads them raw) except braces and spaces, percent-encoded."""
    return url.replace("{", "%7B").replace("}", "%7D").replace(" ", "%20")


def bib_key(paper: Paper | None, citation: Citation, taken: set[str]) -> str:
    """'<first author surname><year><first title word>' (or '<word><year>'), ASCII, unique in ``taken``."""
    author = ""
    if paper is not None and paper.authors:
        author = paper.authors[0].split(",")[0].split()[-1] if paper.authors[0].split() else ""
    words = [w for w in re.findall(r"[A-Za-z0-9]+", citation.title) if w.lower() not in _STOP]
    word, year = (words[0] if words else "paper"), citation.year or ""
    base = re.sub(r"[^a-z0-9]", "", (f"{author}{year}{word}" if author else f"{word}{year}").lower())
    base = base or "paper"
    key, i = base, 0
    while key in taken:
        i += 1
        key = f"{base}{chr(ord('a') + i - 1) if i <= 26 else i}"
    taken.add(key)
    return key


def bibtex(citations: Iterable[Citation], papers: Mapping[str, Paper]) -> str:
    """BibTeX ``@misc`` entries for ``citations`` (title, authors, abstract, year, url, eprint)."""
    taken: set[str] = set()
    entries = []
    for c in citations:
        paper = papers.get(c.paper_id)
        fields = [("title", "{" + bib_escape(c.title) + "}")]
        if paper is not None and paper.authors:
            fields.append(("author", " and ".join(bib_escape(a) for a in paper.authors)))
        if paper is not None and paper.abstract:
            fields.append(("abstract", bib_escape(paper.abstract)))
        if c.year:
            fields.append(("year", str(c.year)))
        url = paper_url(c.url, paper)
        if url:
            fields.append(("url", _bib_url(url)))
        if paper is not None and paper.arxiv_id:
            fields += [("eprint", bib_escape(paper.arxiv_id)), ("archiveprefix", "arXiv")]
        if paper is not None and paper.venue:
            fields.append(("howpublished", bib_escape(paper.venue)))
        if c.sources:
            fields.append(("note", "Listing: " + bib_escape(", ".join(c.sources))))
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        entries.append(f"@misc{{{bib_key(paper, c, taken)},\n{body}\n}}\n")
    return "\n".join(entries)


# --- example questions -----------------------------------------------------------------------

_STOP = set(
    "a an the of for and or in on to with via by from at as is are be we our your its their this that "
    "using use based towards toward through into over under beyond without can do does how what when why "
    "which who not all any than more less vs versus you need".split()
)
# words that make a poor start or end of a topic phrase ("small language", "parameter efficient")
_ADJ = set(
    "large small new novel simple efficient effective better good adaptive comprehensive free first multi "
    "general revisiting rethinking pre-trained pretrained fine-tuned scalable robust unified".split()
)
_BAD_END = _ADJ | {"language", "survey", "benchmark", "study", "analysis"}
_TEMPLATES = ("Which papers address {}?", "Which papers work on {}?", "Which papers study {}?")


def _surface(form: str) -> str:
    """Lower-case Title-case words ('In-Context Learning' -> 'in-context learning'); keep 'LoRA'."""
    def fix(part: str) -> str:
        return part.lower() if part[:1].isupper() and part[1:].islower() else part

    return " ".join("-".join(fix(p) for p in word.split("-")) for word in form.split())


def _norm(word: str) -> str:
    low = word.lower()
    return low[:-1] if len(low) > 3 and low.endswith("s") and not low.endswith("ss") else low


def example_questions(titles: Iterable[str], n: int = 4) -> list[str]:
    """Up to ``n`` "Which papers …" questions about the most frequent title phrases of the corpus.

    Phrases are 2–3 word runs without stop words, counted once per title; phrases in more than a
    fifth of the titles are too broad to be useful, and each chosen phrase shares no word with another.
    """
    titles = list(titles)
    df: Counter[tuple[str, ...]] = Counter()
    forms: defaultdict[tuple[str, ...], Counter[str]] = defaultdict(Counter)
    for title in titles:
        tokens = re.findall(r"[A-Za-z][A-Za-z0-9]*(?:-[A-Za-z0-9]+)*", title)
        seen: set[tuple[str, ...]] = set()
        for size in (3, 2):
            for i in range(len(tokens) - size + 1):
                gram = tokens[i : i + size]
                low = [t.lower() for t in gram]
                if any(t in _STOP for t in low) or low[0] in _ADJ or low[-1] in _BAD_END:
                    continue
                key = tuple(_norm(t) for t in gram)
                if key not in seen:
                    seen.add(key)
                    df[key] += 1
                    forms[key][" ".join(gram)] += 1
    limit = max(2, len(titles) // 5)
    ranked = sorted(
        (key for key, count in df.items() if 2 <= count <= limit),
        key=lambda key: (-df[key] * (1 + 0.25 * (len(key) - 2)), -len(key), key),
    )
    chosen: list[tuple[str, ...]] = []
    used: set[str] = set()
    for key in ranked:
        if used.intersection(key):
            continue
        chosen.append(key)
        used.update(key)
        if len(chosen) == n:
            break
    return [_TEMPLATES[i % len(_TEMPLATES)].format(_surface(forms[key].most_common(1)[0][0]))
            for i, key in enumerate(chosen)]
