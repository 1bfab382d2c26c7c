"""Server mode: `chroma run` on 127.0.0.1 (started here, stopped by PID) used through HttpClient."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import ask
from assistant.index import Index
from assistant.models import Answer
from assistant.settings import Settings
from ingest.pipeline import ingest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[int]:
    exe = shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")
    if exe is None:
        pytest.skip("the `chroma` CLI (from chromadb) is not installed")
    port = _free_port()
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen(
        [exe, "run", "--path", str(tmp_path / "server-data"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"chroma run exited: {(tmp_path / 'chroma.log').read_text()[-500:]}")
                time.sleep(0.3)
        else:
            pytest.fail("chroma server did not answer within 60 s")
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
        log.close()


def test_ingest_and_ask_through_chroma_server(chroma_server: int, tmp_path: Path, tiny_listing: Path) -> None:
    s = Settings(data_dir=tmp_path / "data", store={"chroma_host": "127.0.0.1", "chroma_port": chroma_server})
    report = ingest([tiny_listing], s)
    assert report.new == 3
    index = Index.open(s)
    assert index.stats()["store"] == f"http://127.0.0.1:{chroma_server}"
    assert index.store.count() == report.total_chunks
    assert not (tmp_path / "data" / "chroma").exists(), "no local Chroma store in server mode"
    again = ingest([tiny_listing], s)
    assert again.new == 0 and index.store.count() == report.total_chunks
    a = ask("Do low-rank adapters reduce catastrophic forgetting?", settings=s)
    assert isinstance(a, Answer) and not a.refused
    assert a.citations[0].title.startswith("LoRA Keeps What It Learned")
    # filters run inside the server too (year and source metadata on each chunk)
    dated = ask("Do low-rank adapters reduce catastrophic forgetting?", settings=s, filters={"since": 2024, "source": "tiny"})
    assert [h.paper.year for h in dated.contexts] == [2024]


def test_unreachable_server_is_one_line_error(tmp_path: Path) -> None:
    from assistant.errors import BackendError

    s = Settings(data_dir=tmp_path / "data", store={"chroma_host": "127.0.0.1", "chroma_port": _free_port()})
    with pytest.raises(BackendError, match="Chroma server at 127.0.0.1"):
        Index.open(s, create=True)
