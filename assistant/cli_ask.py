"""``litassist ask``: print a cited answer (or its JSON)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Annotated

import typer


def render_text(answer: object, with_text: bool = True) -> str:
    """The answer, a numbered source list and the backend, for a terminal."""
    from assistant.models import Answer

    assert isinstance(answer, Answer)
    lines = [answer.text, ""] if with_text else []
    if answer.citations:
        lines.append("Sources:")
        for c in answer.citations:
            meta = ", ".join(x for x in (c.date, c.url) if x)
            lines.append(f"  [{c.n}] {c.title}" + (f" ({meta})" if meta else ""))
    flags = []
    if answer.checks.uncited_sentences:
        flags.append(f"{len(answer.checks.uncited_sentences)} uncited sentence(s)")
    if answer.checks.unsupported_numbers:
        flags.append("numbers not in cited abstracts: " + ", ".join(answer.checks.unsupported_numbers))
    if answer.checks.removed_citations:
        flags.append("removed invalid citations: " + ", ".join(map(str, answer.checks.removed_citations)))
    label = answer.confidence_label()
    lines.append(
        f"-- backend: {answer.backend}" + (" (no LLM)" if answer.backend == "extractive" else "")
        + (f" · {label}" if label else "")
    )
    if flags:
        lines.append("-- checks: " + "; ".join(flags))
    return "\n".join(lines)


def print_streamed(run: Iterable[str]) -> None:
    """Write an answer's text deltas as they come (``ask --stream``, ``chat``); the caller then prints
    :func:`streamed_tail` of the result, so the whole reads as :func:`render_text` lays it out."""
    from assistant.text import terminal_safe

    for delta in run:
        sys.stdout.write(terminal_safe(delta))
        sys.stdout.flush()


def streamed_tail(answer: object) -> str:
    """What follows a streamed answer's text: a blank line, its sources and the backend line."""
    from assistant.text import terminal_safe

    return terminal_safe("\n\n" + render_text(answer, with_text=False))


# The options `ask` and `chat` share.
K = Annotated[int | None, typer.Option("--k", "-k", help="Papers to retrieve.")]
SINCE = Annotated[int | None, typer.Option(help="Only papers from this year on (listing gave a year).")]
UNTIL = Annotated[int | None, typer.Option(help="Only papers up to this year.")]
SOURCE = Annotated[str | None, typer.Option(help="Only papers from listings whose name contains this.")]
BACKEND = Annotated[str | None, typer.Option(help="extractive | openai | local (default: settings).")]
MODE = Annotated[str | None, typer.Option(help="Retrieval mode: hybrid | dense | bm25.")]


def register(app: typer.Typer) -> None:
    @app.command()
    def ask(
        question: Annotated[str, typer.Argument(help="Your question.")],
        k: K = None, since: SINCE = None, until: UNTIL = None, source: SOURCE = None, backend: BACKEND = None,
        mode: MODE = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the Answer as JSON.")] = False,
        stream: Annotated[bool, typer.Option("--stream/--no-stream", help="Stream text as it is generated.")] = False,
    ) -> None:
        """Answer QUESTION from the indexed papers, with numbered citations."""
        from assistant.answering import get_assistant
        from assistant.cli import _settings
        from assistant.models import Filters
        from assistant.text import terminal_safe

        settings = _settings()
        filters = Filters(since=since, until=until, source=source)
        run = get_assistant(settings).stream(question, k=k, filters=filters, backend=backend, mode=mode)
        if stream and not as_json:
            print_streamed(run)
            typer.echo(streamed_tail(run.result()))
            return
        answer = run.result()
        if as_json:
            typer.echo(json.dumps(answer.to_dict(), indent=2, ensure_ascii=False))
        else:
            typer.echo(terminal_safe(render_text(answer)))
