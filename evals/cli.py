"""``litassist eval``: run a question file through ask() and score it (registered by assistant.cli)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from evals.questions import Question


def register(app: typer.Typer) -> None:
    """Add the ``eval`` command to ``app``."""

    @app.command("eval")
    def eval_command(
        questions: Annotated[
            list[Path] | None,
            typer.Option("--questions", help="Question file (JSON Lines, see evals/README.md); repeatable."),
        ] = None,
        backend: Annotated[str | None, typer.Option(help="Answer backend (default: settings).")] = None,
        k: Annotated[int | None, typer.Option("--k", help="Papers retrieved per question (default: settings).")] = None,
        mode: Annotated[str | None, typer.Option(help="Retrieval mode: hybrid, dense or bm25.")] = None,
        json_out: Annotated[Path | None, typer.Option("--json", help="Write the JSON report here.")] = None,
        md_out: Annotated[Path | None, typer.Option("--md", help="Write the Markdown report here.")] = None,
        plot: Annotated[Path | None, typer.Option("--plot", help="Write a PNG chart of metrics per kind.")] = None,
        judge: Annotated[str, typer.Option(help="Sentence support judge: none, or llm (needs an endpoint).")] = "none",
        compare: Annotated[
            str | None,
            typer.Option(help="Comma list of modes to run side by side, e.g. dense,bm25,hybrid (+ llamaindex-default)."),
        ] = None,
        cv: Annotated[
            int | None,
            typer.Option("--cv", help="K-fold cross-validation of the judgement: out-of-fold next to in-sample figures."),
        ] = None,
        train_only: Annotated[
            list[Path] | None,
            typer.Option("--train-only", help="With --cv: question files added to every fold's training, never scored "
                         "(answerable ones train the refusal decision only)."),
        ] = None,
        splits: Annotated[
            int,
            typer.Option("--splits", min=0, help="With --cv: also average out-of-fold figures over N more fold splits."),
        ] = 0,
        beir: Annotated[Path | None, typer.Option("--beir", help="BEIR folder: score retrieval per mode.")] = None,
        split: Annotated[str, typer.Option("--split", help="BEIR split: test, train or dev.")] = "test",
        ids: Annotated[Path | None, typer.Option("--ids", help="Only the question ids listed in this file (one a line, # comments).")] = None,
    ) -> None:
        """Score question files (retrieval, citations, grounding, facts, refusals, latency) or a BEIR folder."""
        if cv is None and (splits or train_only):
            from assistant.errors import ConfigError

            flags = " and ".join(f for f, on in (("--splits", splits), ("--train-only", train_only)) if on)
            raise ConfigError(f"{flags} need{'s' if ' and ' not in flags else ''} --cv K (cross-validation options)")
        if beir is not None or not questions:
            from evals.beir import run_beir_command

            run_beir_command(beir, split=split, compare=compare, json_out=json_out, md_out=md_out)
            return
        if cv is not None:
            from evals.cv_report import run_cv_command

            run_cv_command(questions, folds=cv, train_only=train_only or [], backend=backend, k=k,
                           json_out=json_out, md_out=md_out, splits=splits)
            return
        run_eval_command(
            questions, backend=backend, k=k, mode=mode, json_out=json_out, md_out=md_out, plot=plot,
            judge=judge, compare=compare, ids=ids,
        )

    judge_app = typer.Typer(no_args_is_help=True, help="Fit the judgement (refusal, paper and sentence models).")
    app.add_typer(judge_app, name="judge")

    @judge_app.command("fit")
    def judge_fit(
        questions: Annotated[list[Path], typer.Option("--questions", help="Question files to fit on; repeatable.")],
        out: Annotated[Path, typer.Option("--out", help="Where to write the parameter file.")],
        train_only: Annotated[
            list[Path] | None,
            typer.Option("--train-only", help="Training-only question files, as `eval --cv` adds them; repeatable."),
        ] = None,
    ) -> None:
        """Fit the judgement on question files against the current index and write its parameters."""
        from evals.cv_report import run_fit_command

        run_fit_command(questions, out, train_only or [])


def select_ids(qs: list[Question], ids_file: Path) -> list[Question]:
    """The questions whose ids ``ids_file`` lists (one a line, ``#`` comments), in the file's order."""
    from assistant.errors import InputError

    try:
        wanted = [w for w in (ln.split("#")[0].strip() for ln in ids_file.read_text().splitlines()) if w]
    except OSError as err:
        raise InputError(f"{ids_file}: cannot read ({err.strerror or err})") from None
    by_id = {q.id: q for q in qs}
    if missing := [w for w in wanted if w not in by_id]:
        raise InputError(f"{ids_file}: unknown question ids {', '.join(missing)}")
    return [by_id[w] for w in wanted]


def _write(path: Path, writer: Callable[..., None], *args: object) -> None:
    from assistant.errors import InputError

    try:
        writer(*args, path)
    except OSError as err:
        raise InputError(f"{path}: cannot write ({err.strerror or err})") from None


def run_eval_command(
    questions_files: list[Path],
    *,
    backend: str | None = None,
    k: int | None = None,
    mode: str | None = None,
    json_out: Path | None = None,
    md_out: Path | None = None,
    plot: Path | None = None,
    judge: str = "none",
    compare: str | None = None,
    ids: Path | None = None,
) -> None:
    """The body of ``litassist eval`` (raises :class:`~assistant.errors.LitassistError` on bad input)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from assistant.cli import _settings
    from assistant.errors import ConfigError
    from assistant.retrieval import MODES
    from evals import report
    from evals.baseline import NAME
    from evals.questions import load_questions
    from evals.runner import JUDGES, Runner, parse_modes

    qs = [q for f in questions_files for q in load_questions(f)]  # bad files fail before anything heavy opens
    if ids is not None:
        qs = select_ids(qs, ids)
    questions_file = ", ".join(str(f) for f in questions_files)
    if judge not in JUDGES:
        raise ConfigError(f"--judge {judge!r} is not one of {', '.join(JUDGES)}")
    if mode is not None and mode not in MODES:
        raise ConfigError(f"--mode {mode!r} is not one of {', '.join(MODES)}")
    modes = parse_modes(compare) if compare else []
    if compare and not [m for m in modes if m != NAME]:
        raise ConfigError(f"--compare needs at least one of {', '.join(MODES)}")
    settings = _settings()
    runner = Runner(settings, backend=backend, k=k, judge=judge)

    err = Console(stderr=True)
    out = Console()
    if not out.is_terminal:
        out.width = max(out.width, 180)  # keep wide tables readable in logs and pipes
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[qid]}"), console=err, transient=True, disable=not err.is_terminal,
    ) as progress:
        task = progress.add_task("eval", total=len(qs), qid="")

        def start(name: str) -> None:
            progress.reset(task, total=len(qs), description=name, qid="")

        def advance(q: object) -> None:
            progress.update(task, advance=1, qid=getattr(q, "id", ""))

        if modes:
            runs = runner.compare(qs, modes, progress=advance, on_start=start)
            wanted = mode or settings.retrieval.mode
            answering = [r for r in runs if not r.retrieval_only]
            primary = next((r for r in answering if r.name == wanted), answering[0])
        else:
            start(mode or settings.retrieval.mode)
            runs = []
            primary = runner.run(qs, mode, progress=advance)

    for line in runner.warnings:
        err.print(f"warning: {line}", highlight=False, markup=False)
    doc = report.document(primary, questions_file=str(questions_file), warnings=runner.warnings, comparison=runs)
    report.print_summary(out, doc)
    if json_out:
        _write(json_out, report.write_json, doc)
        err.print(f"wrote {json_out}", highlight=False, markup=False)
    if md_out:
        _write(md_out, report.write_markdown, report.markdown(doc, primary))
        err.print(f"wrote {md_out}", highlight=False, markup=False)
    if plot:
        from evals.chart import plot_by_kind

        _write(plot, lambda by_kind, path: plot_by_kind(by_kind, path, f"litassist eval ({primary.name})"),
               doc["by_kind"])
        err.print(f"wrote {plot}", highlight=False, markup=False)
