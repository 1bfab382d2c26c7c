"""A question's framing: a clause about the asker, not the topic ("For my PhD, …", "… Asking for a
NeurIPS rebuttal."), which the question model would read as a sign that the corpus lacks what is asked.

A name that no indexed paper writes is the question model's strongest sign of an unanswerable question
('FlashAttention-3', 'WMDP'), so a preface naming a degree, a venue or a university ('PhD', 'NeurIPS',
'CMU') cost the answer. A clause at the question's edge (a leading clause up to its first comma, colon,
semicolon or spaced dash, not one inside brackets; a first or last sentence of several) is set aside
when:

- it writes a name (acronym, inner capitals, name with digits) that no indexed paper writes, or it is
  made only of words no indexed paper writes ('Hi all,', 'Cheers, Priya', 'As a postdoc at Stanford,');
- none of its names is written by an indexed paper ('MemoryBank vs MemGPT: …' names its topic);
- the rest has more terms than the clause.

The rest is then what is judged and answered, and the answer's first line says what it was read without and
why (`Answer.set_aside`). Never set aside: a sentence that asks something (ends with '?': "Which methods are
evaluated on WMDP? Looking for results on…"), a leading clause that is a bare name (the subject:
"FlashAttention-3: what speedups…", "Qwen3-Omni, how does it…"), a name inside the question's one clause
("How do unlearning methods score on WMDP?"), a clause without such a name that has a word some paper writes
('For speech recognition in Swahili, …'), and the last sentence of a question condensed with the
conversation (it is the follow-up). Set aside, ordinary words no paper writes stop lifting a near miss: the
question model reads them as the mark of informal wording, which many answerable dev questions have
("…predict 3D protein structure? tia" was answered). A leading clause of a preposition and names no indexed
paper writes cannot be told apart from a topic the corpus lacks ("On TPUs, how well…", "For WMDP, …") by the
corpus alone, so it is set aside too, and the first line says so. Other ways to tell topic from framing (the
clause's terms in the leading papers; whether setting it aside keeps the leading papers) were measured and
dropped: chatter's ordinary words ('writing', 'group') match papers too (evals/README.md, "Framing").
Framing inside the question's last clause ("…with LoRA, for our NeurIPS submission?") is read as part of the
question: a trailing clause is as often a second part of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from assistant.evidence import Evidence, named_tokens
from assistant.models import Filters
from assistant.text import base_name, content_words, split_sentences, terms
from assistant.text import words as text_words

if TYPE_CHECKING:
    from assistant.answering import Assistant

# a leading clause ends at the first comma, colon or semicolon before a space, or at a spaced dash
_CLAUSE_END = re.compile(r"[,;:](?=\s)|\s[-–—]+\s")
MAX_SET_ASIDE = 2  # clauses set aside at most ("For my PhD, which …? Asking for a NeurIPS rebuttal.")


@dataclass
class Reading:
    """The question read without its framing: the judged evidence for ``question``."""

    question: str  # what was judged and answered
    set_aside: list[str]  # the clauses left out, as written
    evidence: Evidence


def edge_clauses(question: str, last: bool = True) -> list[tuple[str, str]]:
    """The clauses at ``question``'s edges, each with the question without it: the first and (with
    ``last``) the last sentence of several, unless it asks something (ends with '?'), then the first
    sentence's leading clause (not one inside brackets)."""
    sentences = split_sentences(question, any_case=True)
    out: list[tuple[str, str]] = []
    if len(sentences) > 1:
        out.append((sentences[0], " ".join(sentences[1:])))
        if last:
            out.append((sentences[-1], " ".join(sentences[:-1])))
        out = [(c, r) for c, r in out if not c.endswith("?")]  # "Is ColBERTv2 worth it?" is the question
    first = sentences[0] if sentences else ""
    for m in _CLAUSE_END.finditer(first):
        head = first[: m.start()]
        if head.count("(") == head.count(")") and head.count("[") == head.count("]"):
            clause = first[: m.end()].strip()
            rest = " ".join([first[m.end():].strip(), *sentences[1:]]).strip()
            out.append((clause, rest))
            break
    return [(c, r) for c, r in out if c and r]


def _holds(clause: str, word: str) -> bool:
    """Whether ``clause`` writes ``word`` (all of its content words)."""
    words = content_words(word)
    return bool(words) and all(w in content_words(clause) for w in words)


def framing_candidates(
    question: str, absent_names: list[str], unwritten: list[str], last: bool = True
) -> list[tuple[str, str]]:
    """The edge clauses of ``question`` that are framing (see the module docstring), each with the rest:
    it writes one of ``absent_names`` (names no indexed paper writes) and no other name, or it is made
    only of ``unwritten`` words ('Hi all,', 'Cheers, Priya'); and the rest has more terms than it
    (``last``: as :func:`edge_clauses`)."""
    absent = {base_name(w).lower() for w in absent_names}
    gone = {w for u in unwritten for w in content_words(u)}
    out = []
    for clause, rest in edge_clauses(question, last):
        words = content_words(clause)
        if not any(_holds(clause, w) for w in absent_names) and not (words and all(w in gone for w in words)):
            continue
        names = named_tokens(clause)
        if any(base_name(n).lower() not in absent for n in names):
            continue  # it names something an indexed paper writes: topic, not framing
        if set(text_words(clause)) <= {w for n in names for w in text_words(n)}:
            continue  # a bare name ('FlashAttention-3: what speedups…', 'KTO, DPO or IPO: …') is the subject
        if len(set(terms(rest))) > len(set(terms(clause))):
            out.append((clause, rest))
    return out


def without_framing(
    owner: Assistant, evidence: Evidence, filters: Filters, *, k: int, candidates: int, mode: str | None,
    condensed: bool = False,
) -> Reading | None:
    """``evidence``'s question read without its framing clauses (see the module docstring), judged; None
    when it has none. A question ``condensed`` with the conversation keeps its last sentence: it is the
    follow-up ("What about vision models?" after "For my PhD, which papers…?")."""
    question, ev, set_aside = evidence.question, evidence, []
    for _ in range(MAX_SET_ASIDE):
        found = framing_candidates(question, ev.absent_names, ev.unwritten, last=not condensed)
        if not found:
            break
        clause, question = found[0]
        ev = Evidence(owner.index, question, owner.retriever.retrieve(question, k=candidates, filters=filters, mode=mode))
        owner.judge.assess(ev, k=k)
        set_aside.append(clause)
    return Reading(question=question, set_aside=set_aside, evidence=ev) if set_aside else None


def set_aside_note(set_aside: list[str], unwritten: list[str]) -> str:
    """The answer's first line: what the question was read without, and why."""
    clauses = " and ".join(f"“{c}”" for c in set_aside)
    names = ", ".join(f"'{w}'" for w in unwritten if any(_holds(c, w) for c in set_aside))
    return f"Read without {clauses}: no indexed paper writes {names}."
