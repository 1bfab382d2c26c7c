"""``litassist eval --cv K`` and ``litassist judge fit``: bodies and the in-sample / out-of-fold table."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from evals.crossval import CVResult
from evals.intervals import LEVEL, RATES, RESAMPLES, bootstrap_intervals
from evals.report import LABELS, fmt
from evals.scores import QuestionScore, summarise

CV_COLUMNS = (
    "recall_at_10", "cited_precision", "cited_recall", "fact_coverage", "refusal_rate", "false_refusal_rate",
    "invalid_citations", "unsupported_numbers", "uncited_sentences",
)  # fmt: skip
COUNTS = ("invalid_citations", "unsupported_numbers")  # summed per run, not rates


def cell(value: Any, key: str) -> str:
    """A table cell: a count averaged over splits keeps two decimals (0.00), not a rate's three."""
    if key in COUNTS and isinstance(value, float):
        return f"{value:.2f}"
    return fmt(value, key)


def groups(rows: Sequence[QuestionScore], files: dict[str, str]) -> list[tuple[str, list[QuestionScore]]]:
    """All rows, then per question file, then per kind."""
    out: list[tuple[str, list[QuestionScore]]] = [("all", list(rows))]
    for name in dict.fromkeys(files.values()):
        out.append((f"file {name}", [r for r in rows if files.get(r.id) == name]))
    for kind in ("list", "lookup", "compare", "unanswerable"):
        part = [r for r in rows if r.kind == kind]
        if part:
            out.append((f"kind {kind}", part))
    return out


def mean_metrics(parts: Sequence[Sequence[QuestionScore]]) -> dict[str, float | None]:
    """Each of :data:`CV_COLUMNS` averaged over ``parts`` (the same questions scored in several runs);
    None where no run measures it."""
    runs = [summarise(p) for p in parts]
    out: dict[str, float | None] = {}
    for k in CV_COLUMNS:
        vals = [float(v) for r in runs if (v := r[k]) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def cv_table(result: CVResult, files: dict[str, str]) -> list[dict[str, Any]]:
    """One row per (group, in-sample | out-of-fold [| out-of-fold mean over the repeated splits]) with
    the main metrics; out-of-fold rows carry ``ci``, each rate's bootstrap interval over the questions."""
    table: list[dict[str, Any]] = []
    oof = dict(groups(result.out_of_fold.rows, files))
    repeated = [dict(groups(run.rows, files)) for run in result.repeated]
    for name, rows in groups(result.in_sample.rows, files):
        for label, part in (("in-sample", rows), ("out-of-fold", oof[name])):
            table.append({"group": name, "fit": label, "n": len(part), **{k: summarise(part)[k] for k in CV_COLUMNS}})
        table[-1]["ci"] = bootstrap_intervals(oof[name])
        if repeated:
            table.append({"group": name, "fit": f"out-of-fold, mean of {len(repeated)} splits", "n": len(rows),
                          **mean_metrics([r[name] for r in repeated])})
    return table


def markdown(table: Sequence[dict[str, Any]], folds: int, splits: int = 0) -> str:
    """The table as Markdown."""
    head = ["group", "fit", "n", *(LABELS[c][0] for c in CV_COLUMNS)]
    title = f"# litassist eval --cv {folds}" + (f" --splits {splits}" if splits else "")
    lines = [title, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        cells = [row["group"], row["fit"], str(row["n"]), *(cell(row[c], c) for c in CV_COLUMNS)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"{LEVEL:.0%} intervals of the main split's out-of-fold rates (percentile bootstrap over each "
              "group's questions, each kind resampled within itself: the uncertainty from question sampling alone):", "",
              "| group | n | " + " | ".join(LABELS[c][0] for c in RATES) + " |", "|" + "---|" * (len(RATES) + 2)]
    for row in table:
        if "ci" in row:
            lines.append(f"| {row['group']} | {row['n']} | " + " | ".join(spread(row, c) for c in RATES) + " |")
    return "\n".join(lines) + "\n"


def spread(row: dict[str, Any], key: str) -> str:
    """'0.712 (0.630-0.790)': a rate with its interval; 'n/a' where nothing measures it."""
    ci = row["ci"].get(key)
    return "n/a" if ci is None else f"{fmt(row[key], key)} ({ci[0]:.3f}-{ci[1]:.3f})"


def _runner(backend: str | None = None, k: int | None = None) -> Any:
    from assistant.cli import _settings
    from evals.runner import Runner

    return Runner(_settings(), backend=backend, k=k)


def run_cv_command(
    question_files: Sequence[Path], *, folds: int, train_only: Sequence[Path], backend: str | None, k: int | None,
    json_out: Path | None, md_out: Path | None, splits: int = 0,
) -> None:
    """Cross-validate the judgement on the question files and print in-sample next to out-of-fold."""
    from rich.console import Console
    from rich.table import Table

    from evals.crossval import cross_validate
    from evals.questions import load_questions

    files: dict[str, str] = {}
    questions = []
    for f in question_files:
        for q in load_questions(f):
            files[q.id] = f.name
            questions.append(q)
    extra = [q for f in train_only for q in load_questions(f)]
    result = cross_validate(_runner(backend, k), questions, folds=folds, train_only=extra, splits=splits)
    table = cv_table(result, files)
    out = Console()
    if not out.is_terminal:
        out.width = max(out.width, 200)
    more = f"; mean of {splits} more fold splits" if splits else ""
    view = Table(title=f"judgement cross-validation ({folds} folds, stratified by kind{more})")
    for col in ("group", "fit", "n", *(LABELS[c][0] for c in CV_COLUMNS)):
        view.add_column(col, justify="left" if col in ("group", "fit") else "right")
    for row in table:
        view.add_row(row["group"], row["fit"], str(row["n"]), *(cell(row[c], c) for c in CV_COLUMNS))
    out.print(view)
    main = next(row for row in table if "ci" in row)
    out.print(f"{LEVEL:.0%} bootstrap intervals, all questions, out-of-fold on the main split "
              f"(fold seed {result.out_of_fold.config.get('cv_seed')}): "
              + ", ".join(f"{LABELS[c][0]} {spread(main, c)}" for c in RATES))
    if json_out:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        data = {"folds": folds, "splits": splits, "cv_seed": result.out_of_fold.config.get("cv_seed"),
                "ci_level": LEVEL, "ci_resamples": RESAMPLES, "table": table,
                "out_of_fold": [r.to_dict() for r in result.out_of_fold.rows],
                "in_sample": [r.to_dict() for r in result.in_sample.rows],
                "repeated": [{"cv_seed": run.config.get("cv_seed"), "rows": [r.to_dict() for r in run.rows]}
                             for run in result.repeated]}
        json_out.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    if md_out:
        md_out.parent.mkdir(parents=True, exist_ok=True)
        md_out.write_text(markdown(table, folds, splits), encoding="utf-8")


def run_fit_command(question_files: Sequence[Path], out: Path, train_only: Sequence[Path] = ()) -> None:
    """Fit the judgement on every question of the files (and of the ``train_only`` files, as
    :func:`~evals.crossval.cross_validate` adds them to every fold) and write the parameter file."""
    from assistant.errors import InputError
    from evals.crossval import examples_for
    from evals.questions import load_questions
    from evals.training import fit, mark_refusal_only

    questions = [q for f in question_files for q in load_questions(f)]
    extra = [q for f in train_only for q in load_questions(f)]
    runner = _runner()
    examples = examples_for(runner, questions) + mark_refusal_only(examples_for(runner, extra))
    params = fit(examples, sources=[f.name for f in [*question_files, *train_only]])
    try:
        out.write_text(params.to_json() + "\n", encoding="utf-8")
    except OSError as err:
        raise InputError(f"{out}: cannot write ({err.strerror or err})") from None
    print(f"wrote {out}: refuse below {params.answer_threshold:.2f}, cite papers at {params.include_threshold:.3f}+ "
          f"({params.fitted['questions']} training rows)")
