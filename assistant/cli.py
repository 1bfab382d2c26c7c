"""The ``litassist`` command line. Heavy modules are imported inside each command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from assistant.errors import LitassistError

if TYPE_CHECKING:
    from assistant.settings import Settings

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="litassist: cited answers from ML paper listings, offline.",
)


def _settings() -> Settings:
    from assistant.settings import load_settings

    return load_settings()


def _err(msg: str) -> None:
    from assistant.text import terminal_safe

    typer.echo(terminal_safe(f"litassist: {msg}"), err=True)


@app.command()
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Listing files or folders.")],
    rebuild: Annotated[bool, typer.Option("--rebuild", help="Drop the index and start over.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Parse listings and index their papers (idempotent, incremental)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from assistant.errors import InputError
    from ingest.pipeline import ingest as run_ingest

    settings = _settings()
    console = Console(stderr=True)
    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        console=console, transient=True, disable=as_json or not console.is_terminal,
    ) as progress:
        task = progress.add_task("embedding", total=0)
        phases = iter(["embedding", "writing"] if rebuild else ["embedding"])  # a rebuild embeds all, then writes

        def start(total: int) -> None:
            progress.reset(task, total=total, description=next(phases, "writing"))

        try:
            report = run_ingest(
                paths, settings, rebuild=rebuild, on_start=start, on_progress=lambda n: progress.advance(task, n),
            )
        except InputError as err:  # bad input (a refused --rebuild): exit 1, as for skipped input
            _err(str(err))
            raise typer.Exit(1) from None
    from assistant.settings import remember_data_dir

    remember_data_dir(settings.data_dir)
    for skip in report.skipped:
        _err(f"skipped {skip}")
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(
            f"[bold]ingested[/] {report.files} files, {report.entries} entries -> {report.papers} papers: "
            f"{report.new} new, {report.updated} updated, {report.unchanged} unchanged"
            + (f", {report.repaired} repaired" if report.repaired else "")
            + f"; {report.chunks} chunks written, {report.embedded} embedded"
            + (f" (+{report.pieces_backfilled} for word pieces, once)" if report.pieces_backfilled else "")
            + "; "
            f"{len(report.skipped)} skipped; {report.seconds:.1f}s. "
            f"Index: {report.total_papers} papers, {report.total_chunks} chunks.",
            highlight=False,
        )
    if report.skipped:
        raise typer.Exit(1)


@app.command()
def stats(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Papers and chunks in the index."""
    from assistant.errors import IndexMissingError
    from assistant.index import Index

    settings = _settings()
    try:
        data = Index.open(settings).stats()
    except IndexMissingError as err:  # report zeros, and do not create an empty index folder
        data = {"papers": 0, "chunks": 0, "vectors": 0, "collection": settings.collection_name(),
                "data_dir": str(settings.data_dir), "hint": str(err)}
    if as_json:
        typer.echo(json.dumps(data, indent=2))
    else:
        for key, value in data.items():
            typer.echo(f"{key:16} {value}")


@app.command()
def config(as_json: Annotated[bool, typer.Option("--json", help="Print as JSON.")] = False) -> None:
    """Print the effective settings (secrets masked)."""
    settings = _settings()
    data = settings.masked()
    data["effective_llm_backend"] = settings.llm_backend()
    data["collection"] = settings.collection_name()
    if as_json:
        typer.echo(json.dumps(data, indent=2, default=str))
        return

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
        else:
            typer.echo(f"{prefix:32} {value}")

    walk("", data)


llm_app = typer.Typer(no_args_is_help=True, help="The local LLM (llama.cpp server).")
app.add_typer(llm_app, name="llm")


@llm_app.command("serve")
def llm_serve(
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to bind (keep 127.0.0.1 unless you mean to expose it).")] = "127.0.0.1",
) -> None:
    """Run the local model's llama.cpp server in the foreground (OpenAI API at http://HOST:PORT/v1)."""
    from assistant.llama_server import model_path, require_xllamacpp, serve, threads

    settings = _settings()
    require_xllamacpp()
    path = model_path(settings)
    typer.echo(f"point clients at http://{host}:{port}/v1 (LITASSIST_LLM__BASE_URL); Ctrl-C stops", err=True)
    serve(path, port=port, host=host, n_ctx=settings.llm.context_window, n_threads=threads(settings))


def _register_optional_commands() -> None:
    """Commands added by later modules (ask, eval, ui, slack) register here if present."""
    import importlib

    for mod in ("assistant.cli_ask", "assistant.cli_chat", "evals.cli", "ui.cli"):
        try:
            importlib.import_module(mod).register(app)
        except ModuleNotFoundError as err:
            if err.name != mod:
                raise


def _usage_error(err: BaseException) -> tuple[str, int] | None:
    """A command-line usage error as (one line, exit status), whichever click raised it.

    Typer vendors its own copy of click (``typer._click``) whose exceptions are not the separately
    installed ``click``'s, so the check is by shape: a ``ClickException`` of either copy."""
    if not any(cls.__name__ == "ClickException" for cls in type(err).__mro__):
        return None
    message = " ".join(str(getattr(err, "format_message", lambda: str(err))()).split())
    ctx = getattr(err, "ctx", None)
    command = getattr(ctx, "command_path", "") if ctx is not None else ""
    hint = f" (see `{command} --help`)" if command else ""
    return f"{message}{hint}", int(getattr(err, "exit_code", 2) or 2)


def main(argv: Optional[list[str]] = None) -> None:  # noqa: UP045 - typer entry point
    """Console-script entry point: one-line errors, no tracebacks for user errors."""
    _register_optional_commands()
    try:
        rc = app(args=argv, standalone_mode=False)
        if isinstance(rc, int) and rc:
            sys.exit(rc)
    except LitassistError as err:
        _err(str(err))
        sys.exit(2)
    except KeyboardInterrupt:
        _err("interrupted; run the same command again to complete (nothing is duplicated)")
        sys.exit(130)
    except typer.Exit as ex:
        sys.exit(ex.exit_code)
    except Exception as err:
        usage = _usage_error(err)
        if usage is None:
            raise
        _err(usage[0])
        sys.exit(usage[1])
    sys.exit(0)


if __name__ == "__main__":
    main()
