"""Questions wrapped in framing about the asker ("For my PhD thesis, …", "… Thanks!") against the same
questions as written: how many the extractive answer path refuses, with and without setting the framing
aside (assistant/framing.py).

    python benchmarks/bench_framing.py [--data-dir DIR] [--questions F ...]

Uses LITASSIST_DATA_DIR (or --data-dir) with the seed corpus ingested. The framings below are written
for this measurement only; the code never sees them. The judgement is the shipped one, fitted on these
questions, so the figures compare framed with plain wording under one model, not out-of-fold quality.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from assistant import answering
from assistant.answering import get_assistant
from assistant.settings import Settings

SET_ASIDE = answering.without_framing

PREFIXES = [
    "For my PhD thesis, ", "As a postdoc at Stanford, ", "Hi all, ", "For a reading group at CMU, ",
    "Writing an ICML rebuttal - ", "For my master's at ETH Zurich: ",
]
SUFFIXES = [" Thanks!", " Asking for an ACL submission.", " Cheers, Priya", " tia", " Thx in advance."]


def framed(question: str) -> list[str]:
    """``question`` under every prefix (its first letter lower-cased) and every suffix."""
    low = question[:1].lower() + question[1:] if question[1:2].islower() else question
    return [p + low for p in PREFIXES] + [question + s for s in SUFFIXES]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--questions", type=Path, action="append")
    args = ap.parse_args()
    files = args.questions or [Path("../shared/evals/dev.jsonl"), Path("../shared/evals/dev2.jsonl")]
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    assistant = get_assistant(settings)
    rows: dict[bool, list[tuple[bool, bool, bool]]] = {True: [], False: []}  # plain, framed, framed read whole
    for path in files:
        for line in path.read_text().splitlines():
            if not line.strip():
                continue
            q = json.loads(line)
            answerable = q.get("kind") != "unanswerable"
            plain = assistant.stream(q["question"]).result().refused
            for text in framed(q["question"]):
                refused = assistant.stream(text).result().refused
                answering.without_framing = lambda *a, **kw: None  # type: ignore[assignment]
                try:
                    kept = assistant.stream(text).result().refused
                finally:
                    answering.without_framing = SET_ASIDE
                rows[answerable].append((plain, refused, kept))
    print("| questions | n (framed) | refused as written | framed, refused | framed, refused without setting aside |")
    print("|---|---|---|---|---|")
    for answerable, label in ((True, "answerable"), (False, "unanswerable")):
        r = rows[answerable]
        if r:
            share = [sum(x[i] for x in r) / len(r) for i in range(3)]
            print(f"| {label} | {len(r)} | {share[0]:.3f} | {share[1]:.3f} | {share[2]:.3f} |")


if __name__ == "__main__":
    main()
