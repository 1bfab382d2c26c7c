"""Eval question files: JSON Lines, one question per line (format documented in evals/README.md)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.errors import InputError

KINDS = ("list", "lookup", "compare", "unanswerable")
REQUIRED = ("id", "question", "kind")


@dataclass(frozen=True)
class Question:
    """One eval question with its gold papers (by title) and the facts a good answer states."""

    id: str
    question: str
    kind: str
    gold_titles: list[str] = field(default_factory=list)
    answer_facts: list[str] = field(default_factory=list)
    notes: str = ""
    line: int = 0

    @property
    def answerable(self) -> bool:
        return self.kind != "unanswerable"


def _string_list(value: Any, name: str, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InputError(f"{where}: field {name!r} must be a list of strings")
    return list(dict.fromkeys(v.strip() for v in value if v.strip()))  # drop blanks and duplicates


def parse_question(record: Any, where: str, line: int = 0) -> Question:
    """Validate one decoded record; ``where`` ('file:line') prefixes every error."""
    if not isinstance(record, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(record).__name__}")
    for name in REQUIRED:
        if name not in record:
            raise InputError(f"{where}: missing field {name!r}")
        if not isinstance(record[name], str) or not record[name].strip():
            raise InputError(f"{where}: field {name!r} must be a non-empty string")
    kind = record["kind"].strip()
    if kind not in KINDS:
        raise InputError(f"{where}: kind {kind!r} is not one of {', '.join(KINDS)}")
    notes = record.get("notes") or ""
    if not isinstance(notes, str):
        raise InputError(f"{where}: field 'notes' must be a string")
    return Question(
        id=record["id"].strip(),
        question=record["question"].strip(),
        kind=kind,
        gold_titles=_string_list(record.get("gold_titles"), "gold_titles", where),
        answer_facts=_string_list(record.get("answer_facts"), "answer_facts", where),
        notes=notes,
        line=line,
    )


def load_questions(path: Path | str) -> list[Question]:
    """Read a question file; any problem raises a one-line :class:`InputError` naming file and line."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: question file not found") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, expected a .jsonl question file") from None
    except UnicodeDecodeError as err:
        raise InputError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read ({err.strerror})") from None
    questions: list[Question] = []
    seen: dict[str, int] = {}
    for n, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{n}"
        try:
            record = json.loads(raw)
        except json.JSONDecodeError as err:
            raise InputError(f"{where}: malformed JSON ({err.msg} at column {err.colno})") from None
        q = parse_question(record, where, n)
        if q.id in seen:
            raise InputError(f"{where}: duplicate question id {q.id!r} (first on line {seen[q.id]})")
        seen[q.id] = n
        questions.append(q)
    if not questions:
        raise InputError(f"{path}: no questions (expected one JSON object per line)")
    return questions
