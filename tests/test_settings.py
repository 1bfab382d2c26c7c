"""Settings: env prefix, nested sections, TOML file, masking, derived names."""

from __future__ import annotations

import json
import os
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


@pytest.mark.parametrize(
    ("files", "env", "message"),
    [
        ({"litassist.toml": b"[retrieval\nk = 5\n"}, {}, "litassist.toml: not valid TOML: "),
        ({"litassist.toml": b"\xff\xfe[retrieval]\n"}, {}, "litassist.toml: not UTF-8 text (byte 0)"),
        ({".env": b"\xff\xfe=bad\n"}, {}, ".env: not UTF-8 text (byte 0)"),
        ({"litassist.toml": b"[retrieval]\nkk = 5\n"}, {}, "litassist.toml: unknown setting retrieval.kk"),
        ({"litassist.toml": b"[retrieval]\nk = 'many'\n"}, {}, "setting retrieval.k: Input should be a valid integer"),
        ({}, {"LITASSIST_CONFIG": "nowhere.toml"}, "LITASSIST_CONFIG=nowhere.toml: no such file"),
        # B11: the variable is named (was 'settings: error parsing value for field "retrieval" from source
        # "EnvSettingsSource"'), and a folder is not called a missing file
        ({}, {"LITASSIST_RETRIEVAL": "{bad"}, "setting retrieval: not valid JSON: Expecting property name"),
        ({"conf.d/x": b""}, {"LITASSIST_CONFIG": "conf.d"}, "LITASSIST_CONFIG=conf.d: is a folder, not a TOML file"),
        # B7: an empty or file data dir was '.' or a traceback at the first write
        ({}, {"LITASSIST_DATA_DIR": ""}, "setting data_dir: Value error, is empty"),
        ({"afile": b"x"}, {"LITASSIST_DATA_DIR": "afile"}, "setting data_dir: Value error, afile is a file, not a folder"),
        ({"afile": b"x"}, {"LITASSIST_CACHE_DIR": "afile/sub"}, "setting cache_dir: Value error, afile/sub lies under afile"),
    ],
)
def test_a_bad_config_file_or_value_is_one_line_naming_it(
    files: dict[str, bytes], env: dict[str, str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # these were tracebacks (TOML, encoding, JSON env) or silently ignored (unknown key, missing LITASSIST_CONFIG)
    from assistant.errors import ConfigError
    from assistant.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITASSIST_CONFIG", raising=False)
    for name, data in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(ConfigError) as err:
        load_settings()
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_a_bad_toml_value_names_the_file_not_an_unset_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.errors import ConfigError
    from assistant.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITASSIST_CONFIG", raising=False)
    (tmp_path / "litassist.toml").write_text("[retrieval]\nk = 'many'\n")
    with pytest.raises(ConfigError, match=r"\(in litassist.toml\)$"):
        load_settings()
    monkeypatch.setenv("LITASSIST_RETRIEVAL__K", "abc")  # the environment wins over the file: it is named
    with pytest.raises(ConfigError, match=r"\(LITASSIST_RETRIEVAL__K\)$"):
        load_settings()


def test_cli_reports_a_broken_config_file_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "litassist.toml").write_text("[retrieval\nk = 5\n")
    env = {k: v for k, v in os.environ.items() if k != "LITASSIST_CONFIG"}
    run = subprocess.run(
        [sys.executable, "-m", "assistant.cli", "config"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert run.returncode != 0
    assert run.stderr.startswith("litassist: litassist.toml: not valid TOML") and run.stderr.count("\n") == 1


def test_top_level_toml_names_in_any_case_are_accepted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITASSIST_CONFIG", raising=False)
    (tmp_path / "litassist.toml").write_text("[Retrieval]\nk = 3\n[LLM]\nbackend = 'openai'\n")
    s = load_settings()
    assert (s.retrieval.k, s.llm.backend) == (3, "openai")


def test_a_bad_value_from_dotenv_names_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.errors import ConfigError
    from assistant.settings import load_settings

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("LITASSIST_CONFIG", raising=False)
    (tmp_path / "litassist.toml").write_text("[retrieval]\nk = 3\n")  # valid: not the culprit
    (tmp_path / ".env").write_text("LITASSIST_RETRIEVAL__K=abc\n")
    with pytest.raises(ConfigError, match=r"\(LITASSIST_RETRIEVAL__K in .env\)$"):
        load_settings()


@pytest.mark.parametrize("command", [["stats"], ["ingest", "listing.jsonl"], ["ingest", "--rebuild", "listing.jsonl"]])
@pytest.mark.parametrize(("var", "value"), [("LITASSIST_DATA_DIR", "afile"), ("LITASSIST_DATA_DIR", "afile/data"),
                                            ("LITASSIST_CACHE_DIR", "afile"), ("LITASSIST_DATA_DIR", "")])
def test_a_data_or_cache_dir_that_cannot_be_a_folder_is_one_line_naming_it(
    tmp_path: Path, command: list[str], var: str, value: str
) -> None:
    # B7: FileExistsError in the ingest lock plus AttributeError '_fh' from its __del__; stats said 0 papers;
    # an empty LITASSIST_DATA_DIR meant the current directory
    (tmp_path / "afile").write_text("x")
    (tmp_path / "listing.jsonl").write_text('{"title": "A", "abstract": "x"}\n')
    env = {**os.environ, var: value}
    run = subprocess.run([sys.executable, "-m", "assistant.cli", *command], capture_output=True, text=True,
                         cwd=tmp_path, env=env)
    assert run.returncode != 0 and "Traceback" not in run.stderr and "Exception ignored" not in run.stderr, run.stderr
    assert run.stderr.startswith("litassist: ") and run.stderr.count("\n") == 1, run.stderr
    assert f"({var})" in run.stderr
    assert not (tmp_path / "index").exists() and not (tmp_path / "chroma").exists()


def test_the_ingest_lock_names_the_variable_when_the_data_dir_cannot_be_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from assistant.errors import ConfigError
    from assistant.locking import WriteLock, make_folder

    unraisable: list[object] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    (tmp_path / "afile").write_text("x")
    for target in (tmp_path / "afile", tmp_path / "afile" / "sub"):
        with pytest.raises(ConfigError, match=r"^LITASSIST_DATA_DIR=.*afile"):
            WriteLock(target)
    import gc

    gc.collect()
    assert unraisable == [], "the half-made lock's __del__ raised"
    with pytest.raises(ConfigError, match=r"^LITASSIST_CACHE_DIR=.*: is a file"):
        make_folder(tmp_path / "afile", "LITASSIST_CACHE_DIR")
