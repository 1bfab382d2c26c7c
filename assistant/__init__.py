"""litassist's answering library: ``from assistant import ask``.

Importing this package is cheap; ``ask``/``aask`` pull in retrieval and backends on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from assistant.answering import aask, ask
    from assistant.models import Answer

__all__ = ["Answer", "aask", "ask"]


def __getattr__(name: str) -> Any:
    if name in ("ask", "aask"):
        from assistant import answering

        return getattr(answering, name)
    if name == "Answer":
        from assistant.models import Answer

        return Answer
    raise AttributeError(name)
