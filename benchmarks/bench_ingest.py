"""Ingest benchmark: full ingest of a corpus into a fresh data dir with an empty embedding cache,
then the bare encoder on exactly the same chunk texts (the floor ingest can approach).

    python benchmarks/bench_ingest.py ../shared/corpus/hf-daily-papers
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from assistant.embedders.local import OnnxMiniLM
from assistant.index import Index
from assistant.settings import Settings
from ingest.pipeline import ingest


def main(corpus: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp) / "data", cache_dir=Path(tmp) / "cache")
        t0 = time.perf_counter()
        report = ingest([Path(corpus)], settings)
        total = time.perf_counter() - t0
        again = ingest([Path(corpus)], settings)
        texts = [c.embed_text for c in Index.open(settings).registry.chunks()]
    enc = OnnxMiniLM()
    t1 = time.perf_counter()
    for start in range(0, len(texts), 32):
        enc.embed(sorted(texts, key=len)[start : start + 32])
    bare = time.perf_counter() - t1
    print(f"papers={report.total_papers} chunks={report.total_chunks} embedded={report.embedded}")
    print(f"ingest (cold, empty cache): {total:.1f} s  ({report.total_chunks / total:.1f} chunks/s)")
    print(f"bare encoder, same {len(texts)} chunks, batch 32 length-sorted: {bare:.1f} s "
          f"({len(texts) / bare:.1f} chunks/s)")
    print(f"ingest overhead over the encoder: {total - bare:.1f} s ({100 * (total - bare) / total:.0f}% of ingest)")
    print(f"re-ingest (unchanged): {again.seconds:.2f} s, new={again.new}, embedded={again.embedded}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/corpus/hf-daily-papers")
