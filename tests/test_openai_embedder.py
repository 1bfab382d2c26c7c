"""The OpenAI-compatible embedding backend, for real over HTTP against the loopback stub."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, closed_port_url

from assistant import ask
from assistant.errors import BackendError
from assistant.index import Index
from assistant.models import Answer
from assistant.settings import Settings
from ingest.pipeline import ingest


@pytest.fixture
def stub() -> Iterator[OpenAIStub]:
    server = OpenAIStub()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _settings(tmp_path: Path, url: str) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        cache_dir=tmp_path / "cache",  # private: the shared test cache would already hold these vectors
        ingest={"embedder": "openai", "embedding_model": "stub-embed", "embedding_base_url": url},
    )


@pytest.mark.network
def test_ingest_and_ask_with_openai_embeddings(stub: OpenAIStub, tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path, stub.url)
    assert "stub-embed" in s.collection_name() and s.collection_name() != Settings().collection_name()
    report = ingest([tiny_listing], s)
    assert report.new == 3 and report.embedded == report.sentences_embedded > 3
    sent = [t for body in stub.state.embedding_requests for t in body["input"]]
    assert len(sent) == report.sentences_embedded  # titles and sentences only: chunk vectors are derived
    assert all(body["model"] == "stub-embed" for body in stub.state.embedding_requests)
    assert Index.open(s).store.count() == report.total_chunks
    again = ingest([tiny_listing], s)
    assert again.embedded == 0, "cached by text hash: nothing embedded twice"
    answer = ask("low-rank adapters catastrophic forgetting", settings=s, mode="dense")
    assert isinstance(answer, Answer)
    assert answer.contexts[0].paper.title.startswith("LoRA Keeps What It Learned")
    # no token vectors from this embedder: the word-piece features are unmeasured (NaN), not 0
    from assistant.answering import get_assistant
    from assistant.evidence import Evidence

    a = get_assistant(s)
    q = "low-rank adapters catastrophic forgetting"
    ev = Evidence(a.index, q, a.retriever.retrieve(q, k=3))
    assert all(math.isnan(p.features["tok_rare"]) and math.isnan(p.features["z_tok_rare"]) for p in ev.papers)
    a.judge.assess(ev, k=3)
    assert all(0.0 < p.relevance < 1.0 for p in ev.papers) and 0.0 < ev.confidence < 1.0  # imputed, finite
    sents = [s for p in ev.papers for s in p.sentences]
    assert sents and all(math.isnan(s.rare) and 0.0 < s.score < 1.0 for s in sents)  # sentences too
    assert answer.confidence is not None and 0.0 < answer.confidence < 1.0


@pytest.mark.network
def test_embedding_endpoint_down_is_one_line_and_loses_nothing(
    stub: OpenAIStub, tmp_path: Path, tiny_listing: Path
) -> None:
    s = _settings(tmp_path, stub.url)
    ingest([tiny_listing], s)
    down = _settings(tmp_path, closed_port_url())
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"title": "One More Paper", "abstract": "About retrieval."}\n')
    with pytest.raises(BackendError) as info:
        ingest([extra], down)
    assert "\n" not in str(info.value) and "embedding request" in str(info.value)
    assert Index.open(s).registry.counts()[0] == 3
