"""``litassist chat``: a conversation in the terminal, follow-ups included ("Which of them…", "Any others?").

Reads one question per line from standard input (a ``> `` prompt when it is a terminal), streams each
answer with its sources, and passes the earlier turns to ``ask()`` as history. ``/new`` starts a new
conversation, ``/quit`` (or end of input) leaves. A question that cannot be answered (a bad filter, an
unreachable LLM) is one line on standard error, and the conversation goes on.
"""

from __future__ import annotations

import sys

import typer

from assistant.cli_ask import BACKEND, MODE, SINCE, SOURCE, UNTIL, K

HISTORY_MESSAGES = 12  # earlier messages handed to ask(), as the Gradio chat does
NEW, QUIT = ("/new", "/reset"), ("/quit", "/exit", "/q")


def register(app: typer.Typer) -> None:
    @app.command()
    def chat(
        k: K = None, since: SINCE = None, until: UNTIL = None, source: SOURCE = None, backend: BACKEND = None,
        mode: MODE = None,
    ) -> None:
        """Ask questions one per line, follow-ups included; /new starts over, /quit leaves."""
        from assistant.answering import get_assistant
        from assistant.cli import _err, _settings
        from assistant.cli_ask import print_streamed, streamed_tail
        from assistant.errors import LitassistError
        from assistant.models import Filters

        settings = _settings()
        assistant = get_assistant(settings)  # the index opens once, before the first question
        filters = Filters(since=since, until=until, source=source)
        tty = sys.stdin.isatty()
        if tty:
            typer.echo("Ask about the indexed papers; follow-ups see the conversation. /new starts over, /quit leaves.",
                       err=True)
        history: list[dict[str, object]] = []
        while True:
            if tty:
                sys.stderr.write("> ")
                sys.stderr.flush()
            line = sys.stdin.readline()
            if not line:
                break
            question = line.strip()
            if not question:
                continue
            if question.lower() in QUIT:
                break
            if question.lower() in NEW:
                history = []
                typer.echo("-- new conversation")
                continue
            if question.startswith("/") and " " not in question:
                _err(f"unknown command {question}: /new starts a new conversation, /quit leaves")
                continue
            try:
                run = assistant.stream(question, k=k, filters=filters, backend=backend, mode=mode,
                                       history=history[-HISTORY_MESSAGES:])
                print_streamed(run)
                answer = run.result()
            except LitassistError as err:
                _err(str(err))
                continue
            typer.echo(streamed_tail(answer) + "\n")
            history += [{"role": "user", "content": question}, answer.as_turn()]
