"""Fusion of the dense and keyword paper lists (assistant/retrieval.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest

from assistant.retrieval import Retriever
from assistant.settings import RetrievalSettings, Settings

# A leads the dense list by far and is second for BM25 by a hair; B is the other way round.
DENSE = {"A": 0.90, "B": 0.60, "C": 0.58, "D": 0.57, "E": 0.56}
BM25 = {"B": 10.0, "A": 9.9, "C": 3.0, "D": 2.0, "E": 1.0}


def retriever(**retrieval: float) -> Retriever:
    settings = Settings(retrieval=RetrievalSettings(**retrieval))  # type: ignore[arg-type]
    return Retriever(SimpleNamespace(settings=settings))  # type: ignore[arg-type]


def order(scores: dict[str, float]) -> list[str]:
    return sorted(scores, key=lambda p: -scores[p])


def test_scores_decide_what_the_ranks_nearly_tie() -> None:
    # rank fusion alone (dense weight 0.8) puts B first: first for BM25, which weighs more
    assert order(retriever(score_weight=0).fuse(DENSE, BM25))[:2] == ["B", "A"]
    # with score fusion A wins: far ahead on dense similarity, a hair behind on BM25
    fused = retriever().fuse(DENSE, BM25)
    assert order(fused)[:2] == ["A", "B"]
    assert order(fused)[2:] == ["C", "D", "E"]


def test_rank_part_is_scaled_to_one_for_a_paper_first_in_both() -> None:
    dense, bm25 = {"A": 0.9, "B": 0.5}, {"A": 5.0, "B": 1.0}
    fused = retriever().fuse(dense, bm25)
    # rank part 1; z-scores of a two-paper list are +-1, so A gets 1 + 0.15 x 1
    assert fused["A"] == pytest.approx(1.0 + 0.15)
    assert retriever(score_weight=0).fuse(dense, bm25)["A"] == pytest.approx(1.0)


def test_papers_in_one_list_only_and_lists_without_spread() -> None:
    # C is only in the BM25 list (dense: the list's lowest similarity), D only in the dense one (BM25 0)
    fused = retriever().fuse({"A": 0.8, "D": 0.7}, {"A": 4.0, "C": 3.0})
    assert set(fused) == {"A", "C", "D"} and all(math.isfinite(v) for v in fused.values())
    assert order(fused)[0] == "A"
    single = retriever().fuse({"A": 0.8}, {"A": 4.0})  # one paper: no spread, z-scores 0
    assert single == {"A": pytest.approx(1.0)}
    assert retriever().fuse(DENSE, {}) == DENSE and retriever().fuse({}, BM25) == BM25
