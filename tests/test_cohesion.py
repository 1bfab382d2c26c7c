"""The index's neighbour cohesion and the question feature read against it (``q_lead_prf``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from assistant.answering import Assistant, get_assistant
from assistant.cohesion import META, index_cohesion, neighbour_cohesion
from assistant.evidence import Evidence
from assistant.settings import Settings


def _ingest(tmp_path: Path, rows: list[dict[str, str]], name: str = "p.jsonl") -> Assistant:
    from ingest.pipeline import ingest

    src = tmp_path / name
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([src], settings)
    return get_assistant(settings)


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def test_papers_on_one_topic_are_cohesive_and_unrelated_papers_are_not() -> None:
    rng = np.random.default_rng(0)
    topic = _unit(np.ones((8, 16)) + 0.05 * rng.standard_normal((8, 16)))
    assert neighbour_cohesion(topic) > 0.95
    assert neighbour_cohesion(np.eye(6, dtype=np.float32)) == 0.0  # each orthogonal to its neighbours
    # two topics: every paper's nearest neighbours are its own topic's
    two = _unit(np.vstack([np.eye(2)[[0] * 5] + 0.05 * rng.standard_normal((5, 2)), np.eye(2)[[1] * 5]]))
    assert neighbour_cohesion(two) > 0.95


def test_cohesion_needs_two_papers_and_reads_fewer_neighbours_when_there_are_few() -> None:
    assert math.isnan(neighbour_cohesion(np.eye(1, 4, dtype=np.float32)))
    pair = _unit(np.array([[1.0, 0.0], [1.0, 1.0]]))
    assert abs(neighbour_cohesion(pair) - float(pair[0] @ pair[1])) < 1e-6


ROWS = [
    {"title": "Zebra routing for sparse experts", "abstract": "We propose zebra routing, a load-balanced router for mixture-of-experts layers."},
    {"title": "Speculative decoding with small drafts", "abstract": "A small draft model proposes tokens that a large model verifies, giving faster decoding."},
    {"title": "Watermarking language model outputs", "abstract": "We embed a statistical watermark in generated text by biasing token choices toward a green list."},
]  # fmt: skip
MORE = [
    {"title": f"Speculative decoding variant {i}", "abstract": f"Draft tokens verified by a large model, variant {i}, decode faster."}
    for i in range(3)
]


def test_index_cohesion_is_kept_per_generation_and_measured_again_after_an_ingest(tmp_path: Path) -> None:
    index = _ingest(tmp_path, ROWS).index
    stored = json.loads(index.registry.get_meta(META) or "{}")
    assert stored["generation"] == index.registry.generation()  # measured by the ingest
    before = index_cohesion(index)
    assert before == stored["value"]
    index = _ingest(tmp_path, MORE, "more.jsonl").index  # three near copies of one paper: more cohesive
    after = json.loads(index.registry.get_meta(META) or "{}")
    assert after["generation"] == index.registry.generation() and after["value"] > before + 0.05
    assert index_cohesion(index) == after["value"]


def test_q_lead_prf_reads_the_leading_candidate_against_the_index_cohesion(tmp_path: Path) -> None:
    # a near miss's corpus has each of the question's topics in different papers, so the leading
    # candidate is far from the centroid of the next three; where the papers answer it, they agree.
    # Both indexes hold the same four near copies of an unrelated paper, so their papers typically
    # sit as close to their neighbours as near copies do (cohesion ~1)
    speech = "Automatic speech recognition transcribes spoken audio into text with acoustic models."
    vision = "Continual learning trains an image classifier on a stream of tasks without forgetting old classes."
    on_topic = "Continual learning keeps a speech recognition model updated on new audio without forgetting."
    q = "continual learning for speech recognition without forgetting"

    def lead_prf(rows: list[dict[str, str]], where: Path) -> float:
        where.mkdir()
        a = _ingest(where, rows)
        ev = Evidence(a.index, q, a.retriever.retrieve(q, k=4))
        feature = ev.question_features["q_lead_prf"]
        assert feature == ev.papers[0].features["prf_sim"] - index_cohesion(a.index)
        return feature

    filler = [{"title": f"Protein folding {i}", "abstract": "Protein structure is predicted from its amino acid sequence."}
              for i in range(4)]  # fmt: skip
    split = [{"title": "Speech recognition", "abstract": speech}] + [
        {"title": f"Continual image classification {i}", "abstract": vision} for i in range(3)
    ] + filler
    agreed = [{"title": f"Continual speech recognition {i}", "abstract": on_topic} for i in range(4)] + filler
    assert lead_prf(agreed, tmp_path / "agreed") > lead_prf(split, tmp_path / "split") + 0.05


def test_q_lead_prf_is_unmeasured_with_one_candidate(tmp_path: Path) -> None:
    a = _ingest(tmp_path, ROWS[:1])
    q = "zebra routing for experts"
    ev = Evidence(a.index, q, a.retriever.retrieve(q, k=5))
    assert len(ev.papers) == 1 and math.isnan(ev.question_features["q_lead_prf"])
