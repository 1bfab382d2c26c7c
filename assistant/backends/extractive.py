"""The extractive backend: no LLM. Composes answers from the retrieved abstracts' own sentences.

"Which papers …" questions get one line per relevant paper with the abstract sentence that best
supports it; specific questions get the few sentences that carry the answer. Every line is cited,
and the backend refuses when the evidence is too weak (threshold calibrated on the dev set).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from assistant.backends import REFUSAL, Request, Turn
from assistant.citations import defuse
from assistant.evidence import Sentence

if TYPE_CHECKING:
    from assistant.settings import Settings

_LIST_Q = re.compile(
    r"^\s*(which|what)\s+(\w+\s+){0,3}?(papers?|methods?|works?|approaches|studies|benchmarks?|models?|"
    r"techniques?|datasets?)\b|^\s*(list|name|find|show)\b",
    re.IGNORECASE,
)
_COMPARE_Q = re.compile(r"\b(compare|contrast|differ|difference|versus|vs\.?|agree|disagree|both)\b", re.I)
_QUANT_Q = re.compile(
    r"\bhow (much|many|little|badly|well|fast|large|small|accurate)\b|\bwhat (fraction|share|percentage|"
    r"speedup|accuracy|cost|size|number|score|pass@\d|rate)\b|\b(speedup|savings?|reduction|improvement)\b",
    re.IGNORECASE,
)
_DIGIT = re.compile(r"\d")
QUANT_BONUS = 0.15  # quantitative questions: prefer sentences that carry numbers
_FOLLOW_UP = re.compile(
    r"^\s*(and|also|what about|how about|which of (them|these|those)|those|these|they|it|its|their|same)\b"
    r"|\b(them|these|those|they|it|its|their|the above|that one|this one)\b",
    re.IGNORECASE,
)

_CONTRIBUTION = re.compile(
    r"\b(we|this (paper|work)|our \w+|experiments?|results?|evaluations?)\b.{0,60}?"
    r"\b(propose|introduce|present|develop|show|find|demonstrate|achieve|reduce|mitigate|improve|outperform)",
    re.IGNORECASE,
)
CUE_BONUS = 0.15  # in list answers, prefer the sentence that states the paper's own contribution

MAX_LOOKUP, MAX_COMPARE = 3, 8  # sentences in a specific / comparative answer
LIST_REL_FLOOR = 0.7  # a listed paper needs this share of the best paper's relevance (dev-set tuned)
MAX_LIST = 10


def cite(sentence: str, n: int) -> str:
    """Put the citation inside the sentence's final punctuation: 'x y [n].' (LaTeX escapes dropped)."""
    body = defuse(sentence).replace("\\%", "%").replace("~", " ").rstrip()
    end = ""
    while body and body[-1] in ".!?;:":
        end = body[-1] + end
        body = body[:-1]
    return f"{body} [{n}]{end or '.'}"


_COMMON_CAPS = {"llm", "llms", "rag", "lora", "sft", "rl", "ai", "nlp", "gpu", "contrast", "compare", "do", "does"}


def value(s: Sentence, *, cue: bool = False, quant: bool = False) -> float:
    """A sentence's score plus the bonuses a question kind asks for: the paper's own contribution
    (``cue``) and, for quantitative questions, carrying numbers (``quant``)."""
    bonus = 0.0
    if s.lexical > 0:
        if cue and _CONTRIBUTION.search(s.text):
            bonus += CUE_BONUS
        if quant and _DIGIT.search(s.text):
            bonus += QUANT_BONUS
    return s.score + bonus


def named_entities(question: str) -> list[str]:
    """Names a question mentions: quoted titles and method-like tokens ('LESS', 'D3', 'ToolACE-R')."""
    quoted = r"['\"‘“]([^'\"’”]{4,})['\"’”]"
    names = re.findall(quoted, question)
    for i, tok in enumerate(re.findall(r"[A-Za-z][\w^@.-]*[\w]", re.sub(quoted, " ", question))):
        inner_caps = sum(c.isupper() for c in tok[1:]) > 0 or any(c.isdigit() for c in tok)
        if (inner_caps or (i > 0 and tok[0].isupper() and len(tok) > 2)) and tok.lower() not in _COMMON_CAPS:
            names.append(tok)
    return list(dict.fromkeys(names))


def _mentions(title: str, name: str) -> bool:
    t = title.lower()
    if " " in name:  # a quoted title: most of its words appear in the paper title
        ws = [w for w in re.findall(r"\w+", name.lower()) if len(w) > 2]
        return bool(ws) and sum(w in t for w in ws) / len(ws) >= 0.75
    return re.search(rf"(?<!\w){re.escape(name.lower())}(?!\w)", t) is not None


def is_list_question(q: str) -> bool:
    return bool(_LIST_Q.search(q))


def is_compare_question(q: str) -> bool:
    return bool(_COMPARE_Q.search(q))


class ExtractiveBackend:
    name = "extractive"

    def __init__(self, settings: Settings) -> None:
        self.threshold = settings.retrieval.min_relevance

    def condense(self, question: str, history: list[Turn]) -> str:
        """Combine the turns: a follow-up is read together with the previous question."""
        prior = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
        if prior and (_FOLLOW_UP.search(question) or len(question.split()) <= 4):
            return f"{prior[-1].strip()} {question.strip()}"
        return question

    def generate(self, req: Request) -> Iterator[str]:
        ev = req.evidence
        top = ev.top_relevance()
        if not ev.papers or ev.best_sentence_score() < self.threshold:
            yield REFUSAL
            return
        if is_list_question(req.question) and not is_compare_question(req.question):
            yield from self._list(req, top)
        else:
            yield from self._specific(req, top)

    def _list(self, req: Request, top: float) -> Iterator[str]:
        chosen = [
            (pos, p)
            for pos, p in enumerate(req.evidence.papers, start=1)
            if p.relevance >= LIST_REL_FLOOR * top
        ][:MAX_LIST]
        yield f"{len(chosen)} of the indexed papers address this:\n"
        for pos, p in chosen:
            best = max(p.sentences, key=lambda x: value(x, cue=True), default=None)
            sentence = best.text if best else p.hit.paper.abstract[:200]
            req.quoted[pos] = sentence
            yield f"- {p.hit.paper.title}: {cite(sentence, pos)}\n"

    def _specific(self, req: Request, top: float) -> Iterator[str]:
        papers = [(pos, p) for pos, p in enumerate(req.evidence.papers, start=1) if p.relevance >= 0.75 * top]
        compare = is_compare_question(req.question)
        quant = bool(_QUANT_Q.search(req.question))
        pool: list[Sentence] = [s for _, p in papers[:5] for s in p.sentences]
        if not pool:
            yield REFUSAL
            return

        pool.sort(key=lambda s: -value(s, quant=quant))
        best = value(pool[0], quant=quant)
        picked: list[Sentence] = []
        covered: set[str] = set()
        per_paper: dict[int, int] = {}
        if compare:  # the papers the question names (else the leading ones), two sentences each
            names = named_entities(req.question)
            named = [
                (pos, p) for pos, p in enumerate(req.evidence.papers, start=1)
                if any(_mentions(p.hit.paper.title, n) for n in names)
            ][:4]
            named += [x for x in papers if x[0] not in {pos for pos, _ in named}][: max(0, 3 - len(named))]
            for pos, p in named:
                for b in sorted(p.sentences, key=lambda x: value(x, cue=True, quant=quant), reverse=True)[:2]:
                    picked.append(b)
                    covered |= b.terms
                    per_paper[pos] = per_paper.get(pos, 0) + 1
        for s in pool:
            if len(picked) >= (MAX_COMPARE if compare else MAX_LOOKUP) or value(s, quant=quant) < 0.5 * best:
                break
            if s in picked or per_paper.get(s.hit, 0) >= 2:
                continue
            if picked and not (s.terms & set(req.evidence.weights)) - covered:
                continue  # adds no question term that is not covered yet
            picked.append(s)
            covered |= s.terms
            per_paper[s.hit] = per_paper.get(s.hit, 0) + 1
        order = {id(s): i for i, s in enumerate(pool)}
        picked.sort(key=lambda s: (s.hit, order.get(id(s), 0)))
        for s in picked:
            req.quoted.setdefault(s.hit, s.text)
        for i, s in enumerate(picked):
            yield ("" if i == 0 else " ") + cite(s.text, s.hit)
