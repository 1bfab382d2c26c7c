"""Pure metric functions: no index, no model, unit-testable on hand-made answers.

Definitions (also in evals/README.md):

- retrieval metrics use the top-10 retrieved papers and binary relevance (a paper is relevant when it
  is a gold paper); ``mrr`` is MRR@10;
- a refused answer cites nothing, so its ``cited_precision`` and ``cited_recall`` are 0;
- answerable questions with no gold paper in the index are left out of retrieval and citation means;
- facts match as whole tokens after :func:`normalise_fact` on both sides.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence

from assistant.citations import CITE_GROUP
from assistant.text import split_sentences, terms

TOP = 10
LEXICAL_THRESHOLD = 0.6  # share of a sentence's content terms found in one cited-abstract sentence
_LATEX_ESCAPE = re.compile(r"\\(?=[^A-Za-z\s])")  # 28.8\% -> 28.8%, \$ -> $, \_ -> _
_DASHES = str.maketrans({"\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
                         "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def _unique(ids: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(ids))


# --- retrieval ------------------------------------------------------------------------------------
def recall_at(ranked: Sequence[str], gold: Iterable[str], k: int = TOP) -> float | None:
    """Share of gold papers among the top-``k`` ranked papers (None when there is no gold)."""
    gold_set = set(gold)
    if not gold_set:
        return None
    return len(gold_set & set(_unique(ranked)[:k])) / len(gold_set)


def reciprocal_rank(ranked: Sequence[str], gold: Iterable[str], k: int = TOP) -> float | None:
    """1 / rank of the first gold paper within the top ``k`` (0 when none; None without gold)."""
    gold_set = set(gold)
    if not gold_set:
        return None
    for rank, pid in enumerate(_unique(ranked)[:k], start=1):
        if pid in gold_set:
            return 1.0 / rank
    return 0.0


def ndcg_at(ranked: Sequence[str], gold: Iterable[str], k: int = TOP) -> float | None:
    """Binary-relevance nDCG@k (None without gold)."""
    gold_set = set(gold)
    if not gold_set:
        return None
    dcg = sum(1.0 / math.log2(r + 1) for r, pid in enumerate(_unique(ranked)[:k], start=1) if pid in gold_set)
    ideal = sum(1.0 / math.log2(r + 1) for r in range(1, min(len(gold_set), k) + 1))
    return dcg / ideal


# --- citations ------------------------------------------------------------------------------------
def cited_precision(cited: Iterable[str], gold: Iterable[str], refused: bool) -> float | None:
    """Share of cited papers that are gold; 0 for a refusal or an answer citing nothing."""
    gold_set = set(gold)
    if not gold_set:
        return None
    cited_set = set(cited)
    if refused or not cited_set:
        return 0.0
    return len(cited_set & gold_set) / len(cited_set)


def cited_recall(cited: Iterable[str], gold: Iterable[str], refused: bool) -> float | None:
    """Share of gold papers the answer cites; 0 for a refusal."""
    gold_set = set(gold)
    if not gold_set:
        return None
    if refused:
        return 0.0
    return len(set(cited) & gold_set) / len(gold_set)


# --- facts ----------------------------------------------------------------------------------------
def normalise_fact(text: str) -> str:
    """NFKC, casefold, LaTeX escapes dropped (``28.8\\%`` -> ``28.8%``), dashes/quotes unified, spaces collapsed."""
    text = unicodedata.normalize("NFKC", text).translate(_DASHES)
    return " ".join(_LATEX_ESCAPE.sub("", text).casefold().split())


def _fact_pattern(fact: str) -> re.Pattern[str]:
    start = r"(?<![\w.])" if fact[:1].isdigit() else (r"(?<!\w)" if fact[:1].isalnum() else "")
    end = r"(?!\w|\.\d)" if fact[-1:].isalnum() else ""
    return re.compile(start + re.escape(fact) + end)


def facts_hit(facts: Iterable[str], text: str) -> list[str]:
    """The facts that occur in ``text`` as whole tokens (``2%`` does not match inside ``12%``)."""
    norm = normalise_fact(text)
    return [f for f in _unique(facts) if normalise_fact(f) and _fact_pattern(normalise_fact(f)).search(norm)]


def fact_coverage(facts: Sequence[str], text: str, refused: bool = False) -> float | None:
    """Share of ``facts`` present in the answer (None without facts; 0 for a refusal)."""
    facts = _unique(f for f in facts if normalise_fact(f))
    if not facts:
        return None
    return 0.0 if refused else len(facts_hit(facts, text)) / len(facts)


# --- grounding ------------------------------------------------------------------------------------
def strip_citations(sentence: str) -> str:
    """The sentence without its ``[n]`` markers (``"LLMs [1]."`` -> ``"LLMs."``)."""
    return re.sub(r"\s+([.,;:!?])", r"\1", " ".join(CITE_GROUP.sub(" ", sentence).split()))


def lexical_overlap(sentence: str, papers: Iterable[tuple[str, str]]) -> float:
    """Best share of ``sentence``'s content terms found in one sentence of a cited abstract.

    ``papers`` are the cited papers as ``(title, abstract)``; the paper's title counts as part of each of
    its abstract sentences (list answers name the paper). A sentence with no content terms scores 0.
    """
    wanted = set(terms(strip_citations(sentence)))
    if not wanted:
        return 0.0
    best = 0.0
    for title, abstract in papers:
        title_terms = set(terms(title))
        for s in split_sentences(abstract) or [""]:
            best = max(best, len(wanted & (set(terms(s)) | title_terms)) / len(wanted))
    return best


def is_supported(lexical: float, cosine: float | None, lexical_min: float, cosine_min: float) -> bool:
    """The support proxy: lexical overlap or embedding similarity reaches its threshold."""
    return lexical >= lexical_min or (cosine is not None and cosine >= cosine_min)


# --- aggregation helpers --------------------------------------------------------------------------
def mean(values: Iterable[float | None]) -> float | None:
    """Mean of the values that are not None (None when there are none)."""
    vals = [v for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def ratio(num: float, den: float) -> float | None:
    """``num / den``, None when ``den`` is 0."""
    return num / den if den else None


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear-interpolated percentile (``q`` in 0-100), as numpy's default; None for no values."""
    vals = sorted(values)
    if not vals:
        return None
    pos = (len(vals) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return vals[lo] + (vals[hi] - vals[lo]) * (pos - lo)
