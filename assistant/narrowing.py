"""A follow-up asked of the previous answer's papers: which papers, filters, question and confidence.

:mod:`assistant.conversation` reads the turns; this module finds the papers they refer to (recorded by the
front end with each answer, or found again by replaying the conversation through the judgement) and
checks that what it found is what the reader saw, else the follow-up is read as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from assistant.backends.extractive import quoted
from assistant.citations import cited_numbers
from assistant.conversation import (
    EVERY,
    OTHERS,
    Recorded,
    Step,
    about_earlier_papers,
    earlier_papers,
    has_own_topic,
    plan,
)
from assistant.evidence import Evidence
from assistant.models import Filters, Paper
from assistant.profiles import profiles
from assistant.text import mentions, split_sentences

if TYPE_CHECKING:
    from assistant.answering import Assistant


@dataclass
class Narrowed:
    """How a follow-up on earlier papers is asked (see :func:`narrow`)."""

    step: Step
    filters: Filters  # the caller's, narrowed
    confidence: float  # what the answer is as sure as (see :func:`settle`)
    pool: int  # papers it is asked of (CHOOSE, EVERY) or left out (OTHERS)
    before: bool = False  # the papers are an earlier answer's: the previous one was a refusal about them


def recorded_answers(history: Sequence[dict[str, Any]]) -> list[Recorded | None]:
    """For each user turn of ``history``, what the answer after it cited, when the front end kept it with
    the turn (``{"role": "assistant", "content": …, "papers": [ids], "confidence": 0.8}``), else None."""
    out: list[Recorded | None] = []
    for turn in history:  # turns as normalise_history() kept them: "papers" a list of ids where present
        if turn.get("role") == "user" and turn.get("content"):
            out.append(None)
        elif turn.get("role") == "assistant" and out and "papers" in turn:
            out[-1] = (turn["papers"], turn.get("confidence", 0.0))
    return out


def years_meet(base: Filters, since: int | None, until: int | None) -> bool:
    """Whether the years ``since``..``until`` leave any year within ``base``'s own."""
    low = max((y for y in (base.since, since) if y is not None), default=None)
    high = min((y for y in (base.until, until) if y is not None), default=None)
    return low is None or high is None or low <= high


def filters_for(base: Filters, step: Step) -> Filters:
    """``base`` (the caller's filters) narrowed to the papers ``step`` is asked of, past those it is not,
    and to the years it names; no papers at all when its years and the caller's do not meet."""
    papers = step.within
    if base.papers is not None:
        papers = base.papers if papers is None else [p for p in papers if p in base.papers]
    exclude = sorted({*(base.exclude or []), *step.without}) or None
    if not years_meet(base, step.since, step.until):
        return base.model_copy(update={"papers": [], "exclude": exclude})
    since = max((y for y in (base.since, step.since) if y is not None), default=None)
    until = min((y for y in (base.until, step.until) if y is not None), default=None)
    return base.model_copy(update={"papers": papers, "exclude": exclude, "since": since, "until": until})


def narrow(
    owner: Assistant, question: str, history: Sequence[dict[str, Any]], filters: Filters, *,
    k: int, candidates: int, mode: str | None, exact_citations: bool,
) -> Narrowed | None:
    """How ``question`` is asked when it refers to the previous answer's papers, or None (not such a
    follow-up, nothing to refer to, or papers found again that do not tally with the answer the reader
    saw: as many distinct citations in its text as papers, or with ``exact_citations`` false (an LLM's
    answer may cite only some of the papers it was shown) at least one and no more)."""
    # a user turn the reader saw no answer to (a front end left a notice or an error out) is left out: the
    # question asked again after it is about the same papers
    users = [str(t["content"]) for t in history if t.get("role") == "user" and t.get("content")]
    answers, recorded = answers_to(history), recorded_answers(history)
    answered = [i for i, text in enumerate(answers) if text.strip()]
    prior, answers, recorded = [users[i] for i in answered], [answers[i] for i in answered], [recorded[i] for i in answered]
    if not prior or not about_earlier_papers(question):
        return None

    def cited(step: Step, earlier: float) -> Recorded:
        evidence = judged(owner, step, filters, k=k, candidates=candidates, mode=mode, earlier=earlier)
        if owner.judge.refuses(evidence):
            return [], evidence.confidence
        return [p.hit.paper.id for _, p in evidence.chosen()], evidence.confidence

    earlier = earlier_papers(prior, cited, recorded)
    step = plan(question, earlier)
    if not step.refers or not step.question.strip():  # no topic left (trimmed history): read as before
        return None
    at = earlier.shown_by  # the answer that cited the papers; later ones (refusals) must cite none
    if any(recorded[j] is None and cited_numbers(answers[j]) for j in range(at + 1, len(prior))):
        return None
    if recorded[at] is None:  # found again by the replay: it must tally with what the reader saw
        shown, found = len({n for n in cited_numbers(answers[at]) if n > 0}), len(earlier.papers)
        if not (shown == found or (not exact_citations and 0 < shown < found)):
            return None
        papers = owner.index.papers.many(earlier.papers).values()
        if exact_citations and not all(visible(p, answers[at]) for p in papers):
            return None
    confidence = earlier.topic_confidence if step.refers == OTHERS else earlier.confidence
    if step.refers == EVERY and not step.dated:  # a choice by year keeps the papers as sure as they were
        confidence = glued_confidence(owner, step, filters, k=k, candidates=candidates, mode=mode)
    pool = len(step.without) if step.refers == OTHERS else len(step.within or [])
    return Narrowed(step, filters_for(filters, step), confidence, pool, before=at < len(prior) - 1)


def answers_to(history: Sequence[dict[str, Any]]) -> list[str]:
    """For each user turn of ``history``, the text of the assistant turn after it ('' if none)."""
    out: list[str] = []
    for turn in history:
        if turn.get("role") == "user" and turn.get("content"):
            out.append("")
        elif turn.get("role") == "assistant" and out and not out[-1]:
            out[-1] = str(turn.get("content") or "")
    return out


def visible(paper: Paper, text: str) -> bool:
    """Whether the extractive answer ``text`` shows ``paper``: its title (a list line) or the opening of
    one of its sentences, as the answer quotes them (:func:`~assistant.backends.extractive.quoted`)."""
    flat = " ".join(text.split())
    if quoted(paper.title) in flat:
        return True
    return any(len(o := " ".join(quoted(sent).split())[:40]) >= 20 and o in flat for sent in split_sentences(paper.abstract))


def judged(
    owner: Assistant, step: Step, filters: Filters, *, k: int, candidates: int, mode: str | None, earlier: float
) -> Evidence:
    """The judged evidence for ``step`` (a turn being replayed), as ``ask()`` judges it."""
    hits = owner.retriever.retrieve(step.question, k=candidates, filters=filters_for(filters, step), mode=mode)
    evidence = Evidence(owner.index, step.question, hits)
    owner.judge.assess(evidence, k=k)
    if step.refers == EVERY and not step.dated:
        earlier = glued_confidence(owner, step, filters, k=k, candidates=candidates, mode=mode)
    settle(owner, evidence, step, earlier)
    return evidence


def glued_confidence(
    owner: Assistant, step: Step, filters: Filters, *, k: int, candidates: int, mode: str | None
) -> float:
    """How sure the question model is that the papers ``step`` is about answer it read with the topic (a
    question about every one of them: "What datasets did they use?" after "Which papers…?")."""
    glued = replace(step, question=step.glued, refers=None)
    return judged(owner, glued, filters, k=k, candidates=candidates, mode=mode, earlier=0.0).confidence


def settle(owner: Assistant, evidence: Evidence, step: Step, earlier: float) -> None:
    """The judgement of a follow-up on the previous answer's papers, after :meth:`Judge.assess`. Others in
    a given year ("Any others from 2019?") are judged as any question is: so few papers are left that the
    topic's confidence says nothing of them."""
    if step.refers == EVERY:  # a question about every paper the reader was just shown
        owner.judge.cover(evidence, earlier, own_words=has_own_topic(step.question) and step.question != step.glued)
    elif step.refers == OTHERS and step.since is None and step.until is None:  # the topic again, past them
        owner.judge.beyond(evidence, earlier, shared_names(owner, evidence.names, step.without))


def shared_names(owner: Assistant, names: Sequence[str], ids: Sequence[str]) -> list[int]:
    """The indices of ``names`` (a question's named tokens) that every paper of ``ids`` writes."""
    if not names or not ids:
        return []
    found = profiles(owner.index, list(owner.index.papers.many(list(ids)).values()))  # cached since shown
    return [j for j, name in enumerate(names) if found and all(mentions(prof.names, name) for prof in found)]
