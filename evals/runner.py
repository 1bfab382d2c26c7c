"""The eval loop: every question through :func:`assistant.answering.ask`, scored per question.

One :class:`Runner` per Settings; :meth:`Runner.run` scores one retrieval mode, :meth:`Runner.baseline`
scores the plain llama-index retriever, :meth:`Runner.compare` does several modes plus the baseline.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from assistant.errors import ConfigError
from assistant.models import check_k
from assistant.retrieval import MODES
from evals.metrics import TOP
from evals.questions import Question
from evals.scores import QuestionScore, by_kind, score_question, score_retrieval, summarise, worst

if TYPE_CHECKING:
    from assistant.models import Answer
    from assistant.settings import Settings

JUDGES = ("none", "llm")
WARM_UP = "Which papers study continual learning for large language models?"
Progress = Callable[[Question], None]


@dataclass
class EvalRun:
    """The scored questions of one pipeline (a retrieval mode, or the llama-index baseline)."""

    name: str
    rows: list[QuestionScore]
    retrieval_only: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def metrics(self) -> dict[str, Any]:
        return summarise(self.rows)

    @property
    def by_kind(self) -> dict[str, dict[str, Any]]:
        return by_kind(self.rows)

    def worst(self, n: int = 8) -> list[QuestionScore]:
        return worst(self.rows, n)


class Runner:
    """Runs question sets against one index (``settings``) with a fixed backend, k and judge."""

    def __init__(
        self, settings: Settings, *, backend: str | None = None, k: int | None = None, judge: str = "none"
    ) -> None:
        from assistant.answering import get_assistant

        if judge not in JUDGES:
            raise ConfigError(f"--judge {judge!r} is not one of {', '.join(JUDGES)}")
        check_k(k)
        self.settings = settings
        self.backend = backend
        self.k = k
        self.judge = None
        if judge == "llm":
            from evals.judge import LLMJudge

            self.judge = LLMJudge(settings)  # fails here, before any question runs, without an endpoint
        self.assistant = get_assistant(settings)
        self.index = self.assistant.index
        self.assistant.backend(backend)  # unknown backend names fail now, not mid-run
        self._titles: dict[str, str] | None = None
        self._warmed = False
        self.warnings: list[str] = []

    # --- gold papers ----------------------------------------------------------------------------
    def title_ids(self) -> dict[str, str]:
        """normalised title -> paper id, for every paper in the index."""
        if self._titles is None:
            from ingest.parsers.text import normalise_title

            self._titles = {normalise_title(p.title): pid for pid, p in self.index.papers.items()}
        return self._titles

    def gold(self, q: Question) -> tuple[dict[str, str], list[str]]:
        """(gold paper id -> title, gold titles not in the index); the latter are warned about once."""
        from ingest.parsers.text import normalise_title

        found: dict[str, str] = {}
        missing: list[str] = []
        for title in q.gold_titles:
            pid = self.title_ids().get(normalise_title(title))
            if pid is None:
                missing.append(title)
                line = f"{q.id}: gold title not in the index: {title!r}"
                if line not in self.warnings:
                    self.warnings.append(line)
            else:
                found.setdefault(pid, self.index.papers[pid].title)
        return found, missing

    # --- runs -----------------------------------------------------------------------------------
    def _ask(self, question: str, mode: str | None) -> Answer:
        from assistant.answering import ask
        from assistant.models import Answer

        answer = ask(question, k=self.k, backend=self.backend, mode=mode, settings=self.settings)
        assert isinstance(answer, Answer)
        return answer

    def _ranked(self, answer: Answer, mode: str | None) -> list[str]:
        """At least the top-10 papers for the retrieval metrics, even when k < 10."""
        if (self.k or self.settings.retrieval.k) >= TOP:
            return [h.paper.id for h in answer.contexts]
        hits = self.assistant.retriever.retrieve(answer.standalone_question, k=TOP, mode=mode)
        return [h.paper.id for h in hits]

    def run(self, questions: Sequence[Question], mode: str | None = None, progress: Progress | None = None) -> EvalRun:
        """Ask every question with retrieval ``mode`` (default: settings) and score the answers."""
        from evals.support import COSINE_THRESHOLD, SupportProxy

        mode = mode or self.settings.retrieval.mode
        if mode not in MODES:
            raise ConfigError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
        if not self._warmed:  # load models and sidecars before timing anything
            self._ask(WARM_UP, mode)
            self._warmed = True
        proxy = SupportProxy(self.index)
        rows = []
        for q in questions:
            gold, missing = self.gold(q)
            t0 = time.perf_counter()
            answer = self._ask(q.question, mode)
            latency = (time.perf_counter() - t0) * 1000
            support = proxy.judge(answer)
            if self.judge is not None:
                for s in support:
                    papers = [self.index.papers[p] for p in s.paper_ids if p in self.index.papers]
                    s.llm = self.judge.judge_sentence(s.sentence, papers)
            rows.append(
                score_question(
                    q, answer, gold=gold, ranked=self._ranked(answer, mode), latency_ms=latency,
                    gold_not_in_index=missing, support=support,
                )
            )
            if progress:
                progress(q)
        config = {
            "mode": mode, "k": self.k or self.settings.retrieval.k,
            "backend": self.backend or self.settings.llm_backend(), "judge": "llm" if self.judge else "none",
            "support_lexical_threshold": proxy.lexical_min, "support_cosine_threshold": COSINE_THRESHOLD,
            "embedding_model": self.index.embedder.model_id, "papers": len(self.index.papers),
        }
        return EvalRun(name=mode, rows=rows, config=config)

    def baseline(self, questions: Sequence[Question], progress: Progress | None = None) -> EvalRun:
        """Score the plain llama-index retriever on the retrieval metrics."""
        from evals.baseline import CHUNKS_PER_PAPER, NAME, LlamaIndexBaseline

        base = LlamaIndexBaseline(self.index)
        base.retrieve(WARM_UP)
        top = max(TOP, self.k or self.settings.retrieval.k)
        rows = []
        for q in questions:
            gold, missing = self.gold(q)
            t0 = time.perf_counter()
            ranked = base.retrieve(q.question, k=top)
            latency = (time.perf_counter() - t0) * 1000
            rows.append(score_retrieval(q, gold=gold, ranked=ranked, latency_ms=latency, gold_not_in_index=missing))
            if progress:
                progress(q)
        config = {"pipeline": NAME, "similarity_top_k": CHUNKS_PER_PAPER * top, "papers": top}
        return EvalRun(name=NAME, rows=rows, retrieval_only=True, config=config)

    def compare(
        self, questions: Sequence[Question], modes: Sequence[str], progress: Progress | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> list[EvalRun]:
        """One :class:`EvalRun` per mode, then the llama-index baseline."""
        from evals.baseline import NAME

        runs = []
        for mode in modes:
            if on_start:
                on_start(mode)
            runs.append(self.baseline(questions, progress) if mode == NAME else self.run(questions, mode, progress))
        if NAME not in modes:
            if on_start:
                on_start(NAME)
            runs.append(self.baseline(questions, progress))
        return runs


def parse_modes(text: str) -> list[str]:
    """``"dense,bm25,hybrid"`` -> the modes, validated (``llamaindex-default`` is accepted too)."""
    from evals.baseline import NAME

    modes = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    bad = [m for m in modes if m not in (*MODES, NAME)]
    if bad or not modes:
        raise ConfigError(f"--compare {text!r}: modes must be a comma list of {', '.join((*MODES, NAME))}")
    return modes
