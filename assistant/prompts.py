"""Prompt templates, loaded from the ``prompts`` package's text files."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def template(name: str) -> str:
    """The text of ``prompts/<name>.txt``."""
    return resources.files("prompts").joinpath(f"{name}.txt").read_text(encoding="utf-8")


def render(name: str, **values: object) -> str:
    """Fill a template with ``str.format``-style values."""
    return template(name).format(**values).strip()
