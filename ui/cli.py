"""``litassist ui`` and ``litassist slack``: thin launchers (front ends import lazily)."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the front-end commands to the CLI."""

    @app.command()
    def ui(
        host: Annotated[str | None, typer.Option(help="Bind address (default: ui.host, 127.0.0.1).")] = None,
        port: Annotated[int | None, typer.Option(help="Port (default: ui.port, 7860).")] = None,
    ) -> None:
        """Start the Gradio chat UI."""
        from assistant.cli import _settings
        from ui.gradio_app import launch

        settings = _settings()
        launch(settings, host=host or settings.ui.host, port=port or settings.ui.port)

    @app.command()
    def slack(
        http: Annotated[bool, typer.Option("--http", help="HTTP Events API mode.")] = False,
        socket: Annotated[bool, typer.Option("--socket", help="Socket Mode (default).")] = False,
    ) -> None:
        """Start the Slack bot (Socket Mode or HTTP Events API)."""
        from assistant.cli import _settings
        from ui.slack_bot import run

        settings = _settings()
        mode = "http" if http else "socket" if socket else settings.slack.mode
        run(settings, mode=mode)
