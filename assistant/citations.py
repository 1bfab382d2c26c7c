"""Citation checks run on every answer after generation.

- citation numbers that map to no retrieved paper are removed (and reported);
- the remaining numbers are renumbered 1..n in order of first use;
- sentences without a citation are flagged;
- numbers that appear in none of the cited abstracts are flagged.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from assistant.models import Checks, Citation, Hit
from assistant.text import normalise_number, numbers, split_sentences

CITE_GROUP = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_SPACED_CITE = re.compile(r"([ \t]*)((?:" + CITE_GROUP.pattern + r")+)")  # a run of citations, the space before it
_OPEN_CITE = re.compile(r"\[(?:\d+(?:\s*[,;–-]\s*\d+)*\s*(?:[,;–-]\s*)?)?")  # a citation group not closed yet ('[1 -')


_LEADING_CITES = re.compile(r"(?:\s*" + CITE_GROUP.pattern + r")*\s*")  # white space and citations opening a text


def opening(text: str) -> str:
    """``text`` from its first word on: the citations and white space before it dropped (a citation of no
    source before the refusal marker is not a word of the reply)."""
    lead = _LEADING_CITES.match(text)
    return text[lead.end() :] if lead else text


def opens_unclosed(text: str) -> bool:
    """Whether ``text`` is so far only citations and a citation group not closed yet ('[0] [1')."""
    lead = _LEADING_CITES.match(text)
    return bool(_OPEN_CITE.fullmatch(text, lead.end() if lead else 0))


def _trailing_cites(text: str) -> int:
    """Where the run of citation groups and white space that ends ``text`` starts (``len(text)`` if none);
    scanned from the end, so a long run costs its length once."""
    j = len(text)
    while True:
        while j and text[j - 1].isspace():
            j -= 1
        i = text.rfind("[", 0, j) if j and text[j - 1] == "]" else -1
        if i == -1 or not CITE_GROUP.fullmatch(text, i, j):
            return j
        j = i


_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def defuse(quoted: str) -> str:
    """Text quoted from an abstract, with its own bracketed numbers ("matching [2] and [3][4]") turned into
    parentheses, so they are never read as citations of this answer's sources."""
    return CITE_GROUP.sub(lambda m: f"({m.group(1)})", quoted)


def _expand(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group):
        if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
            out.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def units(text: str, titles: Sequence[str] = ()) -> list[str]:
    """Claim units of an answer: each bullet/line, split into sentences; list lead-ins (':') dropped, and
    so is a line's opening '<title>:' when it is one of ``titles`` (a title is a name, not a claim)."""
    out: list[str] = []
    leads = [defuse(t) + ":" for t in titles if t]  # as a list line writes them
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line or line.endswith(":"):
            continue
        for lead in leads:
            if line.startswith(lead):
                line = line[len(lead) :].strip()
                break
        out.extend(s for s in split_sentences(line) if re.search(r"[A-Za-z]", s))
    return out


def cited_numbers(sentence: str) -> list[int]:
    return [n for g in CITE_GROUP.findall(sentence) for n in _expand(g)]


class Renumberer:
    """Maps citation numbers to 1..n in order of first use, dropping numbers outside 1..``limit``.

    ``feed`` works on a stream of text deltas (a citation split across deltas is held back until it
    closes), so streamed text carries the same numbers as the final checked answer.
    """

    HOLD = 2000  # longest unclosed citation group ("[1, 2, 3, …") held back while streaming

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.mapping: dict[int, int] = {}
        self.removed: list[int] = []
        self._buf = ""

    def _repl(self, m: re.Match[str]) -> str:
        kept = []
        for n in [n for g in CITE_GROUP.finditer(m.group(2)) for n in _expand(g.group(1))]:
            if 1 <= n <= self.limit:
                kept.append(self.mapping.setdefault(n, len(self.mapping) + 1))
            elif n not in self.removed:
                self.removed.append(n)
        cites = "".join(f"[{k}]" for k in dict.fromkeys(kept))
        return m.group(1) + cites if cites else ""  # removed citations take the space before them along

    def apply(self, text: str) -> str:
        return _SPACED_CITE.sub(self._repl, text)

    def feed(self, delta: str) -> str:
        self._buf += delta
        cut = self._buf.rfind("[")
        if cut != -1 and len(self._buf) - cut <= self.HOLD and _OPEN_CITE.fullmatch(self._buf, cut):
            out, self._buf = self._buf[:cut], self._buf[cut:]  # may still close as a citation
        else:
            out, self._buf = self._buf, ""
        # a trailing run of citations and white space waits too: what follows may extend the run, spaces
        # before a removed citation go with it, and white space at the very end is not the answer's
        body = out[: _trailing_cites(out)]
        self._buf = out[len(body) :] + self._buf
        return self.apply(body)

    def flush(self) -> str:
        out, self._buf = self._buf, ""
        return self.apply(out)


def check(text: str, hits: list[Hit], snippets: dict[int, str] | None = None) -> tuple[str, list[Citation], Checks]:
    """Validate and renumber citations in ``text`` whose numbers refer to ``hits`` (1-based).

    Returns the cleaned text, its citations (new numbering) and the checks' results.
    """
    checks = Checks()
    renumber = Renumberer(len(hits))
    cleaned = renumber.apply(text)
    mapping = renumber.mapping
    checks.removed_citations = renumber.removed
    cleaned = cleaned.strip()  # the quoted text is left as written (a removed citation took its space along)
    citations = []
    for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
        p = hits[old - 1].paper
        citations.append(
            Citation(
                n=new, paper_id=p.id, title=p.title, date=p.date, year=p.year, url=p.link(), sources=p.sources,
                snippet=(snippets or {}).get(old, ""),
            )
        )
    by_n = {new: hits[old - 1].paper for old, new in mapping.items()}
    all_cited = " ".join(f"{p.title} {p.abstract}" for p in by_n.values())
    sentences = units(cleaned, [h.paper.title for h in hits])
    checks.sentences = len(sentences)
    for s in sentences:
        ns = cited_numbers(s)
        if not ns:
            checks.uncited_sentences.append(s)
        evidence = " ".join(f"{by_n[n].title} {by_n[n].abstract}" for n in ns if n in by_n) or all_cited
        have = {normalise_number(x) for x in numbers(evidence)}
        for num in numbers(CITE_GROUP.sub(" ", s)):
            if normalise_number(num) not in have and num not in checks.unsupported_numbers:
                checks.unsupported_numbers.append(num)
    return cleaned, citations, checks
