"""The paper registry: papers and chunks of one collection in SQLite, beside the Chroma index.

Chroma holds vectors for search; the registry holds what the papers are (and a copy of each chunk's
vector, which scoring a question reads for its candidate papers in one query: Chroma's ``get`` costs
~0.1 ms per id). A paper row is written only after its chunks are in Chroma, so an interrupted ingest
leaves papers the next run simply completes.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from assistant.errors import LitassistError, StoreError
from assistant.locking import BusyError
from assistant.models import Chunk, Paper

_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
  id TEXT PRIMARY KEY, title_norm TEXT NOT NULL, content_hash TEXT NOT NULL, data TEXT NOT NULL,
  gen INTEGER NOT NULL DEFAULT 0, vec BLOB
);
CREATE INDEX IF NOT EXISTS papers_title ON papers(title_norm);
CREATE TABLE IF NOT EXISTS chunks (
  id TEXT PRIMARY KEY, paper_id TEXT NOT NULL, idx INTEGER NOT NULL, text TEXT NOT NULL, embed_text TEXT NOT NULL,
  vec BLOB
);
CREATE INDEX IF NOT EXISTS chunks_paper ON chunks(paper_id);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


_ARXIV = "json_extract(data, '$.arxiv_id')"  # indexed (papers_arxiv): queries must use this very expression


def _reason(err: BaseException) -> str:
    return " ".join(str(getattr(err, "strerror", None) or err).split())


def _open_error(path: Path, err: sqlite3.Error) -> LitassistError:
    """The one-line error for ``err`` met opening the registry at ``path``: busy (another process holds
    it locked: try again), corrupt (not a database, malformed: only then moving it away is the advice),
    or another failure to open it (no permission, disk error)."""
    reason = _reason(err)
    if isinstance(err, sqlite3.OperationalError) and ("locked" in reason or "busy" in reason):
        return BusyError(f"{path}: the paper registry is busy ({reason}: another process is writing it); try again")
    if isinstance(err, sqlite3.DatabaseError) and not isinstance(err, sqlite3.OperationalError):
        return StoreError(
            f"{path}: the paper registry cannot be read ({reason}); move it away, then ingest your listings again"
        )
    return StoreError(f"{path}: cannot open the paper registry ({reason})")


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


class Registry:
    """SQLite registry of papers and chunks (one file per collection)."""

    def __init__(self, path: Path) -> None:
        """Open (or create) the registry at ``path``. A file that is not a SQLite registry (not a
        database, malformed) is a one-line :class:`~assistant.errors.StoreError` naming it; one that
        another process holds locked past the wait is a one-line :class:`~assistant.locking.BusyError`."""
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        except (OSError, sqlite3.Error) as err:
            raise StoreError(f"{path}: cannot open the paper registry ({_reason(err)})") from None
        try:
            self._open()
        except sqlite3.Error as err:
            self._db.close()
            raise _open_error(path, err) from None

    def _open(self) -> None:
        """Set the connection up and bring the tables of a registry written by an earlier version up to
        date. The columns are added by any process opening it (readers read them); an index only
        ingest's lookups use is created by ingest, under its write lock (:meth:`ensure_arxiv_index`)."""
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._add_column("papers", "gen INTEGER NOT NULL DEFAULT 0")  # registries before each of these
        self._db.execute("CREATE INDEX IF NOT EXISTS papers_gen ON papers(gen)")
        self._add_column("papers", "vec BLOB")  # the vector copies
        self._add_column("chunks", "vec BLOB")
        self._add_column("papers", "tok BLOB")  # token bits
        self._db.execute("CREATE INDEX IF NOT EXISTS papers_no_tok ON papers(id) WHERE tok IS NULL")

    def ensure_arxiv_index(self) -> None:
        """Create the index :meth:`ids_for_arxiv` reads in a registry written before it (ingest calls
        this under its write lock; a question never writes the registry for it). A locked registry is a
        one-line :class:`~assistant.locking.BusyError`."""
        try:
            self._add_index("papers_arxiv", f"papers({_ARXIV})")
        except sqlite3.Error as err:
            raise _open_error(self.path, err) from None

    def _add_index(self, name: str, target: str) -> None:
        """Create index ``name`` on ``target`` ('table(expression)') in a registry written before it
        (checked again inside the transaction, as :meth:`_add_column`)."""
        exists = "SELECT 1 FROM sqlite_master WHERE type='index' AND name=?"
        if self._db.execute(exists, (name,)).fetchone():
            return
        with self.transaction() as db:
            if not db.execute(exists, (name,)).fetchone():
                db.execute(f"CREATE INDEX {name} ON {target}")

    def _add_column(self, table: str, column: str) -> None:
        """Add ``column`` (name and type) to ``table`` of a registry written before it. Checked again
        inside the transaction: two processes may open such a registry at once (the second added it
        again: 'duplicate column name')."""
        name = column.split()[0]
        if name in {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}:
            return
        with self.transaction() as db:
            if name not in {r[1] for r in db.execute(f"PRAGMA table_info({table})")}:
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column}")

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

    def ids_for_title(self, title_norm: str) -> list[str]:
        """Every registered paper of normalised title ``title_norm``, first registered first."""
        rows = self._db.execute("SELECT id FROM papers WHERE title_norm=? ORDER BY rowid", (title_norm,))
        return [str(r[0]) for r in rows]

    def ids_for_arxiv(self, arxiv_id: str) -> list[str]:
        """Every registered paper whose record holds the arXiv id ``arxiv_id`` (whatever id it is filed
        under: a paper first seen without its arXiv id keeps its title hash), first registered first."""
        rows = self._db.execute(f"SELECT id FROM papers WHERE {_ARXIV}=? ORDER BY rowid", (arxiv_id,))
        return [str(r[0]) for r in rows]

    def title_keys(self) -> list[tuple[str, str, str]]:
        """(id, stored normalised title, title) of every paper."""
        rows = self._db.execute("SELECT id, title_norm, json_extract(data, '$.title') FROM papers ORDER BY rowid")
        return [(str(r[0]), str(r[1]), str(r[2] or "")) for r in rows]

    def set_title_keys(self, keys: dict[str, str]) -> None:
        """Store new normalised titles of existing papers (no generation bump: readers never use them)."""
        with self.transaction() as db:
            db.executemany("UPDATE papers SET title_norm=? WHERE id=?", [(k, pid) for pid, k in keys.items()])

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

    def write(
        self,
        paper: Paper,
        title_norm: str,
        chunks: Iterable[Chunk] | None,
        vectors: np.ndarray | None = None,
        text_vectors: np.ndarray | None = None,
        token_bits: np.ndarray | None = None,
    ) -> None:
        """Insert or replace a paper; when ``chunks`` is given they replace the paper's chunks (with
        ``vectors``, one row per chunk: the vectors stored for them in the vector store).
        ``text_vectors`` are the vectors of the paper's title and abstract sentences, in order (kept
        when not given); ``token_bits`` the packed sign bits of their word pieces, all texts' rows
        one after another (kept when not given and the content is unchanged, else dropped until the
        backfill of :meth:`assistant.index.Index.ensure_token_copies`)."""
        with self.transaction() as db:
            self._bump(db)  # the row records the generation that wrote it (incremental BM25 reads it)
            db.execute(
                "INSERT INTO papers(id, title_norm, content_hash, data, gen, vec, tok) VALUES "
                "(?,?,?,?,(SELECT CAST(value AS INTEGER) FROM meta WHERE key='generation'),?,?) "
                "ON CONFLICT(id) DO UPDATE SET title_norm=excluded.title_norm, content_hash=excluded.content_hash, "
                "data=excluded.data, gen=excluded.gen, vec=COALESCE(excluded.vec, papers.vec), "
                "tok=CASE WHEN excluded.tok IS NOT NULL OR papers.content_hash <> excluded.content_hash "
                "THEN excluded.tok ELSE papers.tok END",  # bits of changed content are never kept
                (paper.id, title_norm, paper.content_hash, paper.model_dump_json(),
                 None if text_vectors is None else _blob(text_vectors),
                 None if token_bits is None else np.asarray(token_bits, dtype=np.uint8).tobytes()),
            )  # fmt: skip
            if chunks is not None:
                db.execute("DELETE FROM chunks WHERE paper_id=?", (paper.id,))
                rows = list(chunks)
                blobs = [_blob(v) for v in vectors] if vectors is not None else [None] * len(rows)
                db.executemany(
                    "INSERT INTO chunks(id, paper_id, idx, text, embed_text, vec) VALUES (?,?,?,?,?,?)",
                    [(c.id, c.paper_id, c.index, c.text, c.embed_text, b) for c, b in zip(rows, blobs, strict=True)],
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

    def chunk_vectors_of(self, paper_ids: list[str]) -> dict[str, list[tuple[str, np.ndarray | None]]]:
        """(chunk id, stored vector or None) of each of ``paper_ids``' chunks in order, in one query per
        500 papers (papers without chunks are absent; None: a row written before vectors were kept)."""
        out: dict[str, list[tuple[str, np.ndarray | None]]] = {}
        rows = self._select_in(
            "SELECT paper_id, id, vec FROM chunks WHERE paper_id IN ({marks}) ORDER BY paper_id, idx", paper_ids
        )
        for pid, cid, vec in rows:
            found = np.frombuffer(vec, np.float32) if isinstance(vec, bytes) else None
            out.setdefault(str(pid), []).append((str(cid), found))
        return out

    def text_vectors_of(self, paper_ids: list[str]) -> dict[str, np.ndarray]:
        """The stored title + sentence vectors of those of ``paper_ids`` that have them, each flat
        (the caller, who knows how many texts a paper has, gives them their shape), in one query per
        500 papers."""
        rows = self._select_in("SELECT id, vec FROM papers WHERE id IN ({marks}) AND vec IS NOT NULL", paper_ids)
        return {str(pid): np.frombuffer(vec, np.float32) for pid, vec in rows if isinstance(vec, bytes)}

    def papers_without_vectors(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of papers whose row does not hold its title/sentence vectors yet."""
        return [str(r[0]) for r in self._db.execute("SELECT id FROM papers WHERE vec IS NULL LIMIT ?", (limit,))]

    def set_text_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Store the title/sentence vectors of existing papers (no generation bump)."""
        with self.transaction() as db:
            db.executemany("UPDATE papers SET vec=? WHERE id=?", [(_blob(v), pid) for pid, v in vectors.items()])

    def token_bits_of(self, paper_ids: list[str], width: int) -> dict[str, np.ndarray]:
        """The stored word-piece sign bits (rows of ``width`` bytes) of those of ``paper_ids`` that have
        them, in one query per 500 papers."""
        rows = self._select_in("SELECT id, tok FROM papers WHERE id IN ({marks}) AND tok IS NOT NULL", paper_ids)
        return {str(pid): np.frombuffer(tok, np.uint8).reshape(-1, width) for pid, tok in rows if isinstance(tok, bytes)}

    def papers_without_tokens(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of papers whose row does not hold its word-piece bits yet."""
        return [str(r[0]) for r in self._db.execute("SELECT id FROM papers WHERE tok IS NULL LIMIT ?", (limit,))]

    def set_token_bits(self, bits: dict[str, np.ndarray]) -> None:
        """Store the word-piece bits of existing papers (no generation bump)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE papers SET tok=? WHERE id=?", [(np.asarray(b, np.uint8).tobytes(), pid) for pid, b in bits.items()]
            )

    def chunks_without_vectors(self, limit: int) -> list[str]:
        """Up to ``limit`` ids of chunk rows that do not hold their vector yet."""
        return [str(r[0]) for r in self._db.execute("SELECT id FROM chunks WHERE vec IS NULL LIMIT ?", (limit,))]

    def set_chunk_vectors(self, vectors: dict[str, np.ndarray]) -> None:
        """Store the vectors of existing chunk rows (no generation bump: nothing a reader sees changes)."""
        with self.transaction() as db:
            db.executemany("UPDATE chunks SET vec=? WHERE id=?", [(_blob(v), cid) for cid, v in vectors.items()])

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
