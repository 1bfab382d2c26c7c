"""Shared fixtures.

- every test gets its own empty data dir (autouse), so nothing leaks between tests;
- the seed corpus (../shared/corpus/hf-daily-papers) is indexed once per test session into a
  read-only index (``seed_settings``); embeddings come from a cache under .cache/ in the repo, so
  the corpus is embedded at most once per checkout, never once per test.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
CORPUS = SHARED / "corpus" / "hf-daily-papers"
DEV = SHARED / "evals" / "dev.jsonl"
DEV2 = SHARED / "evals" / "dev2.jsonl"
EMBED_CACHE = Path(os.environ.get("LITASSIST_TEST_CACHE", REPO / ".cache" / "test-embeddings"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")


def need_shared() -> None:
    """Skip (with the reason) when ../shared is absent."""
    if not CORPUS.is_dir() or not DEV.is_file() or not DEV2.is_file():
        pytest.skip(f"../shared is absent ({CORPUS} / {DEV} not found): seed-corpus tests need it beside the repo")


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for var in list(os.environ):
        if var.startswith(("LITASSIST_", "SLACK_")) and var != "LITASSIST_TEST_CACHE":
            monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LITASSIST_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LITASSIST_CACHE_DIR", str(EMBED_CACHE))
    monkeypatch.setenv("LITASSIST_CONFIG", "")  # no TOML file (a path that does not exist is an error)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "share"))
    yield


@pytest.fixture(scope="session")
def seed_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Data dir holding the seed-corpus index (built once per session; treat as read-only)."""
    need_shared()
    from assistant.settings import Settings
    from ingest.pipeline import ingest

    data = tmp_path_factory.mktemp("seed-index")
    settings = Settings(data_dir=data, cache_dir=EMBED_CACHE)
    report = ingest([CORPUS], settings)
    assert report.total_papers == 414, report
    return data


@pytest.fixture(scope="session")
def seed_settings(seed_dir: Path):  # type: ignore[no-untyped-def]
    """Settings pointing at the seed index (extractive backend)."""
    from assistant.settings import Settings

    return Settings(data_dir=seed_dir, cache_dir=EMBED_CACHE)


@pytest.fixture
def seed_env(seed_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point LITASSIST_DATA_DIR at the seed index (for CLI / front-end tests)."""
    monkeypatch.setenv("LITASSIST_DATA_DIR", str(seed_dir))
    return seed_dir


@pytest.fixture
def tiny_listing(tmp_path: Path) -> Path:
    """A small hand-written JSONL listing (3 papers)."""
    src = REPO / "tests" / "fixtures" / "tiny.jsonl"
    dst = tmp_path / "tiny.jsonl"
    shutil.copy(src, dst)
    return dst
