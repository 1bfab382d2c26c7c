"""``ask()``: the one entry point every front end and the eval suite call.

question (+ history) -> standalone question -> hybrid retrieval -> evidence -> backend ->
citation checks -> typed :class:`Answer`. Nothing here knows who called.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

from pydantic import ValidationError

from assistant.backends import NO_GROUNDED_ANSWER, REFUSAL, Backend, Request, Turn, get_backend
from assistant.citations import Renumberer, check, opening, opens_unclosed
from assistant.conversation import (
    EVERY,
    OTHERS,
    History,
    Step,
    dated_follow_up,
    none_of_previous,
    normalise_history,
    papers_of_previous,
    years_phrase,
)
from assistant.errors import ConfigError, FilterError
from assistant.evidence import Evidence
from assistant.framing import set_aside_note, without_framing
from assistant.index import Index
from assistant.judgement import Judge, load_params
from assistant.models import Answer, Citation, Filters, Hit, Usage, check_k
from assistant.narrowing import Narrowed, filters_for, narrow, settle, years_meet
from assistant.offline import count_tokens
from assistant.prompts import render
from assistant.retrieval import Retriever, passes_any, yearless_note
from assistant.settings import Settings, load_settings
from assistant.text import replace_surrogates

CLOSEST = 5
WEAK_NOTE = "Weak evidence: these papers only partly match the question, so check them before relying on this:"


def _as_filters(filters: Filters | dict[str, Any] | None) -> Filters:
    if filters is None:
        return Filters()
    if isinstance(filters, Filters):
        return filters
    try:
        return Filters.model_validate(filters)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(x) for x in first["loc"]) or "filters"
        raise FilterError(f"filter {name}: {first['msg']} (known filters: since, until, source, papers, exclude)") from None



class Assistant:
    """Holds the opened index, retriever and backends for one :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.index = Index.open(settings)
        self.index.prefetch()  # vectors and keyword index load while the first question is embedded
        self.retriever = Retriever(self.index)
        self._judge: Judge | None = None
        self._backends: dict[str, Backend] = {}
        self._lock = threading.Lock()

    @property
    def judge(self) -> Judge:
        """The judgement, its parameters read on first use (so refitting never needs valid old ones)."""
        if self._judge is None:
            self._judge = Judge(load_params(self.settings.retrieval.judgement))
        return self._judge

    @judge.setter
    def judge(self, judge: Judge) -> None:
        self._judge = judge

    def backend(self, name: str | None) -> Backend:
        name = name or self.settings.llm_backend()
        with self._lock:
            if name not in self._backends:
                self._backends[name] = get_backend(name, self.settings)
            return self._backends[name]

    def stream(
        self,
        question: str,
        *,
        k: int | None = None,
        filters: Filters | dict[str, Any] | None = None,
        backend: str | None = None,
        history: History = None,
        mode: str | None = None,
    ) -> AnswerStream:
        check_k(k)
        return AnswerStream(self, question, k, _as_filters(filters), backend, normalise_history(history), mode)


def _unless_refusal(deltas: Iterator[str]) -> Iterator[str]:
    """Pass ``deltas`` through, holding the start back until it cannot be the refusal marker; a stream
    that is the refusal marker yields nothing (and is consumed to the end)."""
    buf = ""
    for delta in deltas:
        buf += delta
        if opens_unclosed(buf):
            continue  # '[0' may still close and be followed by the marker
        head = opening(buf)
        if len(head) >= len(REFUSAL) or not REFUSAL.startswith(head):
            if head.startswith(REFUSAL):
                for _ in deltas:
                    pass
                return
            yield buf
            yield from deltas
            return
    if opening(buf).strip() and not REFUSAL.startswith(opening(buf).strip()):
        yield buf


class AnswerStream:
    """Iterate for text deltas as they are generated; ``answer`` holds the checked result at the end."""

    def __init__(
        self, owner: Assistant, question: str, k: int | None, filters: Filters, backend: str | None,
        history: list[Turn], mode: str | None,
    ) -> None:
        if not isinstance(question, str):
            raise ConfigError(f"question: expected text, got {type(question).__name__}")
        if not question or not question.strip():
            raise ConfigError("question: empty question")
        self._owner = owner
        self.question = replace_surrogates(question).strip()  # undecodable command-line bytes
        self.k, self.filters, self.history, self.mode = k, filters, history, mode
        self.backend = owner.backend(backend)
        self.asked = filters  # the caller's filters (a follow-up on earlier papers narrows self.filters)
        self.narrowed: Narrowed | None = None  # a follow-up on the previous answer's papers (see _read)
        self.unwritten: list[str] = []  # what no indexed paper writes (Answer.not_in_corpus)
        self.set_aside: list[str] = []  # framing clauses the question is answered without (assistant.framing)
        self.answer: Answer | None = None
        self._iter = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    def result(self) -> Answer:
        """Consume the rest of the stream and return the :class:`Answer`."""
        for _ in self._iter:
            pass
        assert self.answer is not None
        return self.answer

    def _run(self) -> Iterator[str]:
        owner, t0 = self._owner, time.perf_counter()
        timings: dict[str, float] = {}
        owner.index.refresh()
        k = self.k or owner.settings.retrieval.k
        candidates = max(k, owner.settings.retrieval.rerank_candidates)
        standalone = self._read(k, candidates)
        timings["condense_ms"] = (time.perf_counter() - t0) * 1000
        t1 = time.perf_counter()
        hits = owner.retriever.retrieve(standalone, k=candidates, filters=self.filters, mode=self.mode)
        timings["retrieve_ms"] = (time.perf_counter() - t1) * 1000
        t2 = time.perf_counter()
        evidence = Evidence(owner.index, standalone, hits)
        judge = owner.judge
        judge.assess(evidence, k=k)
        if self.narrowed is not None:
            settle(owner, evidence, self.narrowed.step, self.narrowed.confidence)
        self.unwritten = evidence.unwritten  # the whole question's, also when a framing clause is set aside
        if hits and self.narrowed is None and self.unwritten:  # "For my PhD, which papers…": read without it
            reading = without_framing(owner, evidence, self.filters, k=k, candidates=candidates, mode=self.mode,
                                      condensed=standalone != self.question)
            if reading is not None:
                standalone, evidence, self.set_aside = reading.question, reading.evidence, reading.set_aside
        hits = [p.hit for p in evidence.papers]
        refuse = judge.refuses(evidence)
        timings["evidence_ms"] = (time.perf_counter() - t2) * 1000
        # an LLM sees only the papers the judgement screened in (the extractive backend lays out the same choice)
        screen = self.backend.name != "extractive" and owner.settings.llm.screen
        shown = evidence.screened() if screen else evidence
        req = Request(question=standalone, hits=[p.hit for p in shown.papers], evidence=shown)
        if self.narrowed is not None and self.narrowed.step.refers == OTHERS:
            req.scope = "the other indexed papers"
        elif self.narrowed is not None:
            req.scope = papers_of_previous(self.narrowed.pool, self.narrowed.before)
            req.every = self.narrowed.step.refers == EVERY and len(evidence.chosen()) == self.narrowed.pool
        t3 = time.perf_counter()
        parts: list[str] = []  # everything the backend said, for the checks below
        first_token_ms: float | None = None

        def recorded() -> Iterator[str]:
            nonlocal first_token_ms
            for delta in iter([REFUSAL]) if refuse else self.backend.generate(req):
                if first_token_ms is None:
                    first_token_ms = (time.perf_counter() - t0) * 1000
                parts.append(delta)
                yield delta

        renumber: Renumberer | None = None  # streamed text gets the numbers the checked answer will have
        weak = judge.weak(evidence)
        # Nothing is shown until the text cites a paper it was given: an answer that never does becomes a
        # refusal, and its ungrounded text must not have reached the reader first. What is shown is then
        # the checked text: the weak-evidence note, the body without its leading white space.
        lead = [set_aside_note(self.set_aside, self.unwritten)] if self.set_aside else []
        prefix = "".join(line + "\n" for line in lead + ([WEAK_NOTE] if weak else []))
        held, grounded = "", False
        for piece in _unless_refusal(recorded()):
            if renumber is None:  # the backend has set req.shown by the time it yields
                renumber = Renumberer(req.shown if req.shown is not None else len(req.hits))
            out = renumber.feed(piece)
            if grounded:
                if out:
                    yield out
                continue
            held += out
            if renumber.mapping:  # a citation of a paper it was shown has been let through
                grounded = True
                yield prefix + held.lstrip()
        tail = renumber.flush().rstrip() if renumber is not None else ""
        if grounded and tail:
            yield tail
        elif not grounded and renumber is not None and renumber.mapping:
            grounded = True
            yield prefix + (held + tail).strip()
        raw = "".join(parts).strip()
        timings["generate_ms"] = (time.perf_counter() - t3) * 1000
        timings["first_token_ms"] = first_token_ms or 0.0
        if not raw or opening(raw).startswith(REFUSAL):
            answer = self._refusal(standalone, hits, evidence, req.usage, by_backend=not refuse)
            yield answer.text
        else:
            seen = req.hits[: req.shown] if req.shown is not None else req.hits
            snippets = {i: req.quoted.get(i) or shown.snippet(i) for i in range(1, len(seen) + 1)}
            text, citations, checks = check(raw, seen, snippets)
            text = prefix + text
            if not citations:  # an answer that cites nothing is not grounded: refuse instead
                answer = self._refusal(standalone, hits, evidence, req.usage, by_backend=True)
                yield ("\n\n" if grounded else "") + answer.text
            else:
                answer = Answer(
                    question=self.question, standalone_question=standalone, text=text, citations=citations,
                    contexts=hits, refused=False, backend=self.backend.name, checks=checks,
                    confidence=round(evidence.confidence, 3), weak_evidence=weak, not_in_corpus=self.unwritten,
                    set_aside=self.set_aside, usage=self._usage(req.usage, standalone, hits, text), filters=self.filters,
                )
        timings["total_ms"] = (time.perf_counter() - t0) * 1000
        answer.timings = timings
        self.answer = answer

    def _read(self, k: int, candidates: int) -> str:
        """The question to retrieve and judge with. A follow-up about the previous answer's papers ("Which
        of them…", "What datasets did they use?", "Any others?") is asked of those papers only, or past
        them (``filters.papers``, ``filters.exclude``; see :mod:`assistant.narrowing`); any other
        follow-up is condensed with the conversation by the backend."""
        if not self.history:
            return self.question
        self.narrowed = narrow(
            self._owner, self.question, self.history, self.filters, k=k, candidates=candidates, mode=self.mode,
            exact_citations=self.backend.name == "extractive",
        )
        if self.narrowed is None:
            years = dated_follow_up(self.question)  # "Any from 2024?": the topic again, in those years
            if years is not None and years_meet(self.filters, *years):
                self.filters = filters_for(self.filters, Step("", since=years[0], until=years[1]))
            return self.backend.condense(self.question, self.history)
        self.filters = self.narrowed.filters
        return self.narrowed.step.question

    def _usage(self, usage: Usage, question: str, hits: list[Hit], text: str) -> Usage:
        if usage.prompt_tokens or usage.completion_tokens:
            return usage
        context = " ".join(f"{h.paper.title} {h.paper.abstract}" for h in hits)
        return Usage(prompt_tokens=count_tokens(question) + count_tokens(context), completion_tokens=count_tokens(text))

    def _refusal(
        self, standalone: str, hits: list[Hit], evidence: Evidence, usage: Usage, by_backend: bool = False
    ) -> Answer:
        """The refusal: the judgement found the papers do not answer, or (``by_backend``) it found they
        may, but the backend gave no answer it grounded in them (the confidence stays the judgement's)."""
        mine = self.asked  # the filters the caller set, not the narrowing to earlier papers
        note = "" if mine.since is None and mine.until is None and not mine.source else " within the active filters"
        text = render("refusal", filter_note=note + yearless_note(self._owner.index, mine))
        n = self.narrowed
        if n is not None and n.step.refers == OTHERS:
            text = f"No other indexed paper addresses this{note} beyond the {n.pool} already cited."
        elif n is not None:
            none, one = none_of_previous(n.pool, n.before), n.pool == 1
            text = f"{none} {'address' if one else 'addresses'} this{note}."
            years = years_phrase(n.step.since, n.step.until)
            if years and not hits:
                text = f"{none} {'date' if one else 'is'} {years}{note}."
            elif note and not hits:
                text = f"{none} {'pass' if one else 'passes'} the active filters: widen or drop them."
        if by_backend:
            text = (f"{NO_GROUNDED_ANSWER}: the {self.backend.name} backend found none it could cite in the papers it "
                    f"was shown{note}, though the judgement rated them likely to answer (check them below).")
        if not hits and n is None and not passes_any(self._owner.index, self.filters):  # not "no abstract addresses it"
            text = (f"No indexed paper matches the filters ({self.filters.describe()}): widen or drop them"
                    f"{yearless_note(self._owner.index, self.filters)}.")
        if self.set_aside:  # "Read without “tia”: …" and the refusal of what is left
            text = f"{set_aside_note(self.set_aside, self.unwritten)}\n{text}"
        closest = [
            Citation(
                n=i, paper_id=h.paper.id, title=h.paper.title, date=h.paper.date, year=h.paper.year,
                url=h.paper.link(), sources=h.paper.sources, snippet=evidence.snippet(i),
            )
            for i, h in enumerate(hits[:CLOSEST], start=1)
        ]
        if closest:
            text += ("\nClosest papers:\n" if by_backend else "\nClosest, but not answering:\n") + "\n".join(
                f"- {c.title}" + (f' — "{c.snippet}"' if c.snippet else "") for c in closest
            )
        return Answer(
            question=self.question, standalone_question=standalone, text=text, closest=closest,
            contexts=hits, refused=True, backend=self.backend.name, confidence=round(evidence.confidence, 3),
            not_in_corpus=self.unwritten, set_aside=self.set_aside,
            usage=self._usage(usage, standalone, hits, text), filters=self.filters,
        )


_assistants: dict[str, Assistant] = {}
MAX_ASSISTANTS = 8
_default_settings: Settings | None = None
_build_lock = threading.Lock()


def get_assistant(settings: Settings | None = None) -> Assistant:
    """The :class:`Assistant` for ``settings`` (built once and reused)."""
    global _default_settings
    if settings is None:
        if _default_settings is None:
            _default_settings = load_settings()
        settings = _default_settings
    with _build_lock:
        key = settings.fingerprint()
        if key not in _assistants:
            while len(_assistants) >= MAX_ASSISTANTS:
                _assistants.pop(next(iter(_assistants)))
            _assistants[key] = Assistant(settings)
        return _assistants[key]


def ask(
    question: str,
    *,
    k: int | None = None,
    filters: Filters | dict[str, Any] | None = None,
    backend: str | None = None,
    history: History = None,
    stream: bool = False,
    mode: str | None = None,
    settings: Settings | None = None,
) -> Answer | AnswerStream:
    """Answer ``question`` from the indexed papers, with checked citations.

    ``filters``: ``{"since": 2024, "until": 2025, "source": "003_"}``. ``history``: prior turns.
    ``stream=True`` returns an :class:`AnswerStream` (iterate for text; ``.answer`` at the end).
    """
    stream_obj = get_assistant(settings).stream(
        question, k=k, filters=filters, backend=backend, history=history, mode=mode
    )
    return stream_obj if stream else stream_obj.result()


async def aask(question: str, **kwargs: Any) -> Answer:
    """Async :func:`ask` (runs in a worker thread; streaming is not offered here)."""
    kwargs["stream"] = False
    result = await asyncio.to_thread(ask, question, **kwargs)
    assert isinstance(result, Answer)
    return result
