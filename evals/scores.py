"""Per-question scores and their aggregation into the run's metrics (pure: no index, no model)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from assistant.models import Answer
from evals import metrics as m
from evals.questions import KINDS, Question

FACT_KINDS = ("lookup", "compare")
METRICS = (
    "recall_at_10", "mrr", "ndcg_at_10", "cited_precision", "cited_recall", "invalid_citations",
    "uncited_sentences", "unsupported_numbers", "support_rate", "llm_support_rate", "fact_coverage",
    "refusal_rate", "false_refusal_rate", "latency_p50_ms", "latency_p95_ms",
)  # fmt: skip


@dataclass
class SentenceSupport:
    """The support proxy's verdict on one cited answer sentence."""

    sentence: str
    paper_ids: list[str]  # the papers the sentence cites
    lexical: float
    cosine: float | None
    supported: bool
    llm: bool | None = None  # the LLM judge's entailment verdict, when it ran


@dataclass
class QuestionScore:
    """Everything measured for one question (a row of the report's ``questions``)."""

    id: str
    kind: str
    question: str
    answerable: bool
    refused: bool
    answer: str
    gold: dict[str, str]  # paper id -> title, gold papers found in the index
    gold_not_in_index: list[str]
    retrieved_ids: list[str]  # top 10, best first
    recall: float | None
    rr: float | None
    ndcg: float | None
    cited_ids: list[str]
    cited_titles: list[str]
    cited_precision: float | None
    cited_recall: float | None
    invalid_citations: list[int]
    sentences: int
    uncited_sentences: int
    unsupported_numbers: list[str]
    support: list[SentenceSupport] = field(default_factory=list)
    facts: list[str] = field(default_factory=list)
    facts_hit: list[str] = field(default_factory=list)
    fact_coverage: float | None = None
    latency_ms: float = 0.0
    reasons: list[str] = field(default_factory=list)

    @property
    def gold_found(self) -> list[str]:
        top = set(self.retrieved_ids[: m.TOP])
        return [t for pid, t in self.gold.items() if pid in top]

    @property
    def gold_missed(self) -> list[str]:
        top = set(self.retrieved_ids[: m.TOP])
        return [t for pid, t in self.gold.items() if pid not in top]

    @property
    def supported_sentences(self) -> int:
        return sum(s.supported for s in self.support)

    @property
    def quality(self) -> float:
        """0-1 summary used to rank the worst questions (not a reported metric)."""
        if not self.answerable:
            return 1.0 if self.refused else 0.0
        if self.refused:
            return 0.0
        parts = [self.recall, self.cited_precision, self.cited_recall, self.fact_coverage]
        if self.support:
            parts.append(self.supported_sentences / len(self.support))
        base = m.mean(parts)
        penalty = 0.1 * (len(self.invalid_citations) + len(self.unsupported_numbers))
        return max(0.0, (1.0 if base is None else base) - penalty)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["gold_titles"] = list(self.gold.values())
        data.pop("gold")
        data["gold_found"], data["gold_missed"] = self.gold_found, self.gold_missed
        data["facts_missed"] = [f for f in self.facts if f not in self.facts_hit]
        data["cited_sentences"], data["supported_sentences"] = len(self.support), self.supported_sentences
        data["quality"] = round(self.quality, 4)
        return data


def _short(title: str, width: int = 70) -> str:
    return title if len(title) <= width else title[: width - 1].rstrip() + "…"


def reasons_for(s: QuestionScore) -> list[str]:
    """Human-readable reasons a question scored below perfect, worst first."""
    out: list[str] = []
    if s.answerable and s.refused:
        out.append("refused an answerable question")
    if not s.answerable and not s.refused:
        out.append(f"answered an unanswerable question (cited {len(s.cited_ids)} paper(s))")
    if s.recall is not None and s.recall < 1:
        out.append(f"recall {s.recall:.2f}: missed " + "; ".join(_short(t) for t in s.gold_missed))
    for title in s.gold_not_in_index:
        out.append(f"gold title not in the index: {_short(title)}")
    if s.fact_coverage is not None and s.fact_coverage < 1 and not s.refused:
        out.append("facts missing: " + ", ".join(repr(f) for f in s.facts if f not in s.facts_hit))
    if s.answerable and not s.refused and s.gold and s.cited_recall is not None and s.cited_recall < 1:
        uncited = [t for pid, t in s.gold.items() if pid not in s.cited_ids]
        out.append(f"cited recall {s.cited_recall:.2f}: did not cite " + "; ".join(_short(t) for t in uncited))
    if s.answerable and not s.refused and s.gold:
        off = [t for pid, t in zip(s.cited_ids, s.cited_titles, strict=True) if pid not in s.gold]
        if off:
            out.append(f"cited {len(off)} non-gold paper(s): " + "; ".join(_short(t) for t in off))
    out.extend(f"unsupported number {n}" for n in s.unsupported_numbers)
    out.extend(f"invalid citation [{n}]" for n in s.invalid_citations)
    if s.uncited_sentences:
        out.append(f"{s.uncited_sentences}/{s.sentences} sentences without a citation")
    for sup in s.support:
        if not sup.supported:
            out.append(f"unsupported sentence (proxy): {_short(m.strip_citations(sup.sentence), 90)}")
    return out


def score_question(
    q: Question,
    answer: Answer,
    *,
    gold: dict[str, str],
    ranked: Sequence[str],
    latency_ms: float,
    gold_not_in_index: Sequence[str] = (),
    support: Sequence[SentenceSupport] = (),
) -> QuestionScore:
    """Score one answer. ``gold``: id -> title of the gold papers in the index; ``ranked``: retrieved ids."""
    refused = answer.refused
    cited = [] if refused else list(dict.fromkeys(c.paper_id for c in answer.citations))
    titles = {c.paper_id: c.title for c in answer.citations}
    gold_ids = list(gold) if q.answerable else []
    facts = list(q.answer_facts) if q.kind in FACT_KINDS else []
    score = QuestionScore(
        id=q.id, kind=q.kind, question=q.question, answerable=q.answerable, refused=refused, answer=answer.text,
        gold=dict(gold), gold_not_in_index=list(gold_not_in_index), retrieved_ids=list(dict.fromkeys(ranked))[: m.TOP],
        recall=m.recall_at(ranked, gold_ids), rr=m.reciprocal_rank(ranked, gold_ids), ndcg=m.ndcg_at(ranked, gold_ids),
        cited_ids=cited, cited_titles=[titles[c] for c in cited],
        cited_precision=m.cited_precision(cited, gold_ids, refused),
        cited_recall=m.cited_recall(cited, gold_ids, refused),
        invalid_citations=list(dict.fromkeys(answer.checks.removed_citations)),
        sentences=0 if refused else answer.checks.sentences,
        uncited_sentences=0 if refused else len(answer.checks.uncited_sentences),
        unsupported_numbers=list(dict.fromkeys(answer.checks.unsupported_numbers)),
        support=[] if refused else list(support),
        facts=facts, facts_hit=[] if refused else m.facts_hit(facts, answer.text),
        fact_coverage=m.fact_coverage(facts, answer.text, refused),
        latency_ms=latency_ms,
    )
    score.reasons = reasons_for(score)
    return score


def score_retrieval(
    q: Question, *, gold: dict[str, str], ranked: Sequence[str], latency_ms: float,
    gold_not_in_index: Sequence[str] = (),
) -> QuestionScore:
    """Score a retrieval-only pipeline (no answer): only the retrieval fields are meaningful."""
    gold_ids = list(gold) if q.answerable else []
    score = QuestionScore(
        id=q.id, kind=q.kind, question=q.question, answerable=q.answerable, refused=False, answer="",
        gold=dict(gold), gold_not_in_index=list(gold_not_in_index), retrieved_ids=list(dict.fromkeys(ranked))[: m.TOP],
        recall=m.recall_at(ranked, gold_ids), rr=m.reciprocal_rank(ranked, gold_ids), ndcg=m.ndcg_at(ranked, gold_ids),
        cited_ids=[], cited_titles=[], cited_precision=None, cited_recall=None, invalid_citations=[],
        sentences=0, uncited_sentences=0, unsupported_numbers=[], latency_ms=latency_ms,
    )
    if score.recall is not None and score.recall < 1:
        score.reasons = [f"recall {score.recall:.2f}: missed " + "; ".join(_short(t) for t in score.gold_missed)]
    return score


def summarise(rows: Sequence[QuestionScore]) -> dict[str, float | int | None]:
    """The run's metrics over ``rows`` (keys in :data:`METRICS`, plus question counts)."""
    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]
    answered = [r for r in rows if not r.refused]
    judged = [s.llm for r in answered for s in r.support if s.llm is not None]
    cited_sentences = sum(len(r.support) for r in answered)
    latencies = [r.latency_ms for r in rows]
    return {
        "n_questions": len(rows),
        "n_answerable": len(answerable),
        "n_unanswerable": len(unanswerable),
        "recall_at_10": m.mean(r.recall for r in answerable),
        "mrr": m.mean(r.rr for r in answerable),
        "ndcg_at_10": m.mean(r.ndcg for r in answerable),
        "cited_precision": m.mean(r.cited_precision for r in answerable),
        "cited_recall": m.mean(r.cited_recall for r in answerable),
        "invalid_citations": sum(len(r.invalid_citations) for r in rows),
        "uncited_sentences": m.ratio(sum(r.uncited_sentences for r in answered), sum(r.sentences for r in answered)),
        "unsupported_numbers": sum(len(r.unsupported_numbers) for r in rows),
        "support_rate": m.ratio(sum(r.supported_sentences for r in answered), cited_sentences),
        "llm_support_rate": m.ratio(sum(judged), len(judged)),
        "fact_coverage": m.mean(r.fact_coverage for r in rows if r.kind in FACT_KINDS),
        "refusal_rate": m.ratio(sum(r.refused for r in unanswerable), len(unanswerable)),
        "false_refusal_rate": m.ratio(sum(r.refused for r in answerable), len(answerable)),
        "latency_p50_ms": m.percentile(latencies, 50),
        "latency_p95_ms": m.percentile(latencies, 95),
    }


def by_kind(rows: Sequence[QuestionScore]) -> dict[str, dict[str, float | int | None]]:
    """:func:`summarise` per question kind (kinds in file order of :data:`KINDS`, absent kinds left out)."""
    return {kind: summarise([r for r in rows if r.kind == kind]) for kind in KINDS if any(r.kind == kind for r in rows)}


def worst(rows: Sequence[QuestionScore], n: int = 8) -> list[QuestionScore]:
    """The ``n`` lowest-quality questions that have at least one reason."""
    flawed = [r for r in rows if r.reasons]
    return sorted(flawed, key=lambda r: (r.quality, -len(r.reasons)))[:n]
