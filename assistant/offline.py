"""Keep every library we use from reaching the network (called before heavy imports)."""

from __future__ import annotations

import importlib.util
import os
from functools import lru_cache
from pathlib import Path
from typing import Any


def _llama_index_tiktoken_cache() -> str | None:
    spec = importlib.util.find_spec("llama_index.core")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "_static" / "tiktoken_cache"
    return str(path) if path.is_dir() else None


def ensure_offline() -> None:
    """Point tiktoken at llama-index's bundled encodings and switch off hubs and telemetry."""
    cache = _llama_index_tiktoken_cache()
    if cache and not os.environ.get("TIKTOKEN_CACHE_DIR"):
        os.environ["TIKTOKEN_CACHE_DIR"] = cache
    for var, value in (
        ("HF_HUB_OFFLINE", "1"),
        ("TRANSFORMERS_OFFLINE", "1"),
        ("GRADIO_ANALYTICS_ENABLED", "False"),
        ("ANONYMIZED_TELEMETRY", "False"),
        ("TOKENIZERS_PARALLELISM", "false"),
        ("DO_NOT_TRACK", "1"),
    ):
        os.environ.setdefault(var, value)


@lru_cache(maxsize=1)
def tiktoken_encoding() -> Any:
    """cl100k_base from the bundled cache (never downloaded)."""
    ensure_offline()
    import tiktoken

    return tiktoken.get_encoding("cl100k_base")


def count_tokens(text: str) -> int:
    """tiktoken (cl100k_base) token count."""
    return len(tiktoken_encoding().encode(text, disallowed_special=()))
