"""The paper registry: papers and chunks of one collection in SQLite, beside the Chroma index.

Chroma holds vectors; the registry holds what the papers are. A paper row is written only after its
chunks are in Chroma, so an interrupted ingest leaves papers the next run simply completes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from assistant.models import Chunk, Paper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
  id TEXT PRIMARY KEY, title_norm TEXT NOT NULL, content_hash TEXT NOT NULL, data TEXT NOT NULL,
  gen INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS papers_title ON papers(title_norm);
CREATE TABLE IF NOT EXISTS chunks (
  id TEXT PRIMARY KEY, paper_id TEXT NOT NULL, idx INTEGER NOT NULL, text TEXT NOT NULL, embed_text TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS chunks_paper ON chunks(paper_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class Registry:
    """SQLite registry of papers and chunks (one file per collection)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        if "gen" not in {r[1] for r in self._db.execute("PRAGMA table_info(papers)")}:  # registries before it
            self._db.execute("ALTER TABLE papers ADD COLUMN gen INTEGER NOT NULL DEFAULT 0")
        self._db.execute("CREATE INDEX IF NOT EXISTS papers_gen ON papers(gen)")

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _select_in(self, sql: str, ids: list[str]) -> Iterator[tuple[object, ...]]:
        """Rows of ``sql`` (with ``{marks}`` for the placeholders) for ``ids``, 500 at a time."""
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            yield from self._db.execute(sql.format(marks=",".join("?" * len(part))), part)

    # --- papers ---------------------------------------------------------------------------
    def get(self, paper_id: str) -> Paper | None:
        row = self._db.execute("SELECT data FROM papers WHERE id=?", (paper_id,)).fetchone()
        return Paper.model_validate_json(row[0]) if row else None

    def id_for_title(self, title_norm: str) -> str | None:
        row = self._db.execute("SELECT id FROM papers WHERE title_norm=?", (title_norm,)).fetchone()
        return row[0] if row else None

    def missing(self, ids: list[str]) -> list[str]:
        """The ``ids`` that name no registered paper."""
        have = {str(r[0]) for r in self._select_in("SELECT id FROM papers WHERE id IN ({marks})", ids)}
        return [i for i in ids if i not in have]

    def get_many(self, ids: list[str]) -> dict[str, Paper]:
        """The registered papers among ``ids``, by id."""
        rows = self._select_in("SELECT data FROM papers WHERE id IN ({marks})", ids)
        papers = (Paper.model_validate_json(str(r[0])) for r in rows)
        return {p.id: p for p in papers}

    def paper_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM papers ORDER BY id")]

    def keyword_rows(self, since_generation: int = -1) -> Iterator[tuple[str, str, int | None, list[str]]]:
        """(id, title + abstract, year, sources) of every paper written after ``since_generation``
        (default: all), without building Paper objects."""
        rows = self._db.execute(
            "SELECT id, json_extract(data, '$.title') || char(10) || json_extract(data, '$.abstract'), "
            "json_extract(data, '$.year'), json_extract(data, '$.sources') FROM papers WHERE gen > ? ORDER BY id",
            (since_generation,),
        )
        for pid, text, year, sources in rows:
            yield pid, text, year, json.loads(sources) if sources else []

    def sources(self) -> list[str]:
        """Every listing file name any paper came from."""
        rows = self._db.execute(
            "SELECT DISTINCT j.value FROM papers, json_each(json_extract(papers.data, '$.sources')) AS j"
        )
        return sorted(r[0] for r in rows)

    def papers(self) -> list[Paper]:
        rows = self._db.execute("SELECT data FROM papers ORDER BY id").fetchall()
        return [Paper.model_validate_json(r[0]) for r in rows]

    def write(self, paper: Paper, title_norm: str, chunks: Iterable[Chunk] | None) -> None:
        """Insert or replace a paper; when ``chunks`` is given they replace the paper's chunks."""
        with self.transaction() as db:
            self._bump(db)  # the row records the generation that wrote it (incremental BM25 reads it)
            db.execute(
                "INSERT OR REPLACE INTO papers(id, title_norm, content_hash, data, gen) VALUES "
                "(?,?,?,?,(SELECT CAST(value AS INTEGER) FROM meta WHERE key='generation'))",
                (paper.id, title_norm, paper.content_hash, paper.model_dump_json()),
            )
            if chunks is not None:
                db.execute("DELETE FROM chunks WHERE paper_id=?", (paper.id,))
                db.executemany(
                    "INSERT INTO chunks(id, paper_id, idx, text, embed_text) VALUES (?,?,?,?,?)",
                    [(c.id, c.paper_id, c.index, c.text, c.embed_text) for c in chunks],
                )

    def clear(self) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM papers")
            db.execute("DELETE FROM chunks")
            self._bump(db)

    # --- chunks ---------------------------------------------------------------------------
    def chunk_ids(self, paper_id: str | None = None) -> list[str]:
        if paper_id is None:
            return [r[0] for r in self._db.execute("SELECT id FROM chunks ORDER BY id")]
        return [r[0] for r in self._db.execute("SELECT id FROM chunks WHERE paper_id=? ORDER BY idx", (paper_id,))]

    def chunks(self) -> list[Chunk]:
        rows = self._db.execute("SELECT id, paper_id, idx, text, embed_text FROM chunks ORDER BY paper_id, idx")
        return [Chunk(id=r[0], paper_id=r[1], index=r[2], text=r[3], embed_text=r[4]) for r in rows]

    def known_chunks(self, ids: list[str]) -> set[str]:
        """The registered chunk ids among ``ids``."""
        return {str(r[0]) for r in self._select_in("SELECT id FROM chunks WHERE id IN ({marks})", ids)}

    def chunk(self, chunk_id: str) -> Chunk | None:
        r = self._db.execute("SELECT id, paper_id, idx, text, embed_text FROM chunks WHERE id=?", (chunk_id,)).fetchone()
        return Chunk(id=r[0], paper_id=r[1], index=r[2], text=r[3], embed_text=r[4]) if r else None

    def chunk_ids_of(self, paper_ids: list[str]) -> dict[str, list[str]]:
        """Chunk ids of each of ``paper_ids`` in order, in one query per 500 papers (papers without
        chunks are absent)."""
        out: dict[str, list[str]] = {}
        rows = self._select_in("SELECT paper_id, id FROM chunks WHERE paper_id IN ({marks}) ORDER BY paper_id, idx", paper_ids)
        for pid, cid in rows:
            out.setdefault(str(pid), []).append(str(cid))
        return out

    def chunks_of(self, paper_id: str) -> list[Chunk]:
        rows = self._db.execute(
            "SELECT id, paper_id, idx, text, embed_text FROM chunks WHERE paper_id=? ORDER BY idx", (paper_id,)
        )
        return [Chunk(id=r[0], paper_id=r[1], index=r[2], text=r[3], embed_text=r[4]) for r in rows]

    # --- counts and generation --------------------------------------------------------------
    def counts(self) -> tuple[int, int]:
        papers = self._db.execute("SELECT COUNT(*) FROM papers").fetchone()[0]
        chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(papers), int(chunks)

    def generation(self) -> int:
        """Bumped on every write; the BM25 sidecar records the generation it was built from."""
        row = self._db.execute("SELECT value FROM meta WHERE key='generation'").fetchone()
        return int(row[0]) if row else 0

    def get_meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, key: str, value: object) -> None:
        self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES (?,?)", (key, json.dumps(value)))

    def delete_meta(self, key: str) -> None:
        self._db.execute("DELETE FROM meta WHERE key=?", (key,))

    @staticmethod
    def _bump(db: sqlite3.Connection) -> None:
        db.execute(
            "INSERT INTO meta(key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )
