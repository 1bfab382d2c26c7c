"""Split abstracts into chunks with llama-index's SentenceSplitter on tiktoken token counts.

Every chunk is embedded together with the paper's title, and is re-split until title + chunk fits
the embedder's own token limit, so no abstract text is ever silently truncated by the model.
"""

from __future__ import annotations

from collections.abc import Callable

from assistant.models import Chunk, Paper
from assistant.offline import ensure_offline, tiktoken_encoding


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
