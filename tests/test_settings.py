"""Settings: env prefix, nested sections, TOML file, masking, derived names."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from assistant.settings import Settings


def test_env_nested_sections(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LITASSIST_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("LITASSIST_RETRIEVAL__K", "7")
    monkeypatch.setenv("LITASSIST_LLM__BACKEND", "openai")
    monkeypatch.setenv("LITASSIST_LLM__API_KEY", "sk-secret-123")
    s = Settings()
    assert s.data_dir == tmp_path / "d"
    assert s.retrieval.k == 7
    assert s.llm_backend() == "openai"
    assert s.llm.api_key is not None and s.llm.api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret-123" not in json.dumps(s.masked(), default=str)


def test_auto_backend_is_extractive_without_endpoint() -> None:
    assert Settings().llm_backend() == "extractive"
    assert Settings(llm={"base_url": "http://127.0.0.1:9/v1"}).llm_backend() == "openai"


def test_toml_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cfg = tmp_path / "litassist.toml"
    cfg.write_text("[retrieval]\nk = 4\nmode = 'bm25'\n[ui]\nport = 9999\n")
    monkeypatch.setenv("LITASSIST_CONFIG", str(cfg))
    s = Settings()
    assert (s.retrieval.k, s.retrieval.mode, s.ui.port) == (4, "bm25", 9999)


def test_slack_tokens_from_plain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    s = Settings()
    assert s.slack.bot_token is not None and s.slack.bot_token.get_secret_value() == "xoxb-1"


def test_invalid_value_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITASSIST_RETRIEVAL__K", "0")
    with pytest.raises(ValidationError):
        Settings()


def test_collection_name_encodes_model_and_chunking() -> None:
    a = Settings()
    b = Settings(ingest={"chunk_size": 96})
    c = Settings(ingest={"embedder": "openai", "embedding_model": "text-embedding-3-small"})
    d = Settings(ingest={"chunking": "tokens", "chunk_size": 96})
    names = {a.collection_name(), b.collection_name(), c.collection_name(), d.collection_name()}
    assert len(names) == 4
    assert "s96" in b.collection_name() and "text-embedding-3-small" in c.collection_name()
    # token windows keep the name indexes built before sentence chunking had, so they stay readable
    assert d.collection_name() == "papers_local-all-minilm-l6-v2-int8_c96o24_072b2146"


def test_every_field_has_a_description() -> None:
    def walk(model: type) -> list[str]:
        missing = []
        for name, field in model.model_fields.items():  # type: ignore[attr-defined]
            if not field.description:
                missing.append(f"{model.__name__}.{name}")
            ann = field.annotation
            if isinstance(ann, type) and hasattr(ann, "model_fields"):
                missing += walk(ann)
        return missing

    assert walk(Settings) == []


def test_cli_config_masks_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LITASSIST_LLM__API_KEY", "sk-do-not-print")
    out = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "config", "--json"], capture_output=True, text=True, check=True
    ).stdout
    data = json.loads(out)
    assert data["llm"]["api_key"] == "**********"
    assert "sk-do-not-print" not in out
    assert data["effective_llm_backend"] == "openai"


def test_plain_command_uses_the_last_ingested_data_dir(
    tmp_path: Path, tiny_listing: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`LITASSIST_DATA_DIR=X litassist ingest … && litassist stats` reports on X (default dir empty)."""
    import os

    env = {k: v for k, v in os.environ.items() if k != "LITASSIST_DATA_DIR"}
    data = tmp_path / "picked"
    subprocess.run([sys.executable, "-m", "assistant.cli", "ingest", str(tiny_listing)],
                   env={**env, "LITASSIST_DATA_DIR": str(data)}, check=True, capture_output=True)
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "stats", "--json"],
                         env=env, check=True, capture_output=True, text=True).stdout
    stats = json.loads(out)
    assert stats["papers"] == 3 and stats["data_dir"] == str(data.resolve())
    user = Path(env["XDG_DATA_HOME"]) / "litassist"
    # a plain `stats` must not create an empty default index that hides the last ingested one
    again = subprocess.run([sys.executable, "-m", "assistant.cli", "stats", "--json"],
                           env=env, check=True, capture_output=True, text=True).stdout
    assert json.loads(again)["papers"] == 3
    monkeypatch.delenv("LITASSIST_DATA_DIR")
    assert Settings().data_dir == data.resolve()
    # an index in the per-user folder always wins
    from ingest.pipeline import ingest

    ingest([tiny_listing], Settings(data_dir=user))
    assert Settings().data_dir == user


def test_long_model_names_never_share_a_collection() -> None:
    a = Settings(ingest={"embedder": "openai", "embedding_model": "sentence-transformers/paraphrase-multilingual-mpnet-base-v2"})
    b = Settings(ingest={"embedder": "openai", "embedding_model": "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2"})
    c = Settings(ingest={"chunking": "tokens", "chunk_size": 128, "chunk_overlap": 30})
    d = Settings(ingest={"chunking": "tokens", "chunk_size": 128, "chunk_overlap": 32})
    names = [x.collection_name() for x in (a, b, c, d)]
    assert len(set(names)) == 4
    assert all(3 <= len(n) <= 63 and n[0].isalnum() and n[-1].isalnum() for n in names)


def test_stats_on_an_empty_data_dir_creates_nothing(tmp_path: Path) -> None:
    import os

    data = tmp_path / "empty"
    out = subprocess.run([sys.executable, "-m", "assistant.cli", "stats", "--json"], check=True,
                         capture_output=True, text=True, env={**os.environ, "LITASSIST_DATA_DIR": str(data)}).stdout
    assert json.loads(out)["papers"] == 0
    assert not (data / "index").exists()
