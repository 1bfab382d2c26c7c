"""Split abstracts into chunks, two ways (``ingest.chunking``):

- ``sentences`` (default): a chunk is a run of whole abstract sentences (up to ``chunk_size``
  tiktoken tokens, no overlap), and its vector is derived, not embedded: the token-weighted mean of
  its sentence vectors plus 0.3 x the title vector, normalised (:func:`derive_vectors`). The title and each sentence are
  embedded once (the judgement needs those vectors anyway), so nothing is embedded twice.
- ``tokens``: llama-index's SentenceSplitter on tiktoken counts, with overlap; every chunk is embedded
  together with the paper's title, and is re-split until title + chunk fits the embedder's own token
  limit, so no abstract text is ever silently truncated by the model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from assistant.models import Chunk, Paper
from assistant.offline import ensure_offline, tiktoken_encoding
from assistant.text import split_sentences

TITLE_WEIGHT = 0.3  # weight of the title vector in a derived chunk vector (mean of sentences = 1)


def embed_text(title: str, text: str) -> str:
    return f"{title}\n{text}"


class Chunker:
    """Sentence-aware chunker; ``fits`` tells whether a text is within the embedder's limit."""

    def __init__(self, chunk_size: int, chunk_overlap: int, fits: Callable[[str], bool]) -> None:
        ensure_offline()
        self.chunk_size = chunk_size
        self.chunk_overlap = min(chunk_overlap, chunk_size // 2)
        self.fits = fits
        self._splitters: dict[int, object] = {}

    def _split(self, text: str, size: int) -> list[str]:
        from llama_index.core.node_parser import SentenceSplitter

        if size not in self._splitters:
            enc = tiktoken_encoding()
            self._splitters[size] = SentenceSplitter(
                chunk_size=size,
                chunk_overlap=min(self.chunk_overlap, size // 2),
                tokenizer=lambda t: enc.encode(t, disallowed_special=()),
            )
        return [p for p in self._splitters[size].split_text(text) if p.strip()]  # type: ignore[attr-defined]

    def _fit(self, title: str, text: str, size: int) -> list[str]:
        if self.fits(embed_text(title, text)) or size <= 16:
            return [text]
        out: list[str] = []
        for part in self._split(text, size // 2):
            out.extend(self._fit(title, part, size // 2))
        return out

    def pieces(self, text: str) -> list[str]:
        """``text`` as it is, or split at sentence/word boundaries until each piece fits the embedder."""
        return self._fit("", text, self.chunk_size)

    def chunk(self, paper: Paper) -> list[Chunk]:
        """Chunks of ``paper`` with deterministic ids (paper id + content hash + position)."""
        pieces: list[str] = []
        for part in self._split(paper.abstract, self.chunk_size) or [paper.abstract]:
            pieces.extend(self._fit(paper.title, part, self.chunk_size))
        stamp = paper.content_hash[:12]
        return [
            Chunk(
                id=f"{paper.id}#{stamp}-{i}",
                paper_id=paper.id,
                index=i,
                text=piece,
                embed_text=embed_text(paper.title, piece),
            )
            for i, piece in enumerate(pieces)
        ]


class SentenceChunker:
    """Chunks made of whole sentences (see module docstring); ``count`` counts tiktoken tokens."""

    def __init__(self, chunk_size: int) -> None:
        ensure_offline()
        enc = tiktoken_encoding()
        self.chunk_size = chunk_size
        self.count: Callable[[str], int] = lambda t: len(enc.encode(t, disallowed_special=()))

    def groups(self, sizes: list[int]) -> list[list[int]]:
        """Sentence positions of each chunk, given the sentences' token counts: consecutive sentences
        packed up to ``chunk_size`` tokens (a longer sentence is a chunk of its own); one empty group
        when there are no sentences."""
        out: list[list[int]] = []
        size = self.chunk_size + 1
        for i, n in enumerate(sizes):
            if not out or size + n > self.chunk_size:
                out.append([])
                size = 0
            out[-1].append(i)
            size += n
        return out or [[]]

    def plan(self, paper: Paper) -> tuple[list[Chunk], list[list[int]], list[int]]:
        """The chunks of ``paper`` (ids as :class:`Chunker`'s), the sentence positions of each, and
        every sentence's token count."""
        sentences = split_sentences(paper.abstract)
        sizes = [self.count(s) for s in sentences]
        groups = self.groups(sizes)
        stamp = paper.content_hash[:12]
        chunks = []
        for i, group in enumerate(groups):
            text = " ".join(sentences[j] for j in group)
            chunks.append(
                Chunk(id=f"{paper.id}#{stamp}-{i}", paper_id=paper.id, index=i, text=text,
                      embed_text=embed_text(paper.title, text))
            )  # fmt: skip
        return chunks, groups, sizes


def derive_vectors(
    title: np.ndarray, sentences: np.ndarray, groups: list[list[int]], sizes: list[int] | None = None
) -> np.ndarray:
    """One unit vector per group: the mean of its sentence vectors, weighted by ``sizes`` (the sentences'
    token counts, as the model's own mean pooling weighs tokens; equal weights without them), plus
    ``TITLE_WEIGHT`` x the title vector (the title vector alone for an empty group)."""
    weights = np.asarray(sizes if sizes is not None else [1] * len(sentences), dtype=np.float32)
    rows = []
    for group in groups:
        mean = weights[group] @ sentences[group] / weights[group].sum() if group else np.zeros_like(title)
        v = mean + TITLE_WEIGHT * title
        norm = float(np.linalg.norm(v))
        rows.append(v / norm if norm else v)
    return np.stack(rows).astype(np.float32) if rows else np.zeros((0, len(title)), dtype=np.float32)
