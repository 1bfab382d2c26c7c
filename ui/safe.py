"""Text from papers made safe to show in a front end (Gradio HTML, Slack mrkdwn).

Titles, abstracts and listing names are data from outside: a U+202E in an abstract would reorder what a
reader sees (Trojan Source), and an ANSI escape or other control character has no business on a page or
in a Slack message. :func:`display_safe` removes them as the CLI does (:func:`assistant.text.terminal_safe`:
C0/C1 controls except tab and newline, whole escape sequences, bidi overrides, embeddings, isolates and
marks), plus U+061C ARABIC LETTER MARK, the one Unicode bidi control that function keeps.
"""

from __future__ import annotations

from assistant.text import terminal_safe

_EXTRA_BIDI = {0x061C: None}  # ARABIC LETTER MARK


def display_safe(text: str) -> str:
    """``text`` without control characters, escape sequences or bidi controls (tabs and newlines kept)."""
    return terminal_safe(text).translate(_EXTRA_BIDI)
