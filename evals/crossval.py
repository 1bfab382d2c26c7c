"""k-fold cross-validation of the judgement over question files (``litassist eval --cv K``).

For each fold the judgement is fitted on the other folds' questions (plus any training-only files)
and the fold's questions are answered through :func:`assistant.answering.ask` with those
parameters, so every reported out-of-fold figure comes from a model that never saw the question.
The in-sample run fits on every question and answers them all. One fold split is a noisy estimate
(one question moves a rate by 0.015-0.08), so ``splits`` more are run (the first fold seeds from 0 that
are not the main split's) and their out-of-fold figures averaged (``litassist eval --cv K --splits N``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from evals.questions import Question
from evals.runner import EvalRun, Runner
from evals.scores import QuestionScore
from evals.training import FOLD_SEED, Example, collect, fit, mark_refusal_only, stratified_folds

FOLDS = 5


@dataclass
class CVResult:
    """Out-of-fold and in-sample runs over the same questions."""

    out_of_fold: EvalRun
    in_sample: EvalRun
    folds: int
    repeated: list[EvalRun] = field(default_factory=list)  # out-of-fold runs over further fold splits


def split_seeds(n: int) -> list[int]:
    """The fold seeds of ``n`` further splits: the first ``n`` from 0, skipping the main split's."""
    return [seed for seed in range(n + 1) if seed != FOLD_SEED][:n]


def gold_ids(runner: Runner, questions: Sequence[Question]) -> list[set[str]]:
    """The indexed paper ids of each question's gold titles."""
    return [set(runner.gold(q)[0]) for q in questions]


def examples_for(runner: Runner, questions: Sequence[Question]) -> list[Example]:
    """Training rows for ``questions`` (retrieval + features, no judging)."""
    return collect(runner.assistant, questions, gold_ids(runner, questions))


def cross_validate(
    runner: Runner,
    questions: Sequence[Question],
    *,
    folds: int = FOLDS,
    train_only: Sequence[Question] = (),
    splits: int = 0,
    progress: Callable[[Question], None] | None = None,
) -> CVResult:
    """Out-of-fold and in-sample evaluation of the judgement on ``questions`` (folds stratified by kind).

    ``train_only`` questions are added to every fold's training data and never evaluated (the answerable
    ones train the refusal decision only: :func:`~evals.training.mark_refusal_only`). With
    ``splits``, the out-of-fold run is repeated over that many other fold splits (:func:`split_seeds`;
    the main split keeps :data:`~evals.training.FOLD_SEED`, the one the CI gate reads).
    """
    from assistant.judgement import Judge

    assistant = runner.assistant
    shipped = assistant.judge
    examples = examples_for(runner, questions)
    extra = mark_refusal_only(examples_for(runner, train_only)) if train_only else []

    def out_of_fold(seed: int) -> EvalRun:
        rows: dict[str, QuestionScore] = {}
        parts = stratified_folds(questions, folds, seed=seed)
        for test in parts:
            held = {questions[i].id for i in test}
            assistant.judge = Judge(fit([e for e in examples if e.question.id not in held] + extra))
            run = runner.run([questions[i] for i in test], progress=progress)
            rows.update({r.id: r for r in run.rows})
        label = "" if seed == FOLD_SEED else f", fold seed {seed}"
        return EvalRun(name=f"{run.name} (out-of-fold, {folds} folds{label})", rows=[rows[q.id] for q in questions],
                       config={**run.config, "cv_folds": folds, "cv_seed": seed})

    try:
        oof = out_of_fold(FOLD_SEED)
        repeated = [out_of_fold(seed) for seed in split_seeds(splits)]
        assistant.judge = Judge(fit(examples + extra))
        in_sample = runner.run(questions, progress=progress)
    finally:
        assistant.judge = shipped
    in_sample.name = f"{in_sample.name} (in-sample)"
    return CVResult(out_of_fold=oof, in_sample=in_sample, folds=folds, repeated=repeated)
