"""Citation checks run on every answer after generation.

- citation numbers that map to no retrieved paper are removed (and reported);
- the remaining numbers are renumbered 1..n in order of first use;
- sentences without a citation are flagged;
- numbers that appear in none of the cited abstracts are flagged.
"""

from __future__ import annotations

import re

from assistant.models import Checks, Citation, Hit
from assistant.text import normalise_number, numbers, split_sentences

CITE_GROUP = re.compile(r"\[(\d+(?:\s*[,;–-]\s*\d+)*)\]")
_BULLET = re.compile(r"^\s*(?:[-*•]|\d+[.)])\s+")


def _expand(group: str) -> list[int]:
    out: list[int] = []
    for part in re.split(r"\s*[,;]\s*", group):
        if re.fullmatch(r"\d+\s*[–-]\s*\d+", part):
            a, b = (int(x) for x in re.split(r"\s*[–-]\s*", part))
            out.extend(range(a, b + 1) if 0 < b - a < 20 else [a, b])
        elif part.strip().isdigit():
            out.append(int(part))
    return out


def units(text: str) -> list[str]:
    """Claim units of an answer: each bullet/line, split into sentences; list lead-ins (':') dropped."""
    out: list[str] = []
    for line in text.splitlines():
        line = _BULLET.sub("", line).strip()
        if not line or line.endswith(":"):
            continue
        out.extend(s for s in split_sentences(line) if re.search(r"[A-Za-z]", s))
    return out


def cited_numbers(sentence: str) -> list[int]:
    return [n for g in CITE_GROUP.findall(sentence) for n in _expand(g)]


def check(text: str, hits: list[Hit], snippets: dict[int, str] | None = None) -> tuple[str, list[Citation], Checks]:
    """Validate and renumber citations in ``text`` whose numbers refer to ``hits`` (1-based).

    Returns the cleaned text, its citations (new numbering) and the checks' results.
    """
    checks = Checks()
    mapping: dict[int, int] = {}

    def repl(m: re.Match[str]) -> str:
        kept = []
        for n in _expand(m.group(1)):
            if 1 <= n <= len(hits):
                if n not in mapping:
                    mapping[n] = len(mapping) + 1
                kept.append(mapping[n])
            elif n not in checks.removed_citations:
                checks.removed_citations.append(n)
        return "".join(f"[{k}]" for k in dict.fromkeys(kept))

    cleaned = CITE_GROUP.sub(repl, text)
    cleaned = re.sub(r"[ \t]+([.,;:])", r"\1", re.sub(r"[ \t]{2,}", " ", cleaned)).strip()
    citations = []
    for old, new in sorted(mapping.items(), key=lambda kv: kv[1]):
        p = hits[old - 1].paper
        citations.append(
            Citation(
                n=new, paper_id=p.id, title=p.title, date=p.date, year=p.year, url=p.url, sources=p.sources,
                snippet=(snippets or {}).get(old, ""),
            )
        )
    by_n = {c.n: hits[old - 1].paper for old, c in zip(sorted(mapping, key=mapping.get), citations, strict=True)}  # type: ignore[arg-type]
    all_cited = " ".join(f"{p.title} {p.abstract}" for p in by_n.values())
    sentences = units(cleaned)
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
