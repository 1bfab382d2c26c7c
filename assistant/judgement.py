"""Judgement: the one place that decides what the evidence means.

Three decisions, each a logistic model over named features of :mod:`assistant.evidence`:

- **question** — does the corpus answer this at all? (``confidence``; refusal below ``answer_threshold``;
  its features and their pairwise products, :attr:`Linear.pairs`)
- **paper** — is this retrieved paper an answer? (``relevance``; papers at or above
  ``include_threshold`` are cited, and candidates are re-ranked by it)
- **sentence** — which sentences of a chosen paper carry the answer? (``score``)

The fitted parameters are data, not code: a versioned JSON file (``judgement.json`` beside this
module by default) written by ``litassist judge fit`` from question files (see evals/README.md).
Inference needs only numpy.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError
from assistant.evidence import Evidence, PaperEvidence, Sentence

FORMAT = 1
# When no candidate reaches this share of the paper model's inclusion threshold, the question model is not
# trusted above the best paper's probability: its pairwise terms extrapolate on feature mixes it never saw
# (an off-topic question within a year or source filter read as answered at 0.4-0.6). A guard, not fitted:
# out of fold (12 splits) 0.5 and 0.75 change no decision on the dev sets, 1.0 refuses one more answerable
# question (evals/README.md).
PAPER_FLOOR = 0.75
DEFAULT_PATH = Path(__file__).with_name("judgement.json")

PAPER_FEATURES = (
    "sent_max", "sent_top2", "chunk_max", "title_sim", "lex_cover", "lex_title", "lex_sent_max",
    "fused_rank", "dense_rank", "bm25_rank", "bm25_rel", "rank_agree",
    "gap_sent_max", "gap_title_sim", "gap_lex_cover", "gap_chunk_max",
    "z_sent_max", "z_title_sim", "z_lex_cover", "z_chunk_max", "named_hit", "named_title",
    "prf_sim", "z_prf_sim", "gap_prf_sim", "tok_rare", "gap_tok_rare", "z_tok_rare",
)  # fmt: skip
SENTENCE_FEATURES = (
    "dense", "gap_dense", "lexical", "gap_lexical", "has_number", "first", "last", "rel_position", "log_words",
    "rare", "gap_rare", "named", "gap_specific",
)  # fmt: skip
QUESTION_FEATURES = (
    "q_sent_max", "q_sent_3rd", "q_chunk_max", "q_title_max", "q_lex_max",
    "q_absent_idf", "q_absent_share", "q_missing_top3", "q_missing_max_idf", "q_named_absent", "q_named_missing_top3",
    "q_paper_max", "q_paper_top3",
)  # fmt: skip


@dataclass
class Linear:
    """A standardised logistic model: P = sigmoid(bias + coef · terms(z)), z = (x - mean) / scale.

    With ``pairs`` the terms are z followed by every pairwise product z_i·z_j (i < j, in
    :func:`itertools.combinations` order): a model that can weigh one feature by another (for the
    question decision: a strong top sentence means less when the question's named method is absent)."""

    features: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[float]
    bias: float
    pairs: bool = False

    @property
    def terms(self) -> list[str]:
        """The names of the model's terms, in ``coef`` order (``"a*b"`` for a pairwise product)."""
        if not self.pairs:
            return list(self.features)
        return [*self.features, *(f"{a}*{b}" for a, b in itertools.combinations(self.features, 2))]

    def expand(self, rows: np.ndarray) -> np.ndarray:
        """The term matrix of ``rows`` (columns in ``features`` order). A feature the evidence could
        not measure (NaN: word pieces under an embedder without token vectors) sits at its training
        mean (z = 0), so the other features decide."""
        z = np.nan_to_num((np.atleast_2d(rows) - np.asarray(self.mean)) / np.asarray(self.scale), nan=0.0)
        return pair_products(z) if self.pairs else z

    def prob(self, rows: np.ndarray) -> np.ndarray:
        """P(positive) for each row of ``rows`` (columns in ``features`` order)."""
        if rows.size == 0:
            return np.zeros(len(rows))
        logit = self.expand(rows) @ np.asarray(self.coef) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(logit, -40, 40)))

    def explain(self, row: np.ndarray, n: int = 3) -> list[tuple[str, float]]:
        """The ``n`` terms that pushed this row's logit most (name, contribution)."""
        contrib = self.expand(row)[0] * np.asarray(self.coef)
        order = np.argsort(-np.abs(contrib))[:n]
        terms = self.terms
        return [(terms[i], float(contrib[i])) for i in order]


def pair_products(z: np.ndarray) -> np.ndarray:
    """``z`` (n x d) followed by its d(d-1)/2 pairwise products z_i·z_j, i < j (combinations order)."""
    i, j = np.triu_indices(z.shape[1], k=1)
    return np.hstack([z, z[:, i] * z[:, j]])


@dataclass
class Params:
    """Everything the judgement fitted from data (the content of ``judgement.json``)."""

    question: Linear
    paper: Linear
    sentence: Linear
    answer_threshold: float  # refuse when P(answerable) is below this
    weak_margin: float  # answers with P(answerable) < threshold + margin say the evidence is weak
    include_threshold: float  # cite papers with P(answer) at or above this
    max_papers: int = 10
    fitted: dict[str, Any] = field(default_factory=dict)  # provenance: question files, counts, date
    format: int = FORMAT

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Params:
        if data.get("format") != FORMAT:
            raise ConfigError(f"judgement parameters: format {data.get('format')!r} is not {FORMAT}")
        models: dict[str, Any] = {k: Linear(**data.pop(k)) for k in ("question", "paper", "sentence")}
        return cls(**models, **data)


def load_params(path: Path | None = None) -> Params:
    """Read fitted parameters (default: the file shipped beside this module)."""
    path = path or DEFAULT_PATH
    try:
        params = Params.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read judgement parameters ({err.strerror or err})") from None
    except (ValueError, TypeError, KeyError) as err:
        raise ConfigError(f"{path}: not a judgement parameter file ({err})") from None
    for name, names in (("question", QUESTION_FEATURES), ("paper", PAPER_FEATURES), ("sentence", SENTENCE_FEATURES)):
        model = getattr(params, name)
        if model.features != list(names):
            raise ConfigError(f"{path}: the {name} model was fitted on other features; refit with `litassist judge fit`")
        if not isinstance(model.pairs, bool):
            raise ConfigError(f"{path}: the {name} model's 'pairs' must be true or false, not {model.pairs!r}")
        if not len(model.mean) == len(model.scale) == len(names) or len(model.coef) != len(model.terms):
            raise ConfigError(
                f"{path}: the {name} model has {len(model.mean)} means, {len(model.scale)} scales and "
                f"{len(model.coef)} coefficients for {len(names)} features ({len(model.terms)} terms); "
                "refit with `litassist judge fit`"
            )
    return params


def paper_rows(ev: Evidence) -> np.ndarray:
    """The paper feature matrix of ``ev`` (one row per retrieved paper)."""
    return np.array([[p.features[f] for f in PAPER_FEATURES] for p in ev.papers], dtype=float).reshape(
        len(ev.papers), len(PAPER_FEATURES)
    )


def sentence_rows(paper: PaperEvidence) -> np.ndarray:
    """The sentence feature matrix of one paper (one row per abstract sentence)."""
    sents = paper.sentences
    if not sents:
        return np.zeros((0, len(SENTENCE_FEATURES)))
    top_dense = max(s.dense for s in sents)
    top_lex = max(s.lexical for s in sents)
    top_specific = max(s.specific for s in sents)
    rares = [s.rare for s in sents]
    top_rare = math.nan if all(math.isnan(r) for r in rares) else float(np.nanmax(rares))  # NaN: unmeasured
    n = len(sents)
    rows = [_sentence_features(s, top_dense, top_lex, top_rare, top_specific, n) for s in sents]
    return np.array([[r[f] for f in SENTENCE_FEATURES] for r in rows], dtype=float)


def _sentence_features(
    s: Sentence, top_dense: float, top_lex: float, top_rare: float, top_specific: float, n: int
) -> dict[str, float]:
    return {
        "dense": s.dense,
        "gap_dense": s.dense - top_dense,
        "lexical": s.lexical,
        "gap_lexical": s.lexical - top_lex,
        "has_number": float(any(c.isdigit() for c in s.text)),
        "first": float(s.position == 0),
        "last": float(s.position == n - 1),
        "rel_position": s.position / max(n - 1, 1),
        "log_words": math.log(max(len(s.text.split()), 1)),
        "rare": s.rare,
        "gap_rare": s.rare - top_rare,
        "named": s.named,
        "gap_specific": s.specific - top_specific,
    }


def question_row(features: dict[str, float], paper_probs: np.ndarray) -> np.ndarray:
    """The question feature vector (1 x n): ``Evidence.question_features`` plus what the paper model
    thinks of the retrieved papers (``paper_probs``)."""
    top = np.sort(paper_probs)[::-1] if len(paper_probs) else np.zeros(1)
    derived = {"q_paper_max": float(top[0]), "q_paper_top3": float(top[:3].mean())}
    return np.array([[{**features, **derived}[f] for f in QUESTION_FEATURES]], dtype=float)


class Judge:
    """Applies fitted :class:`Params` to an :class:`Evidence` (see module docstring)."""

    def __init__(self, params: Params) -> None:
        self.params = params

    def assess(self, ev: Evidence, k: int | None = None) -> None:
        """Score papers and sentences, re-rank the papers, keep the best ``k``, decide confidence and
        the papers to cite. Mutates ``ev`` (and renumbers its hits when the order changes)."""
        p = self.params
        if not ev.papers:
            ev.confidence, ev.included = 0.0, []
            return
        probs = p.paper.prob(paper_rows(ev))
        for paper, prob in zip(ev.papers, probs, strict=True):
            paper.relevance = float(prob)
        ev.confidence = float(p.question.prob(question_row(ev.question_features, probs))[0])
        if probs.max() < PAPER_FLOOR * p.include_threshold:  # the paper model accepts no candidate, not nearly
            ev.confidence = min(ev.confidence, float(probs.max()))
        order = sorted(range(len(ev.papers)), key=lambda i: -ev.papers[i].relevance)[: k or len(ev.papers)]
        ev.papers = [ev.papers[i] for i in order]
        for pos, paper in enumerate(ev.papers, start=1):
            paper.hit = paper.hit.model_copy(update={"rank": pos})
            for s in paper.sentences:
                s.hit = pos
            for s, prob in zip(paper.sentences, p.sentence.prob(sentence_rows(paper)), strict=True):
                s.score = float(prob)
        chosen = [i for i, paper in enumerate(ev.papers, start=1) if paper.relevance >= p.include_threshold]
        ev.included = chosen[: p.max_papers] or [1]

    def cover(self, ev: Evidence, confidence: float, own_words: bool = True) -> None:
        """After :meth:`assess`, for a question about every one of an earlier answer's papers ("What
        datasets did they use?"): each of them answers (they were judged when the reader was shown them),
        with ``confidence``, the question model's for the question read with the one it follows and asked of
        those papers; the sentences stay chosen for the question in its own words (``own_words``). When
        the paper model accepts none of them for the question in its own words ("Do they use protein
        folding?", or "What datasets did they use?" where no abstract names one), the answer says the
        evidence is weak."""
        accepted = any(p.relevance >= self.params.include_threshold for p in ev.papers)
        ev.partial = own_words and not accepted
        ev.included = list(range(1, len(ev.papers) + 1))[: self.params.max_papers]
        ev.confidence = confidence if ev.papers else 0.0

    def beyond(self, ev: Evidence, confidence: float, required: Sequence[int] = ()) -> None:
        """After :meth:`assess`, for the topic of an earlier answer asked again without the papers it
        cited ("Any others?"): the topic was judged answerable then, so the confidence is that answer's
        when the paper model accepts another paper, and the best remaining paper's probability (a refusal:
        there are no others) when it accepts none. (The question model is no judge here: without the
        papers that answered best, the features of those left fall outside what it was fitted on.) A paper
        counts only if it writes each name the earlier answer's papers all wrote (``required``: indices into
        ``ev.names``): "Any others?" after "Which papers evaluate on GSM8K?" wants papers on GSM8K, not papers
        that only evaluate something."""
        named = [all(paper.writes[j] for j in required) for paper in ev.papers]
        accepted = [i for i, (paper, ok) in enumerate(zip(ev.papers, named, strict=True), start=1)
                    if ok and paper.relevance >= self.params.include_threshold]
        ev.included = accepted[: self.params.max_papers] or [1]
        ev.confidence = confidence if accepted else max(
            (p.relevance for p, ok in zip(ev.papers, named, strict=True) if ok), default=0.0)

    def refuses(self, ev: Evidence) -> bool:
        """Whether the evidence is too weak to answer from."""
        return not ev.papers or ev.confidence < self.params.answer_threshold

    def weak(self, ev: Evidence) -> bool:
        """Answered, but close to the refusal threshold: the answer should say so."""
        return not self.refuses(ev) and (ev.partial or ev.confidence < self.params.answer_threshold + self.params.weak_margin)
