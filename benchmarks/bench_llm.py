"""The local LLM against the extractive backend on a fixed 16-question subset (``make bench-llm``).

    python benchmarks/bench_llm.py [--backends local,extractive] [--evidence auto|abstracts|sentences]
                                   [--ids evals/llm_subset.txt] [--json artifacts/bench-llm.json]

The questions are read from ``../shared/evals/dev.jsonl`` and ``dev2.jsonl`` and picked by the ids in
``evals/llm_subset.txt`` (list, lookup, compare and unanswerable mixed). Each backend runs through the
eval suite's :class:`~evals.runner.Runner` (the code behind ``litassist eval``); the table adds the
first-token time of every answer. Uses LITASSIST_DATA_DIR (the seed corpus must be ingested there).
Timings on a shared 2-core machine are noisy: compare runs taken back to back.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from assistant.models import Answer
from assistant.settings import Settings
from evals.cli import select_ids
from evals.questions import Question, load_questions
from evals.runner import EvalRun, Runner

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "evals"
FILES = (SHARED / "dev.jsonl", SHARED / "dev2.jsonl")


class TimedRunner(Runner):
    """A Runner that keeps each answer's first-token time (ms) by question."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_token: dict[str, float] = {}

    def _ask(self, question: str, mode: str | None) -> Answer:
        answer = super()._ask(question, mode)
        self.first_token[question] = answer.timings.get("first_token_ms", 0.0)
        return answer


def subset(ids_file: Path) -> list[Question]:
    """The questions named in ``ids_file`` (one id a line, # comments), in that order."""
    return select_ids([q for f in FILES for q in load_questions(f)], ids_file)


def run(settings: Settings, backend: str, qs: list[Question]) -> tuple[EvalRun, dict[str, float]]:
    runner = TimedRunner(settings, backend=backend)
    result = runner.run(qs)
    return result, {q.id: runner.first_token.get(q.question, 0.0) for q in qs}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--backends", default="local,extractive")
    ap.add_argument("--evidence", default="auto", choices=["auto", "abstracts", "sentences"])
    ap.add_argument("--ids", type=Path, default=Path("evals/llm_subset.txt"))
    ap.add_argument("--json", type=Path)
    ap.add_argument("--prompt-sizes", action="store_true", help="Only count prompt tokens per evidence mode (no model).")
    args = ap.parse_args()
    if not all(f.is_file() for f in FILES):
        raise SystemExit(f"../shared is absent ({FILES[0]} not found)")
    qs = subset(args.ids)
    base = Settings()
    if args.prompt_sizes:
        print(prompt_sizes(base, qs))
        return
    settings = base.model_copy(update={"llm": base.llm.model_copy(update={"evidence": args.evidence})})
    results: dict[str, Any] = {}
    for backend in args.backends.split(","):
        result, first = run(settings, backend, qs)
        m = result.metrics
        rows = [
            {
                "id": r.id, "kind": r.kind, "refused": r.refused, "cited_p": r.cited_precision,
                "cited_r": r.cited_recall, "removed": len(r.invalid_citations),
                "unsupported": len(r.unsupported_numbers), "first_s": first[r.id] / 1000,
                "total_s": r.latency_ms / 1000,
            }
            for r in result.rows
        ]
        results[backend] = {"metrics": m, "rows": rows}
    print(table(results, qs))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n")


def prompt_sizes(settings: Settings, qs: list[Question]) -> str:
    """Prompt tokens (tiktoken, chat overhead included) of each question in both evidence modes."""
    from assistant.answering import get_assistant
    from assistant.backends.context import answer_context
    from assistant.evidence import Evidence

    assistant = get_assistant(settings)
    lines = ["| id | kind | abstracts: sources / prompt tokens | sentences: sources / prompt tokens |", "|---|---|---|---|"]
    totals = {"abstracts": 0, "sentences": 0}
    for q in qs:
        hits = assistant.retriever.retrieve(q.question)
        evidence = Evidence(assistant.index, q.question, hits)
        cells = []
        for mode in ("abstracts", "sentences"):
            ctx = answer_context(q.question, hits, settings.llm.model_copy(update={"evidence": mode}), evidence=evidence)
            totals[mode] += ctx.prompt_tokens
            cells.append(f"{len(ctx.sources)} / {ctx.prompt_tokens}")
        lines.append(f"| {q.id} | {q.kind} | " + " | ".join(cells) + " |")
    n = len(qs)
    lines.append(f"| mean | | {totals['abstracts'] / n:.0f} | {totals['sentences'] / n:.0f} |")
    return "\n".join(lines)


def _f(v: Any, digits: int = 2) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def table(results: dict[str, Any], qs: list[Question]) -> str:
    """Markdown: a summary row per backend, then per-question rows side by side."""
    names = list(results)
    lines = [
        "| backend | cited P | cited R | removed citations | unsupported numbers | refusal rate | false refusals "
        "| first token p50 (s) | total p50 (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in names:
        m, rows = results[name]["metrics"], results[name]["rows"]
        firsts = sorted(r["first_s"] for r in rows)
        totals = sorted(r["total_s"] for r in rows)
        lines.append(
            f"| {name} | {_f(m.get('cited_precision'))} | {_f(m.get('cited_recall'))} | "
            f"{sum(r['removed'] for r in rows)} | {sum(r['unsupported'] for r in rows)} | "
            f"{_f(m.get('refusal_rate'))} | {_f(m.get('false_refusal_rate'))} | "
            f"{_f(firsts[len(firsts) // 2], 2)} | {_f(totals[len(totals) // 2], 2)} |"
        )
    head = "| id | kind | " + " | ".join(
        f"{n}: refused | {n}: cited P/R | {n}: removed/unsupp. | {n}: first/total s" for n in names
    ) + " |"
    lines += ["", head, "|---|---|" + "---|" * (4 * len(names))]
    by = {n: {r["id"]: r for r in results[n]["rows"]} for n in names}
    for q in qs:
        cells = []
        for n in names:
            r = by[n][q.id]
            cells += [
                _f(r["refused"]), f"{_f(r['cited_p'])}/{_f(r['cited_r'])}", f"{r['removed']}/{r['unsupported']}",
                f"{_f(r['first_s'], 2)}/{_f(r['total_s'], 2)}",
            ]
        lines.append(f"| {q.id} | {q.kind} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
