"""Eval reports: the JSON document, the Markdown report, and the rich tables printed at the end."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from evals.scores import METRICS

if TYPE_CHECKING:
    from rich.console import Console

    from evals.runner import EvalRun

LABELS = {
    "recall_at_10": ("recall@10", "answerable questions: share of gold papers in the top 10, averaged"),
    "mrr": ("MRR@10", "answerable questions: 1/rank of the first gold paper"),
    "ndcg_at_10": ("nDCG@10", "answerable questions, binary relevance"),
    "cited_precision": ("cited precision", "answerable questions: cited papers that are gold (refusal = 0)"),
    "cited_recall": ("cited recall", "answerable questions: gold papers cited (refusal = 0)"),
    "invalid_citations": ("invalid citations", "count: citation numbers mapping to no retrieved paper"),
    "uncited_sentences": ("uncited sentences", "share of answer sentences without a citation (pooled)"),
    "unsupported_numbers": ("unsupported numbers", "count: numbers absent from every cited abstract"),
    "support_rate": ("support rate (proxy)", "cited sentences backed by a cited abstract: lexical or embedding proxy"),
    "llm_support_rate": ("LLM support rate", "cited sentences an LLM judge says the cited abstracts entail"),
    "fact_coverage": ("fact coverage", "lookup/compare questions: share of answer facts in the answer"),
    "refusal_rate": ("refusal rate", "unanswerable questions refused"),
    "false_refusal_rate": ("false refusal rate", "answerable questions refused"),
    "latency_p50_ms": ("latency p50 (ms)", "wall time of ask() per question"),
    "latency_p95_ms": ("latency p95 (ms)", "wall time of ask() per question"),
}
COMPARE_COLUMNS = (
    "recall_at_10", "mrr", "ndcg_at_10", "cited_precision", "cited_recall", "fact_coverage", "support_rate",
    "refusal_rate", "false_refusal_rate", "latency_p50_ms",
)  # fmt: skip
RETRIEVAL = ("recall_at_10", "mrr", "ndcg_at_10")
KIND_COLUMNS = (
    "recall_at_10", "mrr", "cited_precision", "cited_recall", "fact_coverage", "support_rate", "refusal_rate",
    "false_refusal_rate", "latency_p50_ms",
)  # fmt: skip


def fmt(value: Any, key: str = "") -> str:
    """A metric value for a table: 'n/a' for None, counts as ints, ms with 1 decimal, rates with 3."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.1f}" if key.endswith("_ms") else f"{value:.3f}"
    return str(value)


def comparison_rows(runs: Sequence[EvalRun]) -> list[dict[str, Any]]:
    """One row per pipeline; a retrieval-only pipeline has None outside the retrieval metrics."""
    out = []
    for run in runs:
        metrics = run.metrics
        row: dict[str, Any] = {"name": run.name}
        for key in COMPARE_COLUMNS:
            row[key] = metrics[key] if (key in RETRIEVAL or not run.retrieval_only) else None
        out.append(row)
    return out


def document(
    run: EvalRun, *, questions_file: str, warnings: Sequence[str] = (), comparison: Sequence[EvalRun] = ()
) -> dict[str, Any]:
    """The JSON report: every metric as a top-level key, plus by_kind, questions, worst, comparison."""
    doc: dict[str, Any] = dict(run.metrics)
    doc["config"] = {"questions_file": questions_file, **run.config}
    doc["by_kind"] = run.by_kind
    doc["questions"] = [r.to_dict() for r in run.rows]
    doc["worst"] = [{"id": r.id, "kind": r.kind, "quality": round(r.quality, 4), "reasons": r.reasons}
                    for r in run.worst()]
    doc["warnings"] = list(warnings)
    if comparison:
        doc["comparison"] = comparison_rows(comparison)
    doc["definitions"] = {key: LABELS[key][1] for key in METRICS}
    return doc


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


# --- Markdown -------------------------------------------------------------------------------------
def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    def cell(text: str) -> str:
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return lines


def _comparison_md(rows: Sequence[dict[str, Any]]) -> list[str]:
    header = ["pipeline", *(LABELS[c][0] for c in COMPARE_COLUMNS)]
    return _md_table(header, [[r["name"], *(fmt(r[c], c) for c in COMPARE_COLUMNS)] for r in rows])


def markdown(doc: dict[str, Any], run: EvalRun) -> str:
    """The Markdown report for a :func:`document` and its run."""
    cfg = doc["config"]
    kinds = ", ".join(f"{len([r for r in run.rows if r.kind == k])} {k}" for k in doc["by_kind"])
    lines = [
        "# litassist eval report", "",
        f"Questions: `{cfg['questions_file']}` ({doc['n_questions']}: {kinds}) · backend `{cfg.get('backend')}` · "
        f"mode `{cfg.get('mode')}` · k {cfg.get('k')} · judge `{cfg.get('judge')}` · {cfg.get('papers')} papers "
        f"indexed · embedder `{cfg.get('embedding_model')}`", "",
        "## Overall", "",
    ]
    lines += _md_table(["metric", "value", "definition"], [[LABELS[k][0], fmt(doc[k], k), LABELS[k][1]] for k in METRICS])
    lines += [
        "",
        f"*support rate is a proxy*, not entailment: a cited sentence counts as supported when ≥"
        f"{cfg.get('support_lexical_threshold')} of its content terms occur in one sentence of a cited abstract, "
        f"or its cosine similarity to a cited paper's best chunk is ≥{cfg.get('support_cosine_threshold')}.",
        "", "## By kind", "",
    ]
    lines += _md_table(
        ["kind", "n", *(LABELS[c][0] for c in KIND_COLUMNS)],
        [[k, str(v["n_questions"]), *(fmt(v[c], c) for c in KIND_COLUMNS)] for k, v in doc["by_kind"].items()],
    )
    for kind in doc["by_kind"]:
        rows = [q for q in doc["questions"] if q["kind"] == kind]
        lines += ["", f"### {kind} ({len(rows)} questions)", ""]
        lines += _md_table(
            ["id", "refused", "recall@10", "RR", "cited P", "cited R", "facts", "supported", "ms", "question"],
            [
                [q["id"], fmt(q["refused"]), fmt(q["recall"]), fmt(q["rr"]), fmt(q["cited_precision"]),
                 fmt(q["cited_recall"]), f"{len(q['facts_hit'])}/{len(q['facts'])}" if q["facts"] else "n/a",
                 f"{q['supported_sentences']}/{q['cited_sentences']}" if q["cited_sentences"] else "n/a",
                 fmt(q["latency_ms"], "_ms"), q["question"]]
                for q in rows
            ],
        )
    lines += ["", "## Worst questions", ""]
    by_id = {q["id"]: q for q in doc["questions"]}
    for n, w in enumerate(doc["worst"], start=1):
        lines.append(f"{n}. **{w['id']}** ({w['kind']}, quality {w['quality']:.2f}): {by_id[w['id']]['question']}")
        lines += [f"   - {reason}" for reason in w["reasons"]]
    if not doc["worst"]:
        lines.append("No question scored below perfect.")
    if doc.get("comparison"):
        lines += ["", "## Comparison", "", "Same questions, one pipeline per row. `llamaindex-default` is "
                  "llama-index's default vector retriever over the same Chroma collection and embedder "
                  "(retrieval metrics only).", ""]
        lines += _comparison_md(doc["comparison"])
    if doc["warnings"]:
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in doc["warnings"]]
    return "\n".join(lines) + "\n"


def write_markdown(text: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


# --- terminal -------------------------------------------------------------------------------------
def print_summary(console: Console, doc: dict[str, Any]) -> None:
    """The end-of-run tables: overall metrics, per kind, and the comparison when there is one."""
    from rich.table import Table

    cfg = doc["config"]
    table = Table(title=f"eval: {doc['n_questions']} questions · {cfg.get('backend')} · {cfg.get('mode')}")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("over")
    for key in METRICS:
        if key == "llm_support_rate" and doc[key] is None:
            continue
        table.add_row(LABELS[key][0], fmt(doc[key], key), LABELS[key][1])
    console.print(table)
    kinds = Table(title="by kind")
    kinds.add_column("kind")
    kinds.add_column("n", justify="right")
    for col in KIND_COLUMNS:
        kinds.add_column(LABELS[col][0], justify="right")
    for kind, vals in doc["by_kind"].items():
        kinds.add_row(kind, str(vals["n_questions"]), *(fmt(vals[c], c) for c in KIND_COLUMNS))
    console.print(kinds)
    if doc.get("comparison"):
        print_comparison(console, doc["comparison"])


def print_comparison(console: Console, rows: Sequence[dict[str, Any]]) -> None:
    """Rows = pipelines, columns = the main metrics."""
    from rich.table import Table

    table = Table(title="comparison (same questions)")
    table.add_column("pipeline", no_wrap=True)
    for col in COMPARE_COLUMNS:
        table.add_column(LABELS[col][0], justify="right")
    for row in rows:
        table.add_row(row["name"], *(fmt(row[c], c) for c in COMPARE_COLUMNS))
    console.print(table)
