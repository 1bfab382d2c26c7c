"""k-fold cross-validation of the judgement over question files (``litassist eval --cv K``).

For each fold the judgement is fitted on the other folds' questions (plus any training-only files)
and the fold's questions are answered through :func:`assistant.answering.ask` with those
parameters, so every reported out-of-fold figure comes from a model that never saw the question.
The in-sample run fits on every question and answers them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from evals.questions import Question
from evals.runner import EvalRun, Runner
from evals.scores import QuestionScore
from evals.training import Example, collect, fit, stratified_folds

FOLDS = 5


@dataclass
class CVResult:
    """Out-of-fold and in-sample runs over the same questions."""

    out_of_fold: EvalRun
    in_sample: EvalRun
    folds: int


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
    progress: Callable[[Question], None] | None = None,
) -> CVResult:
    """Out-of-fold and in-sample evaluation of the judgement on ``questions`` (folds stratified by kind).

    ``train_only`` questions are added to every fold's training data and never evaluated.
    """
    from assistant.judgement import Judge

    assistant = runner.assistant
    shipped = assistant.judge
    examples = examples_for(runner, questions)
    extra = examples_for(runner, train_only) if train_only else []
    rows: dict[str, QuestionScore] = {}
    try:
        for test in stratified_folds(questions, folds):
            held = {questions[i].id for i in test}
            train = [e for e in examples if e.question.id not in held] + extra
            assistant.judge = Judge(fit(train))
            run = runner.run([questions[i] for i in test], progress=progress)
            rows.update({r.id: r for r in run.rows})
        assistant.judge = Judge(fit(examples + extra))
        in_sample = runner.run(questions, progress=progress)
    finally:
        assistant.judge = shipped
    oof = EvalRun(name=f"{in_sample.name} (out-of-fold, {folds} folds)", rows=[rows[q.id] for q in questions],
                  config={**in_sample.config, "cv_folds": folds})
    in_sample.name = f"{in_sample.name} (in-sample)"
    return CVResult(out_of_fold=oof, in_sample=in_sample, folds=folds)
