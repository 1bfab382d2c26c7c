"""User-facing errors.

The library raises these; each front end (CLI, Gradio, Slack) converts them once into a one-line
message. Anything that is *not* a :class:`LitassistError` is a bug and may show a traceback.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_KEYLIKE = re.compile(r"\b(sk|key|xox[a-z]|xapp)-[A-Za-z0-9_*\-.]{4,}", re.IGNORECASE)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with the given secrets and anything shaped like an API key or Slack token masked."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return _KEYLIKE.sub(lambda m: f"{m.group(1)}-***", text)


class LitassistError(Exception):
    """Base class of every error a user is meant to read. ``str(err)`` is one line."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).split()))


class ConfigError(LitassistError):
    """A setting is missing or invalid (names the setting or environment variable)."""


class InputError(LitassistError):
    """An input file or record cannot be read (names the file and line/record)."""


class StoreError(LitassistError):
    """The index on disk cannot be opened or read (a corrupt registry file; names the file)."""


class IndexMissingError(LitassistError):
    """The index is empty or absent; the message gives the command that builds it."""


class BackendError(LitassistError):
    """An LLM / embedding backend failed (endpoint down, timeout, bad reply)."""


class MissingExtraError(LitassistError, ImportError):
    """An optional dependency is not installed; the message names the pip extra."""

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"{module} is not installed; install the optional extra: pip install 'litassist[{extra}]'"
        )


class FilterError(LitassistError):
    """A retrieval filter is malformed (e.g. since > until, a non-numeric year)."""
