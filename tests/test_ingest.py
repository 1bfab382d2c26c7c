"""Ingestion: idempotent, incremental, deduplicating, robust to bad input and interruption."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from assistant.index import Index
from assistant.settings import Settings
from ingest.pipeline import ingest
from tests.conftest import CORPUS, need_shared

LONG = " ".join(f"Sentence number {i} explains one more detail about sparse adapters and forgetting." for i in range(60))


def _settings(tmp_path: Path, **kw: object) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache", **kw)  # type: ignore[arg-type]


def _write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _consistent(settings: Settings) -> tuple[int, int]:
    index = Index.open(settings)
    papers, chunks = index.registry.counts()
    assert index.store.count() == chunks, "every registered chunk has exactly one vector"
    assert sorted(index.store.ids()) == index.registry.chunk_ids()
    return papers, chunks


def test_ingest_is_idempotent_and_cached(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    first = ingest([tiny_listing], s)
    assert (first.new, first.updated, first.unchanged, first.skipped) == (3, 0, 0, [])
    assert first.chunks > 0
    assert first.embedded == first.sentences_embedded > 3, "titles and sentences are embedded, chunk vectors derived"
    second = ingest([tiny_listing], s)
    assert (second.new, second.updated, second.unchanged, second.embedded, second.chunks) == (0, 0, 3, 0, 0)
    assert second.sentences_embedded == 0
    assert _consistent(s) == (3, first.total_chunks)
    rebuilt = ingest([tiny_listing], s, rebuild=True)
    assert rebuilt.new == 3 and rebuilt.embedded == 0, "--rebuild reuses the embedding cache"
    assert _consistent(s) == (3, first.total_chunks)


def test_a_listing_read_from_a_pipe_is_ingested(tmp_path: Path, tiny_listing: Path) -> None:
    # `litassist ingest <(cat page.txt)`: the run's digest used to read the pipe first, so the parser
    # found it empty and skipped it ("empty file")
    import threading

    fifo = tmp_path / "page.jsonl"
    os.mkfifo(fifo)
    reports = []
    writer = threading.Thread(target=lambda: fifo.write_bytes(tiny_listing.read_bytes()), daemon=True)
    reader = threading.Thread(target=lambda: reports.append(ingest([fifo], _settings(tmp_path))), daemon=True)
    writer.start()
    reader.start()
    reader.join(timeout=60)  # before the fix the parser waited for a second writer that never came
    assert reports, "ingest of a pipe did not finish"
    assert (reports[0].new, reports[0].skipped) == (3, [])


_TRY_READ = (
    "import fcntl, sys; f = open(sys.argv[1], 'a')\n"
    "try:\n    fcntl.flock(f, fcntl.LOCK_SH | fcntl.LOCK_NB); print('free')\n"
    "except BlockingIOError:\n    print('held')\n"
)


def test_a_rebuild_keeps_readers_of_other_processes_out_of_the_store_only_while_it_writes(
    tmp_path: Path, tiny_listing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `ask` in another process during `ingest --rebuild` crashed inside Chroma's native code and left a
    # store that every later query crashed on (segmentation fault); readers now wait for the rebuild's
    # writes. They used to wait for its embedding too: a rebuild of a large collection embedded anew
    # held them out for hours, and they gave up after 120 s ("busy"). It now embeds into the cache first.
    from assistant.embedders.cache import CachedEmbedder

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    seen: list[tuple[str, str]] = []

    def probe(when: str) -> None:
        run = subprocess.run([sys.executable, "-c", _TRY_READ, str(s.data_dir / ".store.lock")],
                             capture_output=True, text=True, check=True)
        seen.append((when, run.stdout.strip()))

    reset, compute = Index.reset, CachedEmbedder._compute

    def reset_then_probe(index: Index) -> None:
        reset(index)
        probe("emptied")

    def probe_then_compute(embedder: CachedEmbedder, batch: list[tuple[str, str]], keep_tokens: bool = False):  # type: ignore[no-untyped-def]
        probe("embedding")
        return compute(embedder, batch, keep_tokens)

    monkeypatch.setattr(Index, "reset", reset_then_probe)
    monkeypatch.setattr(CachedEmbedder, "_compute", probe_then_compute)
    zebra = _write_jsonl(tmp_path / "zebra.jsonl", [{"title": "Zebra routing", "abstract": LONG}])
    report = ingest([tiny_listing, zebra], s, rebuild=True)  # the zebra paper's texts are not in the cache
    assert seen and all(state == "free" for when, state in seen if when == "embedding"), seen
    assert seen[-1] == ("emptied", "held") and ("embedding", "free") in seen
    assert report.embedded > 0 and report.sentences_embedded > 0, "what the rebuild embedded first is counted"
    seen.clear()
    extra = _write_jsonl(tmp_path / "more.jsonl", [{"title": "Yak shaving for sparse experts", "abstract": LONG + " Yaks."}])
    ingest([extra], s, on_start=lambda _: probe("incremental"))  # an incremental run takes it per write only
    assert ("incremental", "free") in seen
    assert _consistent(s)[0] == 5


def test_a_reader_waits_for_a_writer_of_another_process(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    marker = tmp_path / "released"
    index = Index.open(s)  # opened first: the query itself must wait, not only the open
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from assistant.locking import StoreLock\n"
         "with StoreLock(Path(sys.argv[1])).writing():\n"
         "    print('holding', flush=True); time.sleep(1.5); Path(sys.argv[2]).write_text('x')\n",
         str(s.data_dir), str(marker)],
        stdout=subprocess.PIPE, text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
    found = index.store.query(index.embed_query("sparse adapters"), 3)
    assert marker.exists(), "the query ran while another process was writing"
    assert found
    holder.wait(timeout=30)


_INGEST_IN_ANOTHER_PROCESS = (  # argv: data dir, cache dir, listing, 'add' or 'rebuild', [+ ',pause' after each
    # batch written; a rebuild, which embeds first and reports that, pauses once it has emptied the index]
    "import sys; from pathlib import Path; from assistant.settings import Settings; from ingest.pipeline import ingest\n"
    "from assistant.index import Index\n"
    "s = Settings(data_dir=Path(sys.argv[1]), cache_dir=Path(sys.argv[2]))\n"
    "def pause(_):\n    print('written', flush=True); sys.stdin.readline()\n"
    "reset, rebuild, paused = Index.reset, 'rebuild' in sys.argv[4], 'pause' in sys.argv[4]\n"
    "def reset_then_pause(index):\n    reset(index); pause(0)\n"
    "if rebuild and paused:\n    Index.reset = reset_then_pause\n"
    "ingest([Path(sys.argv[3])], s, rebuild=rebuild, on_progress=pause if paused and not rebuild else None)\n"
)


def _zebra(tmp_path: Path) -> Path:
    return _write_jsonl(tmp_path / "zebra.jsonl", [{
        "title": "Zebra routing for sparse experts",
        "abstract": "Zebra routing sends each token to striped experts. It halves routing cost on long inputs.",
    }])


def test_a_running_process_searches_the_vectors_another_process_wrote(tmp_path: Path, tiny_listing: Path) -> None:
    # a local Chroma client loads the vector index once: a Gradio app or Slack bot left running searched
    # the old vectors after an `ingest` in another terminal (new papers reached only by BM25; after a
    # --rebuild, vectors that were deleted)
    from assistant.answering import Assistant

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    running = Assistant(s)
    running.stream("Which papers reduce forgetting with sparse adapters?").result()  # vectors loaded
    zebra = _zebra(tmp_path)

    def dense(query: str) -> list[str]:
        running.index.refresh()  # what every question does first
        return [pid for _, pid, _ in running.index.store.query(running.index.embed_query(query), 3)]

    for mode in ("add", "rebuild"):  # the second rebuilds the index from the zebra paper alone
        subprocess.run([sys.executable, "-c", _INGEST_IN_ANOTHER_PROCESS, str(s.data_dir), str(s.cache_dir),
                        str(zebra), mode], check=True, capture_output=True)
        found = dense("zebra routing striped experts")
        registry = running.index.registry
        zebra_id = next(p.id for p in registry.get_many(registry.paper_ids()).values() if p.title.startswith("Zebra"))
        assert found[0] == zebra_id, (mode, found)
    assert found == [zebra_id], "after the rebuild no deleted vector is found"


def test_a_running_process_catches_up_once_another_process_has_ingested(tmp_path: Path, tiny_listing: Path) -> None:
    # re-opened per question while another process ingests, a large index is reloaded from disk by every
    # question; the view now waits for that ingest to finish, then catches up once
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    index = Index.open(s)
    zebra = _zebra(tmp_path)
    query = index.embed_query("zebra routing striped experts")
    index.store.query(query, 3)
    view = index.store._view
    assert view is not None
    epoch = view.epoch
    other = subprocess.Popen([sys.executable, "-c", _INGEST_IN_ANOTHER_PROCESS, str(s.data_dir), str(s.cache_dir),
                              str(zebra), "add,pause"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert other.stdin is not None and other.stdout is not None
    try:
        assert other.stdout.readline().strip() == "written"  # its batch is stored; it still holds the ingest lock
        index.refresh()
        index.store.query(query, 3)
        assert view.epoch == epoch, "re-opened while another process was ingesting"
    finally:
        other.stdin.write("\n")
        other.stdin.close()
        assert other.wait(timeout=60) == 0
    index.refresh()  # same generation as the refresh above: the put-off re-open happens now
    assert view.epoch == epoch + 1
    top = index.store.query(query, 1)[0][1]
    assert index.registry.get(top).title.startswith("Zebra")  # type: ignore[union-attr]


def test_a_question_that_waited_for_another_process_rebuilding_reads_the_rebuilt_index(
    tmp_path: Path, tiny_listing: Path
) -> None:
    # the re-open is put off while another process ingests, but a rebuild holds the store throughout: a
    # question that waited for it (in its refresh, or in its search when the refresh came first) must
    # search the rebuilt vectors, not the deleted ones
    import threading

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    index = Index.open(s)
    query = index.embed_query("zebra routing striped experts")
    index.store.query(query, 3)
    index.refresh()  # current: the search below waits without a refresh in between
    other = subprocess.Popen([sys.executable, "-c", _INGEST_IN_ANOTHER_PROCESS, str(s.data_dir), str(s.cache_dir),
                              str(_zebra(tmp_path)), "rebuild,pause"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             text=True)
    assert other.stdin is not None and other.stdout is not None
    found: dict[str, list[str]] = {"search": [], "refresh": []}

    def question(refresh: bool) -> None:
        if refresh:
            index.refresh()
        found["refresh" if refresh else "search"].extend(pid for _, pid, _ in index.store.query(query, 3))

    asked = [threading.Thread(target=question, args=(flag,)) for flag in (False, True)]
    try:
        assert other.stdout.readline().strip() == "written"  # the rebuild holds the store lock
        for t in asked:
            t.start()
            t.join(timeout=1.0)
            assert t.is_alive(), "the question did not wait for the rebuild"
    finally:
        other.stdin.write("\n")
        other.stdin.close()
        assert other.wait(timeout=60) == 0
    for t in asked:
        t.join(timeout=60)
    for how, ids in found.items():
        assert len(ids) == 1 and index.registry.get(ids[0]) is not None, (how, ids)


def test_a_question_probing_the_ingest_lock_does_not_turn_an_ingest_away(tmp_path: Path) -> None:
    # a question checks whether another process is ingesting by taking the ingest lock shared for an
    # instant; an ingest starting in that instant failed at once ('another ingest is writing')
    import fcntl
    import threading

    from assistant.locking import WriteLock

    tmp_path.mkdir(exist_ok=True)
    probe = (tmp_path / ".ingest.lock").open("a")
    fcntl.flock(probe, fcntl.LOCK_SH)
    threading.Timer(0.05, lambda: fcntl.flock(probe, fcntl.LOCK_UN)).start()
    lock = WriteLock(tmp_path)
    lock.release()
    probe.close()
    assert not WriteLock.held(tmp_path)


def test_two_indexes_of_one_folder_answer_while_another_process_writes(tmp_path: Path, tiny_listing: Path) -> None:
    # two Assistants of one data dir (settings differing in LLM options) share the folder's client; one
    # re-opening it while the other opened its store got the closed client ('RustBindingsAPI' object has
    # no attribute 'bindings')
    import threading

    from assistant.stores.registry import Registry

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    indexes = [Index.open(s), Index.open(s)]
    vector = indexes[0].embed_query("sparse adapters")
    errors: list[str] = []
    done = threading.Event()

    def asker(index: Index) -> None:
        while not done.is_set():
            try:
                index.refresh()
                index.store.query(vector, 3)
            except Exception as err:  # noqa: BLE001 - any failure is the finding
                errors.append(f"{type(err).__name__}: {err}")

    threads = [threading.Thread(target=asker, args=(ix,)) for ix in indexes]
    for t in threads:
        t.start()
    writer = Registry(indexes[0].registry.path)  # stands for an ingest in another process
    for _ in range(150):
        with writer.transaction() as db:
            writer._bump(db)
        time.sleep(0.01)
    done.set()
    for t in threads:
        t.join(timeout=60)
    assert errors == []


def test_a_rebuild_in_one_thread_does_not_stall_a_question_in_another(
    tmp_path: Path, tiny_listing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the question thread held the views lock while waiting for the store lock, and the rebuilding
    # thread, holding the store lock, waited for the views lock: the question failed "busy" after
    # StoreLock.WAIT_S and the rebuild waited as long
    import threading

    from assistant.locking import StoreLock

    monkeypatch.setattr(StoreLock, "WAIT_S", 15.0)
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    index = Index.open(s)
    vector = index.embed_query("sparse adapters")
    index.store.query(vector, 3)
    outcome: list[str] = []

    def question() -> None:
        try:
            index.refresh()  # the generation moved: the rebuild has begun
            outcome.append(f"found {len(index.store.query(vector, 3))}")
        except Exception as err:  # noqa: BLE001
            outcome.append(f"{type(err).__name__}: {err}")

    asked = threading.Thread(target=question)
    reset = Index.reset

    def reset_then_ask(rebuilt: Index) -> None:  # the store lock is held from here to the rebuild's end
        reset(rebuilt)
        asked.start()

    monkeypatch.setattr(Index, "reset", reset_then_ask)
    ingest([tiny_listing], s, rebuild=True)
    asked.join(timeout=60)
    assert outcome == ["found 3"]


_OPEN_REGISTRY_AT = (
    "import sys, time; from pathlib import Path; from assistant.stores.registry import Registry\n"
    "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); Registry(Path(sys.argv[1]))\n"
)


def test_two_processes_upgrade_an_old_registry_at_once(tmp_path: Path, tiny_listing: Path) -> None:
    # the column check ran before the transaction: the second process then added the column again
    # ('duplicate column name: tok') and died
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    path = Index.open(s).registry.path
    for trial in range(3):
        with sqlite3.connect(path) as db:
            db.execute("DROP INDEX papers_no_tok")
            db.execute("ALTER TABLE papers DROP COLUMN tok")  # as one written before the token bits
        start = time.time() + 0.8
        procs = [subprocess.Popen([sys.executable, "-c", _OPEN_REGISTRY_AT, str(path), str(start)],
                                  stderr=subprocess.PIPE, text=True) for _ in range(2)]
        failures = [err.strip().splitlines()[-1] for p in procs if (err := p.communicate(timeout=60)[1]) and p.returncode]
        assert failures == [], (trial, failures)
    with sqlite3.connect(path) as db:
        assert "tok" in {r[1] for r in db.execute("PRAGMA table_info(papers)")}


def test_only_the_thread_holding_the_store_lock_passes_its_own_holds(tmp_path: Path) -> None:
    # the exclusive hold was marked per process: another thread of it (Gradio's workers, the prefetch
    # thread) walked in while a write was under way, and the key's removal left it inside unlocked
    import threading

    from assistant.locking import StoreLock

    lock, events = StoreLock(tmp_path), []
    holding, go = threading.Event(), threading.Event()

    def writer() -> None:
        with lock.writing(), lock.writing():  # the second, nested in the holding thread, passes
            holding.set()
            go.wait(10)
            events.append("writer done")

    def reader() -> None:
        holding.wait(10)
        with lock.reading():
            events.append("reader in")

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    holding.wait(10)
    time.sleep(0.3)  # time for the reader to walk in, had it been let through
    go.set()
    for t in threads:
        t.join(10)
    assert events == ["writer done", "reader in"]


def test_a_failing_vector_search_is_a_one_line_backend_error(tmp_path: Path, tiny_listing: Path) -> None:
    # under heavy concurrent load Chroma raised InternalError('pool timed out ...') through `ask` as a traceback
    from chromadb.errors import InternalError

    from assistant.errors import BackendError

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    index = Index.open(s)

    class Failing:
        def query(self, **_: object) -> None:
            raise InternalError("pool timed out while waiting for\n an open connection")

    index.store._col = Failing()
    with pytest.raises(BackendError, match=r"^the vector store failed to search: pool timed out while waiting for an open"):
        index.store.query(index.embed_query("sparse adapters"), 3)


def test_changed_abstract_replaces_its_chunks(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    rows = [json.loads(line) for line in tiny_listing.read_text().splitlines()]
    rows[1]["abstract"] = LONG
    changed = _write_jsonl(tmp_path / "tiny.jsonl", rows)
    old_ids = set(Index.open(s).registry.chunk_ids("arxiv:2311.00002"))
    report = ingest([changed], s)
    assert (report.new, report.updated, report.unchanged) == (0, 1, 2)
    index = Index.open(s)
    new_ids = set(index.registry.chunk_ids("arxiv:2311.00002"))
    assert len(new_ids) > 1 and not (old_ids & new_ids)
    assert not (old_ids & set(index.store.ids())), "old chunks are gone from Chroma"
    _consistent(s)


def test_chunks_fit_the_embedder_and_carry_the_title(tmp_path: Path) -> None:
    s = _settings(tmp_path, ingest={"chunking": "tokens", "chunk_size": 512, "chunk_overlap": 0})
    src = _write_jsonl(tmp_path / "long.jsonl", [{"title": "Sparse Adapters Forever", "abstract": LONG}])
    ingest([src], s)
    index = Index.open(s)
    chunks = index.registry.chunks()
    assert len(chunks) > 1, "a 512-token chunk would overflow MiniLM's 256 tokens, so it is re-split"
    for c in chunks:
        assert c.embed_text.startswith("Sparse Adapters Forever\n")
        assert index.embedder.count_tokens(c.embed_text) <= index.embedder.max_tokens
    for i in range(60):
        assert any(f"Sentence number {i} " in c.text for c in chunks), f"sentence {i} lost"


def test_same_paper_in_two_listings_is_one_paper(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    a = _write_jsonl(tmp_path / "a.jsonl", [{"title": "Shared Paper", "abstract": "About LoRA.", "date": "Apr 22"}])
    b = _write_jsonl(tmp_path / "b.jsonl", [{"title": "shared paper ", "abstract": "About LoRA.", "date": "2024-04-22"}])
    ingest([a, b], s)
    papers = Index.open(s).registry.papers()
    assert len(papers) == 1
    assert papers[0].sources == ["a.jsonl", "b.jsonl"]
    assert papers[0].year == 2024, "the listing that gives a year wins; none is invented"


def test_bad_inputs_are_skipped_with_file_and_line(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "empty.jsonl").write_text("")
    (bad / "binary.txt").write_bytes(b"\x00\x01\x02\x03" * 100)
    (bad / "latin1.jsonl").write_bytes(b'{"title": "Ok", "abstract": "fine"}\n{"title": "Caf\xe9", "abstract": "x"}\n')
    _write_jsonl(bad / "mixed.jsonl", [{"title": "Good One", "abstract": "A good abstract about adapters."}])
    with (bad / "mixed.jsonl").open("a") as fh:
        fh.write('{"title": "Broken", "abstract": \n')
        fh.write(json.dumps({"title": "No abstract"}) + "\n")
    report = ingest([bad, tmp_path / "missing.jsonl"], s)
    reasons = [str(x) for x in report.skipped]
    assert any("empty.jsonl" in r and "empty" in r for r in reasons)
    assert any("binary.txt" in r and "binary" in r for r in reasons)
    assert any("latin1.jsonl" in r and "line 2" in r and "UTF-8" in r for r in reasons)
    assert any("mixed.jsonl" in r and "line 2" in r for r in reasons)
    assert any("mixed.jsonl" in r and "abstract" in r for r in reasons)
    assert any("missing.jsonl" in r for r in reasons)
    assert all("\n" not in r and "Traceback" not in r for r in reasons)
    titles = {p.title for p in Index.open(s).registry.papers()}
    assert "Good One" in titles, "the good entries of a bad file are still ingested"
    assert len(titles) == 4, "nothing already indexed was lost"
    _consistent(s)


def test_cli_exit_status_and_one_line_errors(tmp_path: Path, tiny_listing: Path) -> None:
    env = {**os.environ, "LITASSIST_DATA_DIR": str(tmp_path / "data")}
    ok = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(tiny_listing), "--json"],
                        capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["new"] == 3
    bad = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(tmp_path / "nope.bib")],
                         capture_output=True, text=True, env=env)
    assert bad.returncode == 1
    assert "nope.bib" in bad.stderr and "Traceback" not in bad.stderr
    stats = subprocess.run([sys.executable, "-m", "assistant.cli", "stats", "--json"],
                           capture_output=True, text=True, env=env, check=True)
    assert json.loads(stats.stdout)["papers"] == 3


def test_interrupted_upsert_is_completed_by_next_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ingest.pipeline as pipeline
    from assistant.stores.chroma import ChromaStore

    s = _settings(tmp_path)
    rows = [{"title": f"Paper {i} on adapters", "abstract": f"Adapters number {i} reduce forgetting."} for i in range(9)]
    src = _write_jsonl(tmp_path / "many.jsonl", rows)
    monkeypatch.setattr(pipeline, "UPSERT_BATCH", 2)
    real = ChromaStore.upsert
    calls = {"n": 0}

    def flaky(self: ChromaStore, *args: object, **kw: object) -> None:
        calls["n"] += 1
        real(self, *args, **kw)  # type: ignore[arg-type]
        if calls["n"] == 3:  # vectors stored, registry not yet written: the worst moment
            raise KeyboardInterrupt

    monkeypatch.setattr(ChromaStore, "upsert", flaky)
    with pytest.raises(KeyboardInterrupt):
        ingest([src], s)
    monkeypatch.setattr(ChromaStore, "upsert", real)
    partial = Index.open(s).registry.counts()[0]
    assert partial == 4
    report = ingest([src], s)
    # ingest embeds one batch at a time: the interrupted batch (2 papers) was embedded, the 3 after it not
    assert report.new == 5 and report.embedded == 3 * 2, "nothing is embedded twice (a title and a sentence each)"
    assert _consistent(s)[0] == 9


def test_orphan_vectors_of_an_interrupted_run_are_harmless_and_cleaned(
    tmp_path: Path, tiny_listing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant import ask
    from assistant.stores.chroma import ChromaStore

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    other = _write_jsonl(tmp_path / "other.jsonl", [{"title": "Orphan Adapters", "abstract": "Adapters forget less."}])
    real = ChromaStore.upsert

    def then_die(self: ChromaStore, *args: object, **kw: object) -> None:
        real(self, *args, **kw)  # type: ignore[arg-type]
        raise KeyboardInterrupt  # vectors stored, registry row never written

    monkeypatch.setattr(ChromaStore, "upsert", then_die)
    with pytest.raises(KeyboardInterrupt):
        ingest([other], s)
    monkeypatch.setattr(ChromaStore, "upsert", real)
    index = Index.open(s)
    assert index.reconcile()[0], "the interrupted run left vectors with no paper"
    answer = ask("Do adapters forget less?", settings=s)  # must not crash on the orphans
    assert all(h.paper.title != "Orphan Adapters" for h in answer.contexts)  # type: ignore[union-attr]
    ingest([tiny_listing], s)  # a later run over *other* files cleans them up
    assert Index.open(s).reconcile() == ([], set())
    _consistent(s)


def test_killed_process_then_rerun(tmp_path: Path) -> None:
    """SIGKILL once the first embedding batch is committed; the next run finishes without re-embedding it."""
    rows = [{"title": f"Kill test paper {i}", "abstract": LONG.replace("sparse", f"topic{i}")} for i in range(12)]
    src = _write_jsonl(tmp_path / "kill.jsonl", rows)
    env = {**os.environ, "LITASSIST_DATA_DIR": str(tmp_path / "data"), "LITASSIST_CACHE_DIR": str(tmp_path / "c")}
    cmd = [sys.executable, "-m", "assistant.cli", "ingest", str(src)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cache = tmp_path / "c" / "embeddings.sqlite"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        with contextlib.suppress(sqlite3.Error):
            if cache.exists() and sqlite3.connect(cache).execute("SELECT COUNT(*) FROM vectors").fetchone()[0]:
                break
        time.sleep(0.05)
    assert proc.poll() is None, "ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    texts = 12 * (1 + 60)  # a title and 60 sentences per paper
    assert report["new"] == 12 and 0 < report["embedded"] < texts, "the killed run's batches are reused"
    s = Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "c")
    assert _consistent(s)[0] == 12


def test_wiped_vectors_are_repaired(tmp_path: Path, tiny_listing: Path) -> None:
    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    Index.open(s).store.drop()
    report = ingest([tiny_listing], s)
    assert report.repaired == 3 and report.embedded == 0
    _consistent(s)


def test_seed_corpus_cli_reports_414_and_reingest_is_free(seed_dir: Path, tmp_path: Path) -> None:
    need_shared()
    data = tmp_path / "seedcopy"
    shutil.copytree(seed_dir, data)
    env = {**os.environ, "LITASSIST_DATA_DIR": str(data)}
    stats = subprocess.run([sys.executable, "-m", "assistant.cli", "stats", "--json"],
                           env=env, capture_output=True, text=True, check=True)
    assert json.loads(stats.stdout)["papers"] == 414
    again = subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(CORPUS), "--json"],
                           env=env, capture_output=True, text=True, check=True)
    report = json.loads(again.stdout)
    assert (report["new"], report["updated"], report["embedded"], report["papers"]) == (0, 0, 0, 414)


def _count(db: Path, sql: str) -> int:
    with contextlib.suppress(sqlite3.Error):
        if db.exists():
            con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.2)
            try:
                return int(con.execute(sql).fetchone()[0])
            finally:
                con.close()
    return 0


def _snapshot(s: Settings) -> tuple[dict[str, str], list[str], list[str]]:
    index = Index.open(s)
    papers = {p.id: p.content_hash for p in index.registry.papers()}
    return papers, index.registry.chunk_ids(), sorted(index.store.ids())


@pytest.mark.slow
def test_sigkill_at_several_points_then_rerun_equals_a_clean_ingest(tmp_path: Path) -> None:
    """Kill -9 while embedding, while writing vectors, after the first registry rows; re-run; compare."""
    rows = [{"title": f"Crash test paper {i}", "abstract": LONG.replace("sparse", f"topic{i}")[: 900 + 40 * i]}
            for i in range(24)]
    src = _write_jsonl(tmp_path / "crash.jsonl", rows)
    data, cache = tmp_path / "data", tmp_path / "c"
    env = {**os.environ, "LITASSIST_DATA_DIR": str(data), "LITASSIST_CACHE_DIR": str(cache)}
    cmd = [sys.executable, "-m", "assistant.cli", "ingest", str(src)]
    points = {  # where to kill: polled every 20 ms
        "embedding": lambda: _count(cache / "embeddings.sqlite", "SELECT COUNT(*) FROM vectors") > 0,
        "vectors written": lambda: (data / "chroma").exists() and _count(cache / "embeddings.sqlite",
                                                                          "SELECT COUNT(*) FROM vectors") > 0,
        "registry rows": lambda: _count(next(data.rglob("registry.sqlite"), data / "none"),
                                        "SELECT COUNT(*) FROM papers") > 0,
    }
    killed = 0
    for name, reached in points.items():
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None and not reached():
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        assert proc.returncode in (0, -signal.SIGKILL), name
    assert killed >= 2, "ingest finished before it could be killed at most points"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    clean = Settings(data_dir=tmp_path / "clean", cache_dir=cache)
    ingest([src], clean)
    got, want = _snapshot(Settings(data_dir=data, cache_dir=cache)), _snapshot(clean)
    assert got == want and got[1] == got[2], "papers, chunk ids and vector ids equal a clean ingest, no orphans"


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "assistant.cli", *args], capture_output=True, text=True, env=env)


def test_a_rebuild_that_would_read_nothing_leaves_the_index_as_it_was(tmp_path: Path, tiny_listing: Path) -> None:
    # B2: the index was emptied before any input was read: a mistyped path wiped it
    from assistant.errors import InputError

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    before = _consistent(s)
    junk = tmp_path / "junk.txt"
    junk.write_text("nothing that parses\n")
    folder = tmp_path / "no-listings"
    folder.mkdir()
    for paths in ([tmp_path / "typo.jsonl"], [junk], [folder], [tiny_listing, tmp_path / "typo.jsonl"]):
        with pytest.raises(InputError, match="--rebuild refused") as err:
            ingest(paths, s, rebuild=True)
        assert "\n" not in str(err.value)
        assert _consistent(s) == before, f"the index was changed by a refused rebuild of {paths}"
    env = {**os.environ, "LITASSIST_DATA_DIR": str(s.data_dir), "LITASSIST_CACHE_DIR": str(s.cache_path())}
    run = _cli(env, "ingest", "--rebuild", str(tmp_path / "typo.jsonl"))
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "typo.jsonl: no such file" in run.stderr, run.stderr
    assert _consistent(s) == before
    bad = _write_jsonl(tmp_path / "partly.jsonl", [{"title": "Only One", "abstract": "A fine abstract."}, {"title": "x"}])
    report = ingest([bad], s, rebuild=True)  # a file with bad records still rebuilds from its good ones
    assert (report.total_papers, len(report.skipped)) == (1, 1)


def test_a_rebuild_refuses_when_any_named_path_or_file_read_gave_no_paper(tmp_path: Path, tiny_listing: Path) -> None:
    # `ingest --rebuild emptydir listing.jsonl` and a corpus folder with one file that cannot be read
    # rebuilt the index from the rest: the missing papers were dropped
    from assistant.errors import InputError

    s = _settings(tmp_path)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(tiny_listing, corpus / "good.jsonl")
    ingest([corpus, tiny_listing], s)
    before = _consistent(s)
    empty = tmp_path / "emptydir"
    empty.mkdir()
    (empty / "notes.md").write_text("no listing\n")
    broken = tmp_path / "broken"
    broken.mkdir()
    shutil.copy(tiny_listing, broken / "good.jsonl")
    (broken / "latin1.txt").write_bytes(b"\xffnew\n\nCaf\xe9 Paper\n\nAn abstract in Latin-1.\n")
    all_bad = _write_jsonl(tmp_path / "all-bad.jsonl", [{"title": "x"}, {"abstract": "y"}])
    cases = {
        (empty, tiny_listing): "emptydir: no listing file in it",
        (broken,): "latin1.txt:line 1: not valid UTF-8",
        (tiny_listing, all_bad): "all-bad.jsonl:line 1: record 1",
    }
    for paths, reason in cases.items():
        with pytest.raises(InputError, match="--rebuild refused") as err:
            ingest(list(paths), s, rebuild=True)
        assert reason in str(err.value) and "\n" not in str(err.value), str(err.value)
        assert _consistent(s) == before, f"the index was changed by a refused rebuild of {paths}"
    env = {**os.environ, "LITASSIST_DATA_DIR": str(s.data_dir), "LITASSIST_CACHE_DIR": str(s.cache_path())}
    run = _cli(env, "ingest", "--rebuild", str(empty), str(tiny_listing))
    assert run.returncode == 1 and run.stderr.count("\n") == 1 and "emptydir: no listing file" in run.stderr, run.stderr
    assert _consistent(s) == before
    # a file named twice (on its own and inside its folder) and a file with some bad records: rebuilt
    partly = _write_jsonl(corpus / "partly.jsonl", [{"title": "Only One", "abstract": "A fine abstract."}, {"title": "x"}])
    report = ingest([corpus, corpus / "good.jsonl"], s, rebuild=True)
    assert (report.total_papers, [sk.source for sk in report.skipped]) == (4, [str(partly)])


def test_a_file_name_that_is_not_utf8_is_ingested(tmp_path: Path, tiny_listing: Path) -> None:
    # B6: UnicodeEncodeError in the run's digest, then a TypeError in Chroma's metadata
    odd = tmp_path / os.fsdecode(b"caf\xe9.jsonl")
    shutil.copy(tiny_listing, odd)
    s = _settings(tmp_path)
    report = ingest([odd], s)
    assert (report.new, report.skipped) == (3, [])
    assert {src for p in Index.open(s).registry.papers() for src in p.sources} == {"caf\ufffd.jsonl"}
    _consistent(s)
    assert ingest([odd], s).unchanged == 3


def test_a_corrupt_registry_is_one_line_naming_it(tmp_path: Path, tiny_listing: Path) -> None:
    # B12: "file is not a database" was a traceback in stats and ingest
    from assistant.errors import LitassistError

    s = _settings(tmp_path)
    registry = s.index_dir() / "registry.sqlite"
    registry.parent.mkdir(parents=True)
    registry.write_bytes(b"this is not a database " * 200)
    env = {**os.environ, "LITASSIST_DATA_DIR": str(s.data_dir), "LITASSIST_CACHE_DIR": str(s.cache_path())}
    for args in (("stats",), ("ingest", str(tiny_listing))):
        run = _cli(env, *args)
        assert run.returncode != 0 and "Traceback" not in run.stderr, run.stderr
        assert run.stderr.count("\n") == 1 and str(registry) in run.stderr and "not a database" in run.stderr
    with pytest.raises(LitassistError, match="registry.sqlite: the paper registry cannot be read"):  # StoreError
        ingest([tiny_listing], s)
    assert registry.read_bytes().startswith(b"this is not a database"), "the file is left for its owner"


def test_a_locked_registry_is_busy_not_corrupt(tmp_path: Path, tiny_listing: Path) -> None:
    # opening a registry written before the arXiv index created it in a write transaction, in every
    # process (also `ask`); while another process wrote, that failed and was reported as a corrupt file
    # to move away
    from assistant.locking import BusyError
    from assistant.stores.registry import Registry

    s = _settings(tmp_path)
    ingest([tiny_listing], s)
    path = Index.open(s).registry.path
    with sqlite3.connect(path) as db:  # as a registry of the version before it
        db.execute("DROP INDEX papers_arxiv")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # another process writing it
    try:
        assert Index.open(s).registry.counts()[0] == 3  # a question opens it and reads: no write, no wait
        Registry(path).close()
        with pytest.raises(BusyError) as err:  # an ingest waits sqlite's timeout, then says so in one line
            ingest([tiny_listing], s)
        assert str(path) in str(err.value) and "locked" in str(err.value) and "move it away" not in str(err.value)
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    assert ingest([tiny_listing], s).unchanged == 3


def test_a_shortened_abstract_replaces_the_longer_unless_it_looks_cut(tmp_path: Path) -> None:
    # B8: any shorter abstract that began the indexed one was taken for a truncated copy and ignored
    s = _settings(tmp_path)
    full = "Adapters cut forgetting. We test ten tasks. An extra sentence the authors later removed."
    a = _write_jsonl(tmp_path / "a.jsonl", [{"title": "Adapter Study", "abstract": full}])
    ingest([a], s)
    _write_jsonl(a, [{"title": "Adapter Study", "abstract": "Adapters cut forgetting. We test ten tasks."}])
    assert ingest([a], s).updated == 1
    assert Index.open(s).registry.papers()[0].abstract == "Adapters cut forgetting. We test ten tasks."
    _write_jsonl(a, [{"title": "Adapter Study", "abstract": full}])
    ingest([a], s)
    cut = _write_jsonl(tmp_path / "a.jsonl", [{"title": "Adapter Study", "abstract": "Adapters cut forgetting. We te…"}])
    ingest([cut], s)  # cut off: the longer text is kept
    hf = _write_jsonl(tmp_path / "hf.jsonl", [{"title": "Adapter Study", "abstract": "Adapters cut forgetting."}])
    ingest([hf], s)  # another listing's shorter copy: the longer text (of a listing not read now) is kept
    assert Index.open(s).registry.papers()[0].abstract == full
    _consistent(s)
