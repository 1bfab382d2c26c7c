"""Retrieval evaluation on a BEIR-format folder: nDCG@10, recall@10/100, MRR@10 and latency per mode.

A BEIR folder holds ``corpus.jsonl`` (``_id``/``id``, ``title``, ``text``/``abstract``), the queries
(``queries.jsonl`` with ``_id``/``text``, or ``queries_<split>.jsonl`` with ``id``/``question``) and
the relevance judgements (``qrels/<split>.tsv`` or ``qrels_<split>.tsv``: query-id, corpus-id, score).
Corpus records keep their own ids as paper ids (see ``ingest/parsers/jsonl.py``), so the ranked paper
ids are compared with the qrels directly. The corpus is ingested first when the index lacks any of it.

Definitions (as BEIR / pytrec_eval): nDCG@10 with graded gains (the qrels score) and log2 discounts;
recall@k = relevant documents (score > 0) in the top k / all relevant; MRR@10 = 1 / rank of the first
relevant document in the top 10. Queries without a relevant document are left out.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from evals.metrics import recall_at, reciprocal_rank

DEPTH = 100  # papers retrieved per query (recall@100 needs 100)
COLUMNS = (
    ("ndcg_at_10", "nDCG@10"), ("recall_at_10", "recall@10"), ("recall_at_100", "recall@100"),
    ("mrr_at_10", "MRR@10"), ("latency_p50_ms", "p50 ms"), ("latency_p95_ms", "p95 ms"),
)  # fmt: skip


@dataclass
class BeirSet:
    """One split of a BEIR folder: the corpus file, the queries that have judgements, and the qrels."""

    folder: Path
    split: str
    corpus: Path
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]


@dataclass
class ModeResult:
    """Scores of one retrieval mode over every judged query."""

    mode: str
    metrics: dict[str, float]
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)


def _first(folder: Path, names: Sequence[str], what: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise InputError(f"{folder}: no {what} (looked for {', '.join(names)})")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    out = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise InputError(f"{path}: cannot read ({err})") from None
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as err:
            raise InputError(f"{path}:{number}: invalid JSON ({err})") from None
        if not isinstance(rec, dict):
            raise InputError(f"{path}:{number}: expected a JSON object")
        out.append(rec)
    return out


def _record_id(rec: dict[str, Any], path: Path, number: int) -> str:
    value = rec.get("_id", rec.get("id"))
    if not isinstance(value, str | int) or isinstance(value, bool) or not str(value).strip():
        raise InputError(f"{path}:{number}: record without an '_id' or 'id'")
    return " ".join(str(value).split())


def load_beir(folder: Path, split: str = "test") -> BeirSet:
    """Read a BEIR folder's queries and qrels for ``split`` (raises :class:`InputError` naming the file)."""
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder (expected a BEIR folder with corpus.jsonl, queries, qrels)")
    corpus = _first(folder, ["corpus.jsonl"], "corpus")
    qrels_file = _first(folder, [f"qrels/{split}.tsv", f"qrels_{split}.tsv"], f"qrels for split {split!r}")
    queries_file = _first(folder, [f"queries_{split}.jsonl", "queries.jsonl"], "queries")
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8", newline="") as fh:
        for number, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or (number == 1 and "query" in row[0].lower()):
                continue  # blank line or header
            if len(row) < 3 or not row[-1].strip().lstrip("-").isdigit():
                raise InputError(f"{qrels_file}:{number}: expected query-id, corpus-id, integer score")
            qid, did, score = row[0].strip(), row[-2].strip(), int(row[-1])
            qrels.setdefault(qid, {})[did] = score
    queries: dict[str, str] = {}
    for number, rec in enumerate(_read_jsonl(queries_file), 1):
        qid = _record_id(rec, queries_file, number)
        text = rec.get("text", rec.get("question"))
        if qid in qrels:
            if not isinstance(text, str) or not text.strip():
                raise InputError(f"{queries_file}:{number}: query {qid!r} has no 'text' or 'question'")
            queries[qid] = text
    judged = {q: docs for q, docs in qrels.items() if q in queries and any(s > 0 for s in docs.values())}
    if not judged:
        raise InputError(f"{qrels_file}: no judged query of split {split!r} appears in {queries_file.name}")
    return BeirSet(folder, split, corpus, {q: queries[q] for q in judged}, judged)


def corpus_ids(path: Path) -> list[str]:
    """The document ids of a BEIR ``corpus.jsonl`` (as paper ids)."""
    return [_record_id(rec, path, n) for n, rec in enumerate(_read_jsonl(path), 1)]


# --- metrics ------------------------------------------------------------------------------------
def ndcg_graded(ranked: Sequence[str], grades: dict[str, int], k: int = 10) -> float:
    """nDCG@k with graded gains (pytrec_eval's definition); 0 when nothing is relevant."""
    dcg = sum(grades.get(pid, 0) / math.log2(r + 1) for r, pid in enumerate(ranked[:k], start=1) if grades.get(pid, 0) > 0)
    ideal_gains = sorted((g for g in grades.values() if g > 0), reverse=True)[:k]
    ideal = sum(g / math.log2(r + 1) for r, g in enumerate(ideal_gains, start=1))
    return dcg / ideal if ideal else 0.0


def score_query(ranked: Sequence[str], grades: dict[str, int]) -> dict[str, float]:
    """Every metric of one query's ranking."""
    gold = [d for d, g in grades.items() if g > 0]
    return {
        "ndcg_at_10": ndcg_graded(ranked, grades, 10),
        "recall_at_10": recall_at(ranked, gold, 10) or 0.0,
        "recall_at_100": recall_at(ranked, gold, 100) or 0.0,
        "mrr_at_10": reciprocal_rank(ranked, gold, 10) or 0.0,
    }


def evaluate(
    search: Callable[[str], list[str]], beir: BeirSet, mode: str, progress: Callable[[], None] | None = None
) -> ModeResult:
    """Run every judged query through ``search`` (question -> ranked paper ids) and average."""
    per_query: dict[str, dict[str, float]] = {}
    latencies: list[float] = []
    for qid, text in beir.queries.items():
        t0 = time.perf_counter()
        ranked = search(text)
        latencies.append((time.perf_counter() - t0) * 1000)
        per_query[qid] = score_query(ranked, beir.qrels[qid])
        if progress:
            progress()
    metrics = {key: statistics.fmean(q[key] for q in per_query.values()) for key, _ in COLUMNS[:4]}
    latencies.sort()
    metrics["latency_p50_ms"] = statistics.median(latencies)
    metrics["latency_p95_ms"] = latencies[max(0, math.ceil(0.95 * len(latencies)) - 1)]
    return ModeResult(mode, metrics, per_query)


# --- reports ------------------------------------------------------------------------------------
def document(beir: BeirSet, results: Sequence[ModeResult], config: dict[str, Any]) -> dict[str, Any]:
    """The JSON report: config, one metrics row per mode, and per-query scores."""
    return {
        "benchmark": str(beir.folder), "split": beir.split, "queries": len(beir.queries), "config": config,
        "modes": {r.mode: {k: round(v, 4) for k, v in r.metrics.items()} for r in results},
        "per_query": {r.mode: r.per_query for r in results},
    }  # fmt: skip


def table(doc: dict[str, Any]) -> str:
    """The per-mode Markdown table."""
    lines = ["| mode | " + " | ".join(label for _, label in COLUMNS) + " |", "|---" * (len(COLUMNS) + 1) + "|"]
    for mode, m in doc["modes"].items():
        cells = [f"{m[k]:.1f}" if k.endswith("_ms") else f"{m[k]:.3f}" for k, _ in COLUMNS]
        lines.append(f"| {mode} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _chunking(cfg: dict[str, Any]) -> str:
    if cfg.get("chunking", "tokens") == "tokens":
        return f"{cfg['chunk_size']}/{cfg['chunk_overlap']} tokens"
    return f"of whole sentences, up to {cfg['chunk_size']} tokens"


def markdown(doc: dict[str, Any]) -> str:
    """The Markdown report."""
    cfg = doc["config"]
    return (
        f"# litassist BEIR eval\n\nBenchmark `{doc['benchmark']}`, split `{doc['split']}`: {doc['queries']} judged "
        f"queries over {cfg['papers']} indexed papers ({cfg['chunks']} chunks) · embedder `{cfg['embedding_model']}` · chunks "
        f"{_chunking(cfg)} · top {DEPTH} per query.\n\n{table(doc)}\n"
    )


# --- command ------------------------------------------------------------------------------------
def ensure_corpus(settings: Any, beir: BeirSet, say: Callable[[str], None]) -> dict[str, Any] | None:
    """Ingest the corpus when the index lacks any of its documents (an ingest is incremental)."""
    from assistant.stores.registry import Registry

    wanted = corpus_ids(beir.corpus)
    path = settings.index_dir() / "registry.sqlite"
    missing = len(wanted)
    if path.exists():
        registry = Registry(path)
        missing = len(registry.missing(wanted))
        registry.close()
    if missing:
        from ingest.pipeline import ingest

        say(f"ingesting {beir.corpus} ({missing} of {len(wanted)} documents not in the index)")
        report = ingest([beir.corpus], settings)
        for skip in report.skipped:
            say(f"skipped {skip}")
        say(f"ingested in {report.seconds:.1f}s: {report.total_chunks} chunks, {report.embedded} embedded")
        return {"seconds": round(report.seconds, 1), "chunks": report.total_chunks, "embedded": report.embedded}
    return None


def run_beir_command(
    folder: Path | None, *, split: str = "test", compare: str | None = None,
    json_out: Path | None = None, md_out: Path | None = None,
) -> dict[str, Any]:
    """The body of ``litassist eval --beir``: ingest if needed, score each mode, print and write reports."""
    import typer

    from assistant.cli import _settings
    from assistant.errors import ConfigError
    from assistant.index import Index
    from assistant.retrieval import MODES, Retriever

    if folder is None:
        raise ConfigError("litassist eval needs --questions FILE or --beir DIR")
    beir = load_beir(folder, split)
    modes = [m.strip() for m in (compare or ",".join(MODES)).split(",") if m.strip()]
    if bad := [m for m in modes if m not in MODES]:
        raise ConfigError(f"--compare: {', '.join(bad)} is not a retrieval mode ({', '.join(MODES)})")

    def say(line: str) -> None:
        typer.echo(line, err=True)

    settings = _settings()
    ingested = ensure_corpus(settings, beir, say)
    index = Index.open(settings)
    retriever = Retriever(index)
    results = []
    for mode in modes:
        index.forget_queries()  # each mode pays for its own query embeddings
        say(f"{mode}: {len(beir.queries)} queries")

        def search(question: str, mode: str = mode) -> list[str]:
            return [h.paper.id for h in retriever.retrieve(question, k=DEPTH, mode=mode)]

        results.append(evaluate(search, beir, mode))
    papers, chunks = index.registry.counts()
    ing = settings.ingest
    config = {
        "papers": papers, "chunks": chunks, "embedding_model": index.embedder.model_id, "chunking": ing.chunking,
        "chunk_size": ing.chunk_size,
        "chunk_overlap": ing.chunk_overlap, "retrieval": settings.retrieval.model_dump(mode="json"), "ingest": ingested,
    }  # fmt: skip
    doc = document(beir, results, config)
    typer.echo(table(doc))
    for path, text in ((json_out, json.dumps(doc, indent=2) + "\n"), (md_out, markdown(doc))):
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
            except OSError as err:
                raise InputError(f"{path}: cannot write ({err.strerror or err})") from None
            say(f"wrote {path}")
    return doc
