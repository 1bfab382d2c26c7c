"""How sure a figure over a few dozen questions is: percentile-bootstrap intervals over the questions.

Twelve unanswerable questions make a refusal rate move by 0.083 a question, so a figure alone says little
about a question set the project never sees. :func:`bootstrap_intervals` resamples the scored
questions with replacement, each kind within itself, and recomputes each rate the way
:func:`evals.scores.summarise` does (a mean over the questions it applies to): the interval is the
uncertainty of the rate from question sampling alone, for questions of this mix of kinds (refitting the
judgement is not counted; one new question set's figure would scatter wider, about 1.4x).
``litassist eval --cv K`` reports it for the main split's out-of-fold rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np

from evals.scores import FACT_KINDS, QuestionScore

# metric -> (does it apply to this question?, its value there); a rate is the mean over the questions it applies to
RATES: dict[str, tuple[Callable[[QuestionScore], bool], Callable[[QuestionScore], float | None]]] = {
    "recall_at_10": (lambda r: r.answerable, lambda r: r.recall),
    "cited_precision": (lambda r: r.answerable, lambda r: r.cited_precision),
    "cited_recall": (lambda r: r.answerable, lambda r: r.cited_recall),
    "fact_coverage": (lambda r: r.kind in FACT_KINDS, lambda r: r.fact_coverage),
    "refusal_rate": (lambda r: not r.answerable, lambda r: float(r.refused)),
    "false_refusal_rate": (lambda r: r.answerable, lambda r: float(r.refused)),
}
RESAMPLES = 2000
LEVEL = 0.95


def bootstrap_intervals(
    rows: Sequence[QuestionScore], *, resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0
) -> dict[str, tuple[float, float] | None]:
    """Each rate of :data:`RATES`: its ``level`` percentile interval over ``resamples`` resamplings of
    ``rows``, each kind resampled within itself (deterministic for a seed); None where no question
    measures it."""
    out: dict[str, tuple[float, float] | None] = {}
    if not rows:
        return dict.fromkeys(RATES)
    strata = {kind: np.array([i for i, r in enumerate(rows) if r.kind == kind]) for kind in dict.fromkeys(r.kind for r in rows)}
    picks = np.hstack([  # each kind keeps its count, drawn from its own stream: one kind's interval ignores the others
        idx[np.random.default_rng([seed, zlib.crc32(kind.encode())]).integers(0, len(idx), size=(resamples, len(idx)))]
        for kind, idx in strata.items()
    ])
    tail = (1.0 - level) / 2 * 100
    for key, (applies, value) in RATES.items():
        vals = [value(r) if applies(r) else None for r in rows]
        mask = np.array([v is not None for v in vals], dtype=float)
        if not mask.any():
            out[key] = None
            continue
        x = np.array([v if v is not None else 0.0 for v in vals], dtype=float)
        den = mask[picks].sum(axis=1)
        stats = (x[picks] * mask[picks]).sum(axis=1)[den > 0] / den[den > 0]  # resamples that hold none are skipped
        if not len(stats):
            out[key] = None
            continue
        lo, hi = np.percentile(stats, [tail, 100 - tail])
        out[key] = (float(lo), float(hi))
    return out
