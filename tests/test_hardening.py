"""Regression tests of issue 11 (hardening), one per numbered item, named after it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, Reply  # tests/ is on sys.path
from pydantic import SecretStr

from assistant.answering import get_assistant
from assistant.backends import Request, get_backend
from assistant.errors import BackendError
from assistant.index import Index
from assistant.settings import LLMSettings, Settings
from ingest.parsers import read_listing
from ingest.parsers.bibtex import PARSER as BIBTEX
from ingest.pipeline import ingest

REPO = Path(__file__).resolve().parents[1]
LITASSIST = Path(sys.executable).with_name("litassist")


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=Path(os.environ["LITASSIST_CACHE_DIR"]))


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _cli(*args: str | bytes, data: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "LITASSIST_DATA_DIR": str(data)}
    return subprocess.run([str(LITASSIST), *args], capture_output=True, env=env, timeout=300, check=False)


def _one_line_error(proc: subprocess.CompletedProcess[bytes]) -> str:
    err = proc.stderr.decode("utf-8", "replace").strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


# --- 1 ----------------------------------------------------------------------------------------
def test_item01_cli_usage_errors_are_one_line(tmp_path: Path) -> None:
    for args, expect in (
        (["ingest"], "Missing argument"),
        (["ask", "x", "--k", "abc"], "--k"),
        (["ask", "x", "--no-such-option"], "No such option"),
        (["no-such-command"], "No such command"),
    ):
        proc = _cli(*args, data=tmp_path / "data")
        err = _one_line_error(proc)
        assert proc.returncode == 2 and err.startswith("litassist: ") and expect in err, (args, err)
    good = _jsonl(tmp_path / "good.jsonl", [{"title": "LoRA adapters", "abstract": "They reduce forgetting."}])
    unreadable = str(tmp_path / ("x" * 5000 + ".jsonl"))  # the OS refuses the name: cannot even be checked
    proc = _cli("ingest", unreadable, str(good), data=tmp_path / "data")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err and "cannot read: File name too long" in err.splitlines()[0]
    assert "Index: 1 papers" in " ".join(err.split()), err[-300:]  # the readable file named with it is ingested


# --- 2 ----------------------------------------------------------------------------------------
def test_item02_non_latin_papers_are_indexed_and_found(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    only_cyrillic = _jsonl(tmp_path / "ru.jsonl", [
        {"title": "Смесь экспертов для перевода", "abstract": "Маршрутизация токенов ускоряет обучение."},
        {"title": "Квантование весов", "abstract": "Четыре бита почти без потерь качества."},
    ])
    report = ingest([only_cyrillic], s)  # bm25s used to fail: max() arg is an empty sequence
    assert report.total_papers == 2 and not report.skipped
    mixed = _jsonl(tmp_path / "en.jsonl", [
        {"title": "LoRA adapters reduce forgetting", "abstract": "Low-rank adapters keep base weights."},
    ])
    ingest([mixed], s)
    hits = get_assistant(s).retriever.retrieve("маршрутизация токенов", mode="bm25")
    assert hits and hits[0].paper.title == "Смесь экспертов для перевода"


# --- 3 ----------------------------------------------------------------------------------------
def test_item03_one_bad_field_loses_only_its_record(tmp_path: Path) -> None:
    huge = "9" * 5000
    good = {"title": "A good paper", "abstract": "It is good."}
    doc = tmp_path / "list.json"
    doc.write_text(f'[{json.dumps(good)}, {{"title": "t", "abstract": "a", "upvotes": {huge}}}]', encoding="utf-8")
    res = read_listing(doc)
    assert [e.title for e in res.entries] == ["A good paper"]
    assert len(res.skipped) == 1 and res.skipped[0].locator == "record 2" and "upvotes" in res.skipped[0].reason

    bib = tmp_path / "list.bib"
    bib.write_text(
        "@article{a, title={Good}, abstract={Fine.}, year={2024}}\n"
        f"@article{{b, title={{Bad}}, abstract={{Month.}}, month={huge}}}\n", encoding="utf-8"
    )
    assert [e.title for e in read_listing(bib).entries] == ["Good", "Bad"]  # a bad month is not a month

    hf = tmp_path / "list.txt"
    hf.write_text(
        "First paper title\n\nFirst abstract sentence.\n\n · 3 authors\n·\nMay 13 2\n\n"
        f"Second paper title\n\nSecond abstract sentence.\n\n · 3 authors\n·\nMay 13 {'9' * 310}\n", encoding="utf-8"
    )
    res = read_listing(hf)
    assert [e.title for e in res.entries] == ["First paper title"]
    assert len(res.skipped) == 1 and "upvote" in res.skipped[0].reason and res.skipped[0].locator == "line 9"

    nested = tmp_path / "sniffed"  # no extension: content-sniffed JSON Lines, first record nested deeply
    nested.write_text("[" * 100_000 + "\n" + json.dumps(good) + "\n" + json.dumps(good | {"title": "B"}) + "\n")
    res = read_listing(nested)
    assert [e.title for e in res.entries] == ["A good paper", "B"]
    assert len(res.skipped) == 1 and res.skipped[0].locator == "line 1"


# --- 4 ----------------------------------------------------------------------------------------
def test_item04_lone_surrogates_never_abort(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text(
        '{"title": "Bad \\ud800 title", "abstract": "x"}\n'
        '{"title": "LoRA adapters reduce forgetting", "abstract": "Low-rank adapters keep base weights."}\n',
        encoding="utf-8",
    )
    s = _settings(tmp_path)
    report = ingest([path], s)
    assert report.total_papers == 1 and len(report.skipped) == 1
    assert report.skipped[0].locator == "line 1" and "surrogate" in report.skipped[0].reason
    answer = get_assistant(s).stream("LoRA \udcff forgetting").result()  # undecodable argv byte
    assert "\udcff" not in answer.question
    proc = _cli("ask", b"LoRA \xff forgetting", data=s.data_dir)
    assert proc.returncode == 0 and b"Traceback" not in proc.stderr, proc.stderr


# --- 5 ----------------------------------------------------------------------------------------
def test_item05_same_title_other_arxiv_id_is_not_overwritten(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    first = _jsonl(tmp_path / "a.jsonl", [
        {"title": "Shared title on adapters", "abstract": "Abstract of 2401.00002.", "arxiv_id": "2401.00002"},
    ])
    ingest([first], s)
    second = _jsonl(tmp_path / "b.jsonl", [
        {"title": "Renamed paper on adapters", "abstract": "Abstract of 2401.00002.", "arxiv_id": "2401.00002"},
        {"title": "Shared title on adapters", "abstract": "Abstract of 2401.00003.", "arxiv_id": "2401.00003"},
    ])
    ingest([second], s)
    papers = {p.id: p for p in Index.open(s).registry.papers()}
    assert set(papers) == {"arxiv:2401.00002", "arxiv:2401.00003"}
    assert papers["arxiv:2401.00002"].title == "Renamed paper on adapters"
    assert papers["arxiv:2401.00003"].abstract == "Abstract of 2401.00003."


# --- 6 ----------------------------------------------------------------------------------------
def test_item06_hf_entry_cut_inside_its_title_is_reported_not_glued(tmp_path: Path) -> None:
    text = (
        "First paper on adapters\n\nFirst abstract sentence.\n\n · 3 authors\n·\nMay 13 2\n\n"
        "Second paper on LoR\nThird paper on mixture of experts\n\nThird abstract sentence.\n\n"
        " · 2 authors\n·\nMay 14 5\n"
    )
    path = tmp_path / "cut.txt"
    path.write_text(text, encoding="utf-8")
    res = read_listing(path)
    assert [e.title for e in res.entries] == ["First paper on adapters", "Third paper on mixture of experts"]
    assert len(res.skipped) == 1 and res.skipped[0].locator == "line 9" and "Second paper on LoR" in res.skipped[0].reason

    cut_abstract = (  # cut inside its abstract: the cut entry is reported against its own title line
        "First paper on adapters\n\nFirst abstract sentence that was cut sho\nSecond paper on experts\n\n"
        "Second abstract sentence.\n\n · 2 authors\n·\nMay 14 5\n"
    )
    path.write_text(cut_abstract, encoding="utf-8")
    res = read_listing(path)
    assert [(e.title, e.abstract, e.upvotes) for e in res.entries] == [
        ("Second paper on experts", "Second abstract sentence.", 5)
    ]
    assert [s.locator for s in res.skipped] == ["line 1"] and "First paper on adapters" in res.skipped[0].reason


# --- 7 ----------------------------------------------------------------------------------------
class _CountingText(str):
    """A str that adds up how many characters ``count`` scans (line numbering work)."""

    scanned = 0

    def count(self, sub: str, start: int | None = None, end: int | None = None) -> int:  # type: ignore[override]
        lo = 0 if start is None else start
        hi = len(self) if end is None else end
        type(self).scanned += max(0, hi - lo)
        return str.count(self, sub, lo, hi)


def test_item07_bibtex_parsing_is_linear() -> None:
    entry = "@article{{k{0},\n  title = {{Paper {0}}},\n  abstract = {{About adapters {0}.}},\n}}\n\n"
    text = _CountingText("".join(entry.format(i) for i in range(2000)))
    _CountingText.scanned = 0
    result = BIBTEX.parse(Path("big.bib"), text)
    assert len(result.entries) == 2000 and result.entries[-1].locator == f"line {1 + 5 * 1999}"
    assert _CountingText.scanned <= 2 * len(text), "line numbers are recounted from the start of the file"


# --- 8 ----------------------------------------------------------------------------------------
def test_item08_bracketed_numbers_in_abstracts_are_not_citations(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    rows = [{"title": "Zebra routing for sparse experts",
             "abstract": "Zebra routing balances sparse experts. It matches [2] and [3][4][5] on zebra routing benchmarks."}]
    rows += [{"title": f"Unrelated paper {i} on protein folding", "abstract": f"Protein folding study number {i}."}
             for i in range(6)]
    ingest([_jsonl(tmp_path / "z.jsonl", rows)], s)
    answer = get_assistant(s).stream("What does zebra routing match on benchmarks?", backend="extractive", k=7).result()
    assert not answer.refused and [c.title for c in answer.citations] == ["Zebra routing for sparse experts"]
    assert "(3)(4)(5)" in answer.text or "[3]" not in answer.text


# --- 9 ----------------------------------------------------------------------------------------
HOSTILE = ("Zebra routing balances sparse experts \x1b[2J\x1b]0;pwned\x07 with \u202eevil\u202c text "
           "![x](http://203.0.113.9/leak.png) <img src=http://203.0.113.9/a.png> <script>alert(1)</script>.")


def test_item09_terminal_escapes_never_reach_the_terminal(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    ingest([_jsonl(tmp_path / "h.jsonl", [{"title": "Zebra \x1b[31mrouting\x1b[0m", "abstract": HOSTILE}])], s)
    proc = _cli("ask", "Which papers study zebra routing?", data=s.data_dir)
    out = proc.stdout.decode()
    assert proc.returncode == 0 and "Zebra" in out, proc.stderr
    for bad in ("\x1b", "\x07", "\u202e", "\u202c"):
        assert bad not in out


def test_item09_chat_markdown_loads_nothing_by_itself() -> None:
    from ui.gradio_render import chat_markdown

    safe = chat_markdown(HOSTILE)
    assert "![" not in safe.replace("\\![", "") and "<img" not in safe and "<script" not in safe and "\x1b" not in safe
    assert "\u202e" not in safe and "203.0.113.9/leak.png" in safe  # the URL stays visible as text


# --- 11 ---------------------------------------------------------------------------------------
@pytest.fixture
def llm_stub() -> OpenAIStub:
    with OpenAIStub() as stub:
        yield stub


def _backend(url: str, timeout: float = 60.0):  # type: ignore[no-untyped-def]
    return get_backend("openai", Settings(llm=LLMSettings(base_url=url, api_key=SecretStr("sk-test"), timeout=timeout)))


def _req() -> Request:
    from test_llm_backends import QUESTION, make_hits

    return Request(question=QUESTION, hits=make_hits(1, sentences=1), evidence=None)  # type: ignore[arg-type]


@pytest.mark.network
def test_item11_broken_or_stalling_llm_endpoint_is_an_error_within_the_deadline(llm_stub: OpenAIStub) -> None:
    import time

    llm_stub.script(Reply(raw=b"<html>502 from a proxy, not an event stream</html>\n" * 50))
    with pytest.raises(BackendError, match="no chat completion chunks"):
        list(_backend(llm_stub.url).generate(_req()))  # used to look like a refusal

    llm_stub.script(Reply(chunks=["slow "] * 20, trickle=0.4))  # a token every 0.4 s with keep-alives
    t0 = time.monotonic()
    with pytest.raises(BackendError) as info:
        list(_backend(llm_stub.url, timeout=1.5).generate(_req()))
    waited = time.monotonic() - t0
    assert "timed out after 1.5s" in str(info.value) and "waited" in str(info.value) and llm_stub.url in str(info.value)
    assert waited < 4.0, f"the overall deadline did not hold: {waited:.1f}s"

    llm_stub.script(Reply("never", delay=3.0), Reply("never", delay=3.0))
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="timed out after 1s"):
        list(_backend(llm_stub.url, timeout=1.0).generate(_req()))
    assert time.monotonic() - t0 < 2.5, "a silent server is waited for once, not once per retry"

    llm_stub.script(Reply("never", delay=3.0), Reply("never", delay=3.0))
    t0 = time.monotonic()
    with pytest.raises(BackendError, match=r"condense .*timed out after 1s .*waited"):
        _backend(llm_stub.url, timeout=1.0).condense("And it?", [{"role": "user", "content": "LoRA?"}])
    assert time.monotonic() - t0 < 2.5


# --- 14 ---------------------------------------------------------------------------------------
@pytest.mark.slow
def test_item14_concurrent_asks_are_served_together_and_agree(seed_settings: Settings) -> None:
    from ui.gradio_app import ChatApp

    demo = ChatApp(seed_settings).build()
    limits = {fn.concurrency_limit for fn in demo.fns.values() if getattr(fn, "concurrency_id", None) == "ask"}
    assert limits == {seed_settings.ui.concurrency} and seed_settings.ui.concurrency >= 8

    questions = ["Which papers reduce catastrophic forgetting with LoRA?", "How do mixture of experts route tokens?"] * 4
    assistant = get_assistant(seed_settings)
    serial = [assistant.stream(q).result() for q in questions]
    results: list[object] = [None] * len(questions)

    def run(i: int) -> None:
        try:
            results[i] = assistant.stream(questions[i]).result()
        except Exception as exc:  # surfaced below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(questions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    for one, many in zip(serial, results, strict=True):
        assert not isinstance(many, Exception), many
        assert many.text == one.text and [c.paper_id for c in many.citations] == [c.paper_id for c in one.citations]  # type: ignore[union-attr]


# --- 12 ---------------------------------------------------------------------------------------
def test_item12_concurrent_ingest_on_one_data_dir_gets_a_clear_message(tmp_path: Path) -> None:
    from assistant.locking import WriteLock

    s = _settings(tmp_path)
    listing = _jsonl(tmp_path / "a.jsonl", [{"title": "LoRA adapters", "abstract": "They reduce forgetting."}])
    held = WriteLock(s.data_dir)  # as a running ingest holds it
    try:
        proc = _cli("ingest", str(listing), data=s.data_dir)
        err = _one_line_error(proc)
        assert proc.returncode == 2 and "another ingest" in err and str(s.data_dir) in err
    finally:
        held.release()
    assert ingest([listing], s).total_papers == 1  # free again once the holder is done


# --- 13 ---------------------------------------------------------------------------------------
_PROBE = """
import json, sys
import numpy as np
from pathlib import Path
from assistant.index import Index
from assistant.settings import Settings
idx = Index.open(Settings(data_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2])))
everything = idx.store.collection.get(include=["embeddings"])
ids, m = everything["ids"], np.asarray(everything["embeddings"], dtype=np.float32)
m /= np.linalg.norm(m, axis=1, keepdims=True)
out = []
for q in json.loads(sys.argv[3]):
    v = idx.embed_query(q)
    exact = [ids[i] for i in np.argsort(-(m @ (v / np.linalg.norm(v))), kind="stable")[:50]]
    out.append([[c for c, *_ in idx.store.query(v, 50)], exact])
print(json.dumps(out))
"""


@pytest.mark.slow
def test_item13_retrieval_is_the_same_in_every_process(seed_dir: Path) -> None:
    """Two fresh processes find the same neighbours, and at the seed corpus' size (1,300 vectors, under
    chroma.EXACT_UP_TO) the search is exhaustive: exactly the top-50 of a brute-force search, so every
    index of the same papers answers alike whatever its HNSW graph (at store.search_ef 200 two ingests of
    the seed corpus refused different questions out-of-fold)."""
    from tests.conftest import DEV, EMBED_CACHE

    questions = [json.loads(line)["question"] for line in DEV.read_text().splitlines() if line.strip()]

    def probe(**env: str) -> list[tuple[list[str], list[str]]]:
        proc = subprocess.run([sys.executable, "-c", _PROBE, str(seed_dir), str(EMBED_CACHE), json.dumps(questions)],
                              capture_output=True, text=True, timeout=300, check=False, env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr[-2000:]
        return json.loads(proc.stdout)  # type: ignore[no-any-return]

    def recall(run: list[tuple[list[str], list[str]]]) -> float:
        return sum(len(set(h) & set(e)) for h, e in run) / sum(len(e) for _, e in run)

    first, second = probe(), probe()
    assert [hnsw for hnsw, _ in first] == [hnsw for hnsw, _ in second], "two processes, different neighbours"
    assert recall(first) == 1.0, f"a small collection is not searched exhaustively (recall@50 {recall(first):.3f})"


# --- 11 (Chroma server) -----------------------------------------------------------------------
@pytest.mark.network
def test_item11_chroma_server_that_never_answers_fails_within_the_deadline(tmp_path: Path) -> None:
    import socket
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)  # accepts connections (the kernel does), never answers
    port = listener.getsockname()[1]
    env = {**os.environ, "LITASSIST_DATA_DIR": str(tmp_path / "data"), "LITASSIST_STORE__CHROMA_HOST": "127.0.0.1",
           "LITASSIST_STORE__CHROMA_PORT": str(port), "LITASSIST_STORE__TIMEOUT": "2"}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "placeholder").write_text("")
    listing = _jsonl(tmp_path / "a.jsonl", [{"title": "LoRA adapters", "abstract": "They reduce forgetting."}])
    try:
        t0 = time.monotonic()
        proc = subprocess.run([str(LITASSIST), "ingest", str(listing)], capture_output=True, env=env, timeout=60,
                              check=False)
        waited = time.monotonic() - t0
    finally:
        listener.close()
    err = _one_line_error(proc)
    assert proc.returncode == 2 and f"127.0.0.1:{port}" in err and "did not answer within 2s" in err, err
    assert waited < 30


_READER = """
import json, sys
from pathlib import Path
from assistant.answering import get_assistant
from assistant.settings import Settings
a = get_assistant(Settings(data_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2])))
stop, n, errors = Path(sys.argv[3]), 0, []
print("ready", flush=True)
while not stop.exists() or n == 0:
    try:
        a.stream("Which papers reduce forgetting with LoRA adapters?").result()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}"[:200])
    n += 1
print(json.dumps({"asks": n, "errors": errors[:5], "n_errors": len(errors)}))
"""


@pytest.mark.slow
def test_item12_rebuild_while_another_process_answers(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", _READER, str(s.data_dir), str(s.cache_dir), str(stop)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert reader.stdout is not None and reader.stdout.readline().strip() == "ready"
        for _ in range(3):
            proc = _cli("ingest", "--rebuild", str(tiny_listing), data=s.data_dir)
            assert proc.returncode == 0, proc.stderr
    finally:
        stop.touch()
        out, err = reader.communicate(timeout=120)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["asks"] > 0 and result["n_errors"] == 0, (result, err[-2000:])


def test_item08_llm_sources_show_bracketed_numbers_as_plain_text() -> None:
    from assistant.backends.context import escape_data

    assert escape_data("matching [2] and [3][4][5] </abstract>") == "matching (2) and (3)(4)(5) &lt;/abstract&gt;"


@pytest.mark.slow
def test_a_streamed_answer_prints_as_the_whole_one_does(seed_env: Path) -> None:
    # the streamed text ran straight into "Sources:" (no blank line between, as in the whole answer)
    q = "Which papers reduce catastrophic forgetting with LoRA?"
    whole, streamed = _cli("ask", q, data=seed_env), _cli("ask", q, "--stream", data=seed_env)
    assert whole.returncode == streamed.returncode == 0, streamed.stderr
    assert b"\n\nSources:" in whole.stdout and streamed.stdout == whole.stdout
