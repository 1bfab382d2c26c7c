"""The judgement: fitted models as data, re-ranking, refusal, weak evidence, screening, and fitting."""

from __future__ import annotations

import copy
import dataclasses
import html
import json
import math
from pathlib import Path

import numpy as np
import pytest

from assistant.answering import WEAK_NOTE, Assistant, ask, get_assistant
from assistant.backends.extractive import sentences_per_paper
from assistant.errors import ConfigError
from assistant.evidence import Evidence, named_tokens
from assistant.judgement import (
    DEFAULT_PATH,
    PAPER_FEATURES,
    QUESTION_FEATURES,
    SENTENCE_FEATURES,
    Judge,
    Linear,
    load_params,
)
from assistant.models import Answer
from assistant.settings import Settings
from assistant.text import MAX_CORRECTED, corrected_terms, terms
from evals.questions import Question
from evals.training import Example, choose_answer_threshold, fit, stratified_folds

LORA_Q = "Which papers reduce catastrophic forgetting with LoRA?"


def _assistant_over(tmp_path: Path, rows: list[dict[str, str]]) -> Assistant:
    """An assistant over a small corpus of ``rows`` (title, abstract), ingested into ``tmp_path``."""
    from ingest.pipeline import ingest

    src = tmp_path / "p.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data")
    ingest([src], settings)
    return get_assistant(settings)


def test_linear_model_is_a_standardised_logistic() -> None:
    m = Linear(features=["a", "b"], mean=[1.0, 0.0], scale=[2.0, 1.0], coef=[1.0, -1.0], bias=0.5)
    p = m.prob(np.array([[3.0, 1.0], [1.0, 0.0]]))
    assert p == pytest.approx([1 / (1 + np.exp(-0.5)), 1 / (1 + np.exp(-0.5))])
    assert m.prob(np.array([[5.0, 0.0]]))[0] > m.prob(np.array([[1.0, 0.0]]))[0]
    assert m.explain(np.array([5.0, 0.0]), 1) == [("a", pytest.approx(2.0))]


def test_a_pairwise_model_adds_every_product_of_two_standardised_features() -> None:
    m = Linear(features=["a", "b", "c"], mean=[1.0, 0.0, 0.0], scale=[2.0, 1.0, 1.0],
               coef=[1.0, 0.0, 0.0, 0.25, 0.0, -2.0], bias=0.1, pairs=True)
    assert m.terms == ["a", "b", "c", "a*b", "a*c", "b*c"]
    row = np.array([[3.0, 2.0, -1.0]])  # z = (1, 2, -1): products a*b = 2, a*c = -1, b*c = -2
    logit = 0.1 + 1.0 * 1 + 0.25 * 2 + (-2.0) * (-2)
    assert m.prob(row)[0] == pytest.approx(1 / (1 + np.exp(-logit)))
    assert m.prob(row[0])[0] == pytest.approx(m.prob(row)[0])  # one row, 1-D, as explain() takes it
    assert m.explain(row[0], 3) == [("b*c", pytest.approx(4.0)), ("a", pytest.approx(1.0)), ("a*b", pytest.approx(0.5))]
    assert m.prob(np.array([[np.nan, 2.0, -1.0]]))[0] == pytest.approx(1 / (1 + np.exp(-(0.1 + 4.0))))


def test_every_product_term_is_named_after_the_two_features_it_multiplies() -> None:
    # with the question model's 13 features: a column-major order (tril) would agree with 3 features, not 13
    names = list(QUESTION_FEATURES)
    m = Linear(features=names, mean=[0.0] * len(names), scale=[1.0] * len(names), coef=[], bias=0.0, pairs=True)
    z = np.random.default_rng(1).normal(size=(2, len(names)))
    cols = m.expand(z)
    assert cols.shape[1] == len(m.terms) == len(names) + len(names) * (len(names) - 1) // 2
    for col, term in zip(cols.T, m.terms, strict=True):
        a, _, b = term.partition("*")
        expected = z[:, names.index(a)] * z[:, names.index(b)] if b else z[:, names.index(a)]
        assert col == pytest.approx(expected), term


def test_fitting_with_pairs_learns_an_interaction_a_linear_model_cannot() -> None:
    # positive when the two features agree in sign: no weighted sum separates it, their product does
    from evals.training import _logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(float)
    test = rng.normal(size=(400, 2))
    truth = test[:, 0] * test[:, 1] > 0

    def accuracy(pairs: bool) -> float:
        model = _logistic(x, y, ["a", "b"], balanced=True, pairs=pairs, c=1.0)
        assert model.pairs is pairs and len(model.coef) == len(model.terms)
        return float(np.mean((model.prob(test) > 0.5) == truth))

    assert accuracy(pairs=True) > 0.9
    assert accuracy(pairs=False) < 0.65


def test_a_near_constant_feature_is_not_divided_by_a_scale_rounded_to_zero() -> None:
    # a column whose std (1e-8) rounds to 0 at six decimals used to be stored with scale 0.0, so any
    # value off its mean became an infinite standardised feature and decided the probability alone
    from evals.training import _logistic

    rng = np.random.default_rng(0)
    x = np.column_stack([rng.normal(size=200), 0.5 + 1e-8 * rng.normal(size=200)])
    y = (x[:, 0] > 0).astype(float)
    model = _logistic(x, y, ["a", "b"], balanced=True)
    assert min(model.scale) > 0
    probs = model.prob(np.array([[0.0, 0.5], [0.0, 0.5 + 1e-6]]))
    assert probs[1] == pytest.approx(probs[0], abs=1e-3)


def test_shipped_parameters_load_and_match_the_features() -> None:
    params = load_params()
    assert params.paper.features == list(PAPER_FEATURES)
    assert params.question.features == list(QUESTION_FEATURES)
    assert params.sentence.features == list(SENTENCE_FEATURES)
    assert 0 < params.answer_threshold < 1 and 0 < params.include_threshold < 1
    assert {"questions", "sources", "date"} <= set(params.fitted)


def test_bad_parameter_files_are_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read judgement parameters"):
        load_params(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a judgement parameter file"):
        load_params(bad)
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["paper"]["features"] = data["paper"]["features"][:-1]
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="refit with `litassist judge fit`") as err:
        load_params(stale)
    assert "\n" not in str(err.value)
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["question"]["coef"] = data["question"]["coef"][:-1]  # one coefficient short of its terms
    short = tmp_path / "short.json"
    short.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"question model has .* coefficients for \d+ features") as err:
        load_params(short)
    assert "\n" not in str(err.value)
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["sentence"]["scale"] = data["sentence"]["scale"][:-1]
    short.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="sentence model has .* scales"):
        load_params(short)
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    data["question"]["pairs"] = "no"
    short.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ConfigError, match="'pairs' must be true or false"):
        load_params(short)


def test_a_parameter_file_without_pairs_loads_as_linear_models(tmp_path: Path) -> None:
    # files written before the pairwise question model have no "pairs" key: each model is linear
    data = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))
    n = len(QUESTION_FEATURES)
    data["question"].pop("pairs")
    data["question"]["coef"] = data["question"]["coef"][:n]
    for name in ("paper", "sentence"):
        data[name].pop("pairs", None)
    old = tmp_path / "old.json"
    old.write_text(json.dumps(data), encoding="utf-8")
    params = load_params(old)
    assert not params.question.pairs and params.question.terms == list(QUESTION_FEATURES)
    assert params.question.prob(np.asarray([params.question.mean])).shape == (1,)


def test_parameters_are_read_on_first_use_so_a_stale_file_can_be_refitted(
    seed_settings: Settings, tmp_path: Path
) -> None:
    stale = seed_settings.model_copy(deep=True)
    stale.retrieval.judgement = tmp_path / "stale.json"
    stale.retrieval.judgement.write_text("{not json", encoding="utf-8")
    owner = get_assistant(stale)  # `litassist judge fit` / `eval --cv` open the index like this, then refit
    with pytest.raises(ConfigError, match="not a judgement parameter file"):
        owner.judge  # noqa: B018 - an asker still gets the one-line error, on first use
    owner.judge = Judge(load_params())
    assert owner.judge.params.question.features == list(QUESTION_FEATURES)


def test_indefinite_pronouns_frame_a_question_and_are_not_terms() -> None:
    # "anyone" occurs in no abstract: as a term it read as a concept the corpus lacks (an absent-term feature)
    assert terms("Has anyone tried LoRA for speech? Anything on something similar?") == ["tri", "lora", "speech", "similar"]


def test_typos_are_corrected_against_the_corpus_vocabulary() -> None:
    known = {"train": 40, "diffus": 12, "token": 30}
    assert corrected_terms("trainng-free diffusoin tokens", known) == ["train", "free", "diffus", "token"]
    assert corrected_terms("LoRA", {"lora": 3}) == ["lora"]
    assert corrected_terms("zzzzzz", known) == ["zzzzzz"], "no known neighbour: the word stays unknown"


def test_a_misspelt_framing_word_is_no_term() -> None:
    known = {"lora": 3, "continu": 20, "learn": 50}
    # 'Wich'/'Waht' were terms no abstract writes: on a short question, most of its weight was "absent"
    assert corrected_terms("Wich papers use LoRA for continual learning?", known) == ["", "lora", "continu", "learn"]
    assert corrected_terms("waht whihc", known) == ["", ""] and corrected_terms("Whhich paeprs?", known) == ["", ""]
    # real words a substitution away from a framing word stay terms, and a known word is never touched
    assert corrected_terms("dogs oven bees", known) == terms("dogs oven bees")
    assert corrected_terms("form", {"form": 4}) == ["form"]
    # further in, a word one slip from a framing word is a word of its own; so is part of a compound
    assert corrected_terms("What drug dose works?", known) == terms("What drug dose works?")
    assert corrected_terms("Cold-start recommendation", known) == terms("Cold-start recommendation")


@pytest.mark.slow
def test_a_question_with_a_misspelt_framing_word_is_answered_as_without_it(seed_settings: Settings) -> None:
    clean = ask("Which papers use LoRA for continual learning?", settings=seed_settings)
    for typo in ["Wich", "Waht", "Whihc"]:
        a = ask(f"{typo} papers use LoRA for continual learning?", settings=seed_settings)
        assert isinstance(a, Answer) and isinstance(clean, Answer)
        assert not a.refused and not a.not_in_corpus, (typo, a.confidence)  # was refused at 0.13-0.21
        assert {c.paper_id for c in a.citations} & {c.paper_id for c in clean.citations}


def test_the_typo_corrector_leaves_overlong_and_non_ascii_words_alone() -> None:
    # a pasted run of letters (or CJK text, one 'word' without spaces) has ~54 x length one-edit
    # neighbours, each as long as the word: a 10,000-letter question took 10 GB before the length cap
    long_word = "a" * MAX_CORRECTED + "b"  # one deletion away from the known term below
    known = {terms("a" * MAX_CORRECTED)[0]: 5, "model": 9}
    assert corrected_terms(long_word, known) == terms(long_word)
    assert corrected_terms("a" * (MAX_CORRECTED - 1) + "b", {terms("a" * (MAX_CORRECTED - 1))[0]: 5}) == terms(
        "a" * (MAX_CORRECTED - 1)
    ), "a word at the cap is still corrected"
    assert corrected_terms("模型模型模型", {"模型模型模": 3}) == terms("模型模型模型")


def test_named_tokens_are_acronyms_camel_case_and_names_with_digits() -> None:
    assert named_tokens("How does MiniCPM's WSD schedule compare with Adam on H100 GPUs and A^2FM?") == [
        "MiniCPM", "WSD", "H100", "GPUs", "A^2FM"
    ]
    assert named_tokens("which papers study continual learning?") == []


def test_folds_are_a_partition_stratified_by_kind() -> None:
    qs = [Question(id=f"q{i}", question="x", kind=k) for i, k in enumerate(["list"] * 10 + ["lookup"] * 5 + ["unanswerable"] * 5)]
    folds = stratified_folds(qs, 5)
    assert sorted(i for f in folds for i in f) == list(range(20))
    for f in folds:
        kinds = [qs[i].kind for i in f]
        assert kinds.count("list") == 2 and kinds.count("lookup") == 1 and kinds.count("unanswerable") == 1
    assert folds == stratified_folds(qs, 5), "deterministic"
    with pytest.raises(ConfigError):
        stratified_folds(qs, 1)


def _synthetic(n: int, seed: int = 0) -> list[Example]:
    """Questions whose answerability and gold papers depend on one feature each."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        answerable = i % 4 != 0
        q = Question(id=f"s{i}", question="q", kind="lookup" if answerable else "unanswerable",
                     answer_facts=["x"] if answerable else [])
        px = rng.normal(size=(10, len(PAPER_FEATURES)))
        py = np.zeros(10)
        if answerable:
            py[:2] = 1
            px[:2, 0] += 3.0  # sent_max separates gold papers
        sx = rng.normal(size=(6, len(SENTENCE_FEATURES)))
        sy = np.array([1.0, 0, 0, 1.0, 0, 0])
        sx[sy == 1, 0] += 3.0
        qf = {f: float(rng.normal()) for f in QUESTION_FEATURES}
        qf["q_sent_max"] += 3.0 if answerable else 0.0
        out.append(Example(question=q, paper_x=px, paper_y=py, sentence_x=sx if answerable else sx[:0],
                           sentence_y=sy if answerable else sy[:0], question_features=qf, k=10, n_gold=2))
    return out


def test_inclusion_threshold_scores_the_weaker_of_cited_precision_and_recall() -> None:
    # the bar asks both to be high: a threshold citing only the sure paper (P 1, R 0.5) scores 0.5,
    # not their mean 0.75, and loses to one citing three papers with both gold ones (P 0.67, R 1)
    from evals.training import _citation_score

    q = Question(id="c1", question="q", kind="list")
    e = Example(question=q, paper_x=np.zeros((4, len(PAPER_FEATURES))), paper_y=np.array([1.0, 0, 1.0, 0]),
                sentence_x=np.zeros((0, len(SENTENCE_FEATURES))), sentence_y=np.zeros(0), question_features={},
                k=10, n_gold=2)
    probs = [np.array([0.9, 0.8, 0.3, 0.1])]
    assert _citation_score([e], probs, 0.85) == pytest.approx(0.5)
    assert _citation_score([e], probs, 0.25) == pytest.approx(2 / 3)


def test_fit_learns_each_decision_from_its_labels() -> None:
    params = fit(_synthetic(80), sources=["synthetic"])
    assert params.paper.coef[PAPER_FEATURES.index("sent_max")] > 0
    assert params.sentence.coef[SENTENCE_FEATURES.index("dense")] > 0
    assert params.question.coef[QUESTION_FEATURES.index("q_sent_max")] > 0
    held = _synthetic(40, seed=1)
    judge_rows = [params.paper.prob(e.paper_x) for e in held if e.question.answerable]
    assert all(p[:2].mean() > p[2:].mean() for p in judge_rows), "held-out gold papers score higher"
    assert params.fitted["sources"] == ["synthetic"] and params.fitted["questions"] == 80
    with pytest.raises(ConfigError, match="unanswerable"):
        fit([e for e in _synthetic(40) if e.question.answerable])


def test_answerable_training_only_questions_train_the_refusal_decision_alone() -> None:
    # keyword questions ("Which papers evaluate on MMLU?") whose gold is every paper writing the name:
    # in the paper model they cost cited precision and recall on the dev sets (evals/README.md)
    from evals.training import REFUSAL_ONLY_WEIGHT, mark_refusal_only

    base = _synthetic(80)
    extra = _synthetic(24, seed=3)
    for e in extra:
        e.question = dataclasses.replace(e.question, id="k" + e.question.id)
        e.paper_y = np.zeros_like(e.paper_y) if e.question.answerable else e.paper_y  # loose gold: none separates
    mark_refusal_only(extra)
    assert [e.refusal_only for e in extra] == [e.question.answerable for e in extra]
    alone, both = fit(base), fit(base + extra)
    assert both.paper == alone.paper and both.sentence == alone.sentence
    assert both.include_threshold == alone.include_threshold
    assert both.question != alone.question, "the refusal decision learns from them"
    assert both.fitted["refusal_only_questions"] == 18 and both.fitted["refusal_only_weight"] == REFUSAL_ONLY_WEIGHT
    # the weight is applied: at full weight the same rows fit another question model
    import evals.training as training

    weighted = training.REFUSAL_ONLY_WEIGHT
    try:
        training.REFUSAL_ONLY_WEIGHT = 1.0
        assert fit(base + extra).question != both.question
    finally:
        training.REFUSAL_ONLY_WEIGHT = weighted
    # as training for every decision, the same rows change the paper model too
    for e in extra:
        e.refusal_only = False
    assert fit(base + extra).paper != alone.paper


def test_refusal_threshold_caps_false_refusals_on_training_data() -> None:
    examples = _synthetic(120)
    t = choose_answer_threshold(examples)
    params = fit(examples)
    answerable = [e for e in examples if e.question.answerable]
    from assistant.judgement import question_row

    refused = [params.question.prob(question_row(e.question_features, params.paper.prob(e.paper_x)))[0] < t
               for e in answerable]
    assert np.mean(refused) <= 0.15


def test_shipped_sentence_model_prefers_the_longer_of_two_otherwise_equal_sentences() -> None:
    # answer facts sit more often in long sentences: a fitted length feature, not a rule
    from assistant.evidence import Sentence
    from assistant.judgement import _sentence_features

    def length_feature(text: str) -> float:
        return _sentence_features(Sentence(hit=1, text=text, position=0, lexical=0.2, dense=0.5), 0.5, 0.2, 0.0, 0.0, 3)["log_words"]

    short = length_feature("We propose a new method.")
    long_ = length_feature("We propose a new method that reaches high accuracy on the benchmark with half the parameters.")
    assert long_ > short
    sentence = load_params().sentence
    rows = np.tile(np.asarray(sentence.mean), (2, 1))  # a typical sentence, twice: only the length differs
    col = SENTENCE_FEATURES.index("log_words")
    rows[0, col], rows[1, col] = short, long_
    probs = sentence.prob(rows)
    assert probs[1] > probs[0]


def test_a_sentence_is_as_specific_as_the_rare_terms_it_adds_to_the_question(tmp_path: Path) -> None:
    # answer facts name methods, data sets and numbers the question does not: a sentence's `specific` is
    # the mean idf of the terms it adds (restating the question adds none), `gap_specific` its distance
    # to the paper's most specific sentence
    from assistant.judgement import sentence_rows

    common = "Language models are trained on large data and evaluated on many tasks."
    rows = [{"title": "Forgetting in continual learning",
             "abstract": "Continual learning reduces forgetting. " + common
                         + " It searches replay buffers with Monte Carlo Tree Search."
                         + " It runs Monte Carlo on large data."}]
    rows += [{"title": f"Language model study {i}", "abstract": common} for i in range(4)]  # fmt: skip
    a = _assistant_over(tmp_path, rows)
    q = "Which continual learning papers reduce forgetting?"
    ev = Evidence(a.index, q, a.retriever.retrieve(q, k=5))
    paper = next(p for p in ev.papers if p.hit.paper.title.startswith("Forgetting"))
    restating, generic, specific, mixed = (s.specific for s in paper.sentences)
    assert restating == 0.0
    assert 0.0 < generic < specific <= 1.0
    # a mean, not a maximum: two common words ('large', 'data') beside rare ones make a sentence less specific
    assert generic < mixed < specific
    gaps = sentence_rows(paper)[:, SENTENCE_FEATURES.index("gap_specific")]
    assert gaps.tolist() == pytest.approx([-specific, generic - specific, 0.0, mixed - specific])


def test_shipped_sentence_model_prefers_the_more_specific_of_two_otherwise_equal_sentences() -> None:
    sentence = load_params().sentence
    rows = np.tile(np.asarray(sentence.mean), (2, 1))
    col = SENTENCE_FEATURES.index("gap_specific")
    rows[0, col], rows[1, col] = -0.3, 0.0  # the second is its paper's most specific sentence
    probs = sentence.prob(rows)
    assert probs[1] > probs[0]


def test_a_long_list_quotes_three_sentences_of_its_three_most_relevant_papers(tmp_path: Path) -> None:
    # five answering papers, judged in order of relevance: three sentences for the first three, one for the rest
    from assistant.backends import Request
    from assistant.backends.extractive import ExtractiveBackend

    rows = [{"title": f"Forgetting study {i}",
             "abstract": f"Study {i} reduces catastrophic forgetting. It uses adapters of rank {i}. "
                         f"It reports results on benchmark {i}."} for i in range(5)]  # fmt: skip
    a = _assistant_over(tmp_path, rows)
    settings = a.settings
    q = "Which papers reduce catastrophic forgetting?"
    hits = a.retriever.retrieve(q, k=5)
    ev = Evidence(a.index, q, hits)
    for paper in ev.papers:
        for s, score in zip(paper.sentences, (0.9, 0.8, 0.7), strict=True):
            s.score = score
    ev.included = [1, 2, 3, 4, 5]
    text = "".join(ExtractiveBackend(settings).generate(Request(question=q, hits=hits, evidence=ev)))
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert [line.count(f"[{n}]") for n, line in enumerate(lines, start=1)] == [3, 3, 3, 1, 1]


def test_a_title_with_a_bracketed_number_is_not_read_as_a_citation(tmp_path: Path) -> None:
    # '- LoRA Forgetting [3] Study: …' made [3] a citation of an unquoted paper, renumbered to [1]
    from assistant.backends import Request
    from assistant.backends.extractive import ExtractiveBackend
    from assistant.citations import check

    rows = [{"title": f"Forgetting {'[3] ' if i == 0 else ''}study {i}",
             "abstract": f"Study {i} reduces catastrophic forgetting. It uses adapters of rank {i}."}
            for i in range(3)]  # fmt: skip
    a = _assistant_over(tmp_path, rows)
    q = "Which papers reduce catastrophic forgetting?"
    hits = a.retriever.retrieve(q, k=3)
    ev = Evidence(a.index, q, hits)
    ev.included = [1, 2, 3]
    text = "".join(ExtractiveBackend(a.settings).generate(Request(question=q, hits=hits, evidence=ev)))
    cleaned, citations, checks = check(text, hits)
    assert len(citations) == 3 and checks.uncited_sentences == [], cleaned
    assert "- Forgetting (3) study 0: " in cleaned  # the title's bracket, as a quote's, is no citation


def test_extra_sentences_need_a_quarter_of_the_best_sentence_score() -> None:
    from assistant.backends.extractive import pick
    from assistant.evidence import PaperEvidence, Sentence
    from assistant.models import Hit, Paper

    sents = [Sentence(hit=1, text=f"Sentence {i}.", position=i, lexical=0.0, dense=0.0) for i in range(3)]
    for s, score in zip(sents, (0.19, 0.8, 0.21), strict=True):
        s.score = score
    hit = Hit(paper=Paper(id="p", title="T", abstract="A."), score=1.0, rank=1)
    paper = PaperEvidence(hit=hit, coverage=0.0, title_coverage=0.0, dense=0.0, sentences=sents)
    assert [s.position for s in pick(paper, 3)] == [1, 2]  # in abstract order; 0.19 < 0.25 x 0.8 <= 0.21


def test_answer_shape_follows_the_number_of_answering_papers() -> None:
    assert [sentences_per_paper(n) for n in (1, 2, 3, 4, 6, 10)] == [4, 3, 3, 3, 3, 3]
    # a long list: the three most relevant papers keep three sentences, the others 9 // n each (at least one)
    assert [sentences_per_paper(4, rank) for rank in range(4)] == [3, 3, 3, 2]
    assert [sentences_per_paper(6, rank) for rank in range(6)] == [3, 3, 3, 1, 1, 1]
    assert [sentences_per_paper(3, rank) for rank in range(3)] == [3, 3, 3]


# --- on the seed index ----------------------------------------------------------------------------
@pytest.mark.slow
def test_judge_reranks_renumbers_and_chooses(seed_settings: Settings) -> None:
    owner = get_assistant(seed_settings)
    ev = Evidence(owner.index, LORA_Q, owner.retriever.retrieve(LORA_Q, k=30))
    owner.judge.assess(ev, k=10)
    rel = [p.relevance for p in ev.papers]
    assert len(ev.papers) == 10 and rel == sorted(rel, reverse=True)
    assert [p.hit.rank for p in ev.papers] == list(range(1, 11))
    assert all(s.hit == i for i, p in enumerate(ev.papers, start=1) for s in p.sentences)
    threshold = owner.judge.params.include_threshold
    assert ev.included == [i for i, p in enumerate(ev.papers, start=1) if p.relevance >= threshold][:10] or [1]
    assert 0 <= ev.confidence <= 1 and not owner.judge.refuses(ev)
    screened = ev.screened()
    assert [p.hit.paper.id for p in screened.papers] == [ev.papers[i - 1].hit.paper.id for i in ev.included]
    assert all(s.hit == i for i, p in enumerate(screened.papers, start=1) for s in p.sentences)


@pytest.mark.slow
def test_answers_carry_confidence_and_weak_evidence_says_so(seed_settings: Settings) -> None:
    a = ask(LORA_Q, settings=seed_settings)
    assert isinstance(a, Answer) and a.confidence is not None and not a.refused
    assert not a.weak_evidence and not a.text.startswith(WEAK_NOTE)
    owner = get_assistant(seed_settings)
    shipped = owner.judge
    params = copy.deepcopy(shipped.params)
    params.answer_threshold, params.weak_margin = a.confidence - 0.01, 0.5
    owner.judge = Judge(params)
    try:
        weak = ask(LORA_Q, settings=seed_settings)
        streamed = "".join(ask(LORA_Q, settings=seed_settings, stream=True))  # type: ignore[arg-type]
    finally:
        owner.judge = shipped
    assert isinstance(weak, Answer) and weak.weak_evidence and not weak.refused
    assert weak.text.startswith(WEAK_NOTE) and streamed.startswith(WEAK_NOTE)
    assert weak.checks.uncited_sentences == [], "the note is a lead-in, not an uncited claim"


@pytest.mark.slow
def test_refusal_lists_closest_papers_with_their_best_sentence(seed_settings: Settings) -> None:
    a = ask("Which papers describe the mating calls of tree frogs in the Amazon basin?", settings=seed_settings)
    assert isinstance(a, Answer) and a.refused and a.confidence is not None
    assert a.closest and all(c.snippet and f'"{c.snippet}"' in a.text for c in a.closest)


@pytest.mark.slow
@pytest.mark.parametrize("question", [
    "Which studies track wolf packs with GPS collars?",
    "What is the mortality rate of COVID-19 in the UK?",
    "How does NASA's JWST detect exoplanet atmospheres?",
])  # fmt: skip
def test_an_off_topic_question_naming_what_no_paper_writes_is_refused(seed_settings: Settings, question: str) -> None:
    # a name no abstract writes puts q_named_absent far outside its training range (z ~ 5): the pairwise
    # question model must not turn it, times another low feature, into evidence for answering (a
    # question feature tried on 2026-12-04 answered the wolf-pack question at 0.65: evals/README.md)
    a = ask(question, settings=seed_settings)
    assert isinstance(a, Answer) and a.refused, a.confidence
    assert a.not_in_corpus, "the refusal names what no indexed paper writes"


@pytest.mark.slow
@pytest.mark.parametrize(("question", "filters"), [
    ("Which papers study protein folding with AlphaFold?", {"source": "000_"}),
    ("Tell me a joke", {"since": 2024}),
    ("Which papers study quantum error correction?", {"source": "000_"}),
])  # fmt: skip
def test_an_off_topic_question_within_a_filter_is_refused(
    seed_settings: Settings, question: str, filters: dict[str, object]
) -> None:
    # a filtered pool puts the question features in a mix the question model never saw (no term of the
    # question in the leading papers, no paper near the inclusion threshold), where its pairwise terms
    # read 0.4-0.6; when the paper model accepts no candidate the confidence is capped at its best paper
    a = ask(question, filters=filters, settings=seed_settings)
    assert isinstance(a, Answer) and a.refused and not a.citations, a.confidence
    assert a.confidence < get_assistant(seed_settings).judge.params.answer_threshold
    answered = ask(LORA_Q, filters=filters, settings=seed_settings)  # an on-topic question keeps its answer
    assert isinstance(answered, Answer) and not answered.refused and answered.citations


def test_front_ends_show_the_confidence() -> None:
    from assistant.cli_ask import render_text
    from assistant.models import Citation
    from ui.gradio_render import sources_html
    from ui.slack_blocks import answer_blocks

    cite = Citation(n=1, paper_id="p1", title="A paper", snippet="It works.")
    answer = Answer(question="q", standalone_question="q", text="It works [1].", citations=[cite], backend="extractive",
                    confidence=0.42, weak_evidence=True)
    assert answer.confidence_label() == "confidence 0.42 (weak evidence)"
    assert "confidence 0.42 (weak evidence)" in render_text(answer)
    assert "confidence 0.42 (weak evidence)" in sources_html(answer)
    _, blocks = answer_blocks(answer)
    assert blocks[-1]["type"] == "context" and "confidence 0.42" in blocks[-1]["elements"][0]["text"]
    assert answer.to_dict()["confidence"] == 0.42
    assert Answer(question="q", standalone_question="q", text="", backend="x").confidence_label() == ""
    refusal = Answer(question="q", standalone_question="q", text="No answer.", closest=[cite], refused=True,
                     backend="extractive", confidence=0.1, not_in_corpus=["QuuxNet"])
    note = "no indexed paper writes 'QuuxNet'"
    assert note in render_text(refusal) and html.escape(note) in sources_html(refusal)
    assert note in answer_blocks(refusal)[1][-1]["elements"][0]["text"]
    assert refusal.to_dict()["not_in_corpus"] == ["QuuxNet"]
    pinged = refusal.model_copy(update={"not_in_corpus": ["<!channel>"]})  # quoted words never become Slack markup
    assert "<!channel>" not in answer_blocks(pinged)[1][-1]["elements"][0]["text"]


@pytest.mark.slow
def test_no_retrieved_paper_is_a_refusal_not_a_crash(seed_settings: Settings) -> None:
    owner = get_assistant(seed_settings)
    ev = Evidence(owner.index, LORA_Q, [])
    owner.judge.assess(ev, k=10)
    assert ev.papers == [] and ev.included == [] and owner.judge.refuses(ev)
    a = ask(LORA_Q, filters={"since": 2090}, settings=seed_settings)
    assert isinstance(a, Answer) and a.refused and a.contexts == []


def test_query_terms_are_corrected_once_per_question(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.stores import bm25 as bm25_mod

    index = bm25_mod.BM25Index.build(["p1"], ["training adapters"], generation=1)
    calls: list[str] = []
    real = bm25_mod.corrected_terms
    monkeypatch.setattr(bm25_mod, "corrected_terms", lambda q, known: calls.append(q) or real(q, known))
    first = index.query_terms("trainng adapters")
    first.append("mutated")  # callers get their own list
    assert index.query_terms("trainng adapters") == ["train", "adapt"] and calls == ["trainng adapters"]


def test_names_are_matched_as_written_not_as_loose_terms() -> None:
    from assistant.text import base_name, mentions, name_text

    text = name_text("We speed up FlashAttention-2 by 3 times on H100s; Llama 3.1 70B, A$^2$FM and a ResNet. It hasreached.")
    assert mentions(text, "FlashAttention-2") and mentions(text, "flashattention2")
    assert not mentions(text, "FlashAttention-3"), "its pieces occur ('flashattention', '3'), the name does not"
    assert mentions(text, "LLaMA-3.1-70B") and mentions(text, "A^2FM")
    assert mentions(text, "H100") and mentions(text, "ResNets"), "plural and singular forms match"
    assert not mentions(text, "ASR"), "never inside a longer word ('hasreached')"
    assert [base_name(t) for t in ("LoRA-style", "RL-trained", "FlashAttention-3", "4-bit", "Sky-T1")] == [
        "LoRA", "RL", "FlashAttention-3", "4-bit", "Sky-T1"
    ]


def test_a_versioned_name_the_corpus_never_writes_counts_as_absent(tmp_path: Path) -> None:
    # before: a named token was a set of terms, so 'FlashAttention-3' ({flashattent, 3}) counted as
    # present in any corpus with FlashAttention-2 and a '3' somewhere; "a named method that occurs in
    # no abstract" is the strongest sign that the corpus does not answer the question

    rows = [
        {"title": "FlashAttention-2: Faster Attention", "abstract": "FlashAttention-2 is 2 times faster on H100 GPUs. It reaches 3 TFLOPs more."},
        {"title": "Attention kernels on GPUs", "abstract": "We profile 3 attention kernels on A100 and H100 GPUs."},
    ]
    a = _assistant_over(tmp_path, rows)

    def named(q: str) -> tuple[float, float]:
        ev = Evidence(a.index, q, a.retriever.retrieve(q, k=2))
        return ev.question_features["q_named_absent"], ev.papers[0].features["named_hit"]

    # FlashAttention-3 is in no paper (idf log 6); H100 and GPUs are in both (idf log 1.2 each), so its
    # share weighs 1.79 of 2.16, not one name of three
    absent_share = math.log(6) / (math.log(6) + 2 * math.log(1.2))
    assert named("What speedup does FlashAttention-3 give on H100 GPUs?") == (pytest.approx(absent_share), pytest.approx(2 / 3))
    assert named("What speedup does FlashAttention-2 give on H100 GPUs?") == (0.0, 1.0)
    # the corpus check reads papers beyond the candidates too
    assert a.index.ensure_keyword_index().papers_with(terms("FlashAttention-3")).tolist() == [0]


def test_a_name_weighs_by_how_rare_it_is_in_the_corpus(tmp_path: Path) -> None:
    # before: every named token counted the same, so a common acronym ('GPUs', 'LLMs') diluted the one
    # name that matters: a question naming an absent method and two acronyms every paper writes read
    # as one third absent, the same as a question whose three names are all specific
    rows = [
        {"title": f"Training study {i}", "abstract": f"We train LLMs on GPUs with recipe {i} and report throughput."}
        for i in range(5)
    ] + [{"title": "ZetaNet on TPUs", "abstract": "ZetaNet runs on TPUs; it is not about LLMs."}]
    a = _assistant_over(tmp_path, rows)

    def q_features(q: str) -> dict[str, float]:
        return Evidence(a.index, q, a.retriever.retrieve(q, k=3)).question_features

    n = 6
    idf = {df: math.log(1 + (n - df + 0.5) / (df + 0.5)) for df in (0, 1, 5, 6)}
    common = q_features("Does QuuxNet train LLMs faster on GPUs?")
    assert common["q_named_absent"] == pytest.approx(idf[0] / (idf[0] + idf[6] + idf[5]))
    assert common["q_named_absent"] > 0.8, "the absent name outweighs two acronyms every paper writes"
    specific = q_features("Does QuuxNet beat ZetaNet on TPUs?")  # ZetaNet, TPUs: one paper each
    assert specific["q_named_absent"] == pytest.approx(idf[0] / (idf[0] + 2 * idf[1]))
    assert specific["q_named_absent"] < common["q_named_absent"]


@pytest.mark.slow
def test_a_question_naming_one_absent_method_among_common_acronyms_is_refused(seed_settings: Settings) -> None:
    # Mamba is indexed, Mamba-3 is not; 'LLMs' is in 190 of the 414 abstracts. With names counted
    # alike the absent share was 1/2 and the question got a weak answer (confidence 0.24-0.30)
    a = ask("Is Mamba-3 better than Transformers for LLMs?", settings=seed_settings)
    assert isinstance(a, Answer) and a.refused, a.confidence
    assert a.not_in_corpus == ["Mamba-3"]


def test_evidence_names_what_no_indexed_paper_writes(tmp_path: Path) -> None:
    # names first, as written; then words whose (typo-corrected) term no paper has; a word inside an
    # absent name is not repeated, and a misspelt word the corpus has ('forgeting') is not absent
    rows = [
        {"title": "FlashAttention-2: Faster Attention", "abstract": "FlashAttention-2 is 2 times faster on H100 GPUs."},
        {"title": "Low-rank adapters and forgetting", "abstract": "LoRA adapters reduce forgetting when fine-tuning."},
    ]
    a = _assistant_over(tmp_path, rows)
    q = "Does FlashAttention-3 reduce forgeting of LoRA adapters in zebrafish or QuuxNet?"
    ev = Evidence(a.index, q, a.retriever.retrieve(q, k=2))
    assert ev.unwritten == ["FlashAttention-3", "QuuxNet", "zebrafish"]
    q = "Do LoRA adapters reduce forgetting?"
    assert Evidence(a.index, q, a.retriever.retrieve(q, k=2)).unwritten == []


def test_a_refusal_or_weak_answer_says_what_no_indexed_paper_writes() -> None:
    def label(**kw: object) -> str:
        return Answer(question="q", standalone_question="q", text="t", backend="extractive", confidence=0.2,
                      not_in_corpus=["FlashAttention-3", "zebrafish"], **kw).confidence_label()

    assert label(refused=True) == "confidence 0.20 · no indexed paper writes 'FlashAttention-3', 'zebrafish'"
    assert label(weak_evidence=True).endswith("(weak evidence) · no indexed paper writes 'FlashAttention-3', 'zebrafish'")
    assert label() == "confidence 0.20"  # a confident answer is not second-guessed by a word it lacks


def test_shipped_question_model_gains_confidence_when_the_best_paper_holds_every_question_term() -> None:
    # a typical question (every feature at its training mean) whose best paper covers all of its terms,
    # against one whose best paper covers half: the whole-paper and best-sentence cover used to be fitted
    # with opposite signs, and together they counted a complete match against answering
    question = load_params().question
    lexical = [i for i, f in enumerate(question.features) if f.startswith("q_lex")]
    rows = np.tile(np.asarray(question.mean), (2, 1))
    rows[0, lexical], rows[1, lexical] = 1.0, 0.5
    full, half = question.prob(rows)
    assert full > half


SMALL_CORPUS = [
    {"title": "Zebra routing for sparse experts", "abstract": "We propose zebra routing, a load-balanced router for mixture-of-experts layers. Zebra routing improves perplexity by 3% at equal compute."},
    {"title": "Low-rank adapters reduce catastrophic forgetting", "abstract": "LoRA fine-tuning forgets less of the pretraining distribution than full fine-tuning. We measure forgetting on 5 benchmarks."},
    {"title": "Speculative decoding with small drafts", "abstract": "A small draft model proposes tokens that a large model verifies, giving 2.5x faster decoding."},
    {"title": "Watermarking language model outputs", "abstract": "We embed a statistical watermark in generated text by biasing token choices toward a green list."},
    {"title": "Diffusion models for protein design", "abstract": "A diffusion model generates protein backbones that fold into designed structures."},
    {"title": "KV cache compression by eviction", "abstract": "We evict unimportant keys and values from the KV cache, cutting memory by 4x with little accuracy loss."},
]  # fmt: skip


@pytest.mark.parametrize("n", [1, 4, 6])
def test_a_small_corpus_of_unrelated_papers_answers_what_it_holds_and_refuses_what_it_lacks(
    tmp_path: Path, n: int
) -> None:
    # question features are standardised by the statistics of the 414-paper seed corpus, and the
    # pairwise question model extrapolates through their products: a feature that sits far outside
    # that range on a small index of unrelated papers (the leading candidate's similarity to the next
    # three, tried as `q_lead_prf`: evals/README.md) refused a one-paper index's own paper and answered
    # "FlashAttention-3 on H100 GPUs" from four unrelated abstracts with confidence 1.00
    # (the off-topic question is unlike any training question: evals/train_unanswerable.jsonl has a sourdough one)
    settings = _assistant_over(tmp_path, SMALL_CORPUS[:n]).settings
    held = [
        "Which papers study zebra routing?", "Does LoRA reduce catastrophic forgetting?",
        "How much faster is speculative decoding?", "How can generated text be watermarked?",
        "Which papers design proteins with diffusion models?", "How much memory does KV cache eviction save?",
    ][:n]
    for q in held:
        answer = ask(q, settings=settings)
        assert isinstance(answer, Answer) and not answer.refused and not answer.weak_evidence, (q, answer.confidence)
    lacking = ["What speedup does FlashAttention-3 give on H100 GPUs?", "How does GPT-5 score on MMLU?",
               "What accuracy does Llama-3 reach with 4-bit quantization?", "How do sea otters use tools to open shellfish?"]
    for q in lacking:
        answer = ask(q, settings=settings)
        assert isinstance(answer, Answer) and answer.refused, (q, answer.confidence)


LONE_PAPER = {
    "title": "Zebra routing for sparse experts",
    "abstract": "Zebra routing balances sparse experts by routing tokens in alternating stripes. It matches strong "
                "load-balancing baselines at equal compute and improves perplexity by 3%.",
}  # fmt: skip


@pytest.mark.parametrize("copies", [5, 10])
def test_a_paper_alone_on_its_topic_among_near_copies_of_another_still_answers(tmp_path: Path, copies: int) -> None:
    # the question's leading paper has no neighbour on its topic, so the papers behind it are far from
    # it: the pattern of a near miss whose topics sit in different papers. A question feature built on
    # that pattern (the lead's similarity to the next three, even read against the index's own
    # neighbour cohesion: evals/README.md) refused the lone paper's own questions and answered
    # FlashAttention-3 with confidence 1.00 over these indexes
    cluster = [{"title": f"Watermarking generated text, variant {i}",
                "abstract": f"We embed a statistical watermark in generated text by biasing token choices toward a green list, variant {i}."}
               for i in range(copies)]  # fmt: skip
    settings = _assistant_over(tmp_path, [LONE_PAPER, *cluster]).settings
    for q in ["Which papers study zebra routing?", "How does zebra routing balance experts?",
              "How is generated text watermarked?"]:  # fmt: skip
        answer = ask(q, settings=settings)
        assert isinstance(answer, Answer) and not answer.refused, (q, answer.confidence)
    for q in ["What speedup does FlashAttention-3 give on H100 GPUs?", "How does GPT-5 score on MMLU?",
              "How do sea otters use tools to open shellfish?"]:  # fmt: skip
        answer = ask(q, settings=settings)
        assert isinstance(answer, Answer) and answer.refused, (q, answer.confidence)


@pytest.mark.slow
def test_a_question_about_a_benchmark_the_corpus_names_is_answered(seed_settings: Settings) -> None:
    # before the keyword training questions (evals/train_keyword.jsonl, which does not name TruthfulQA)
    # the question model refused it at 0.055: dev questions are paraphrased topics, not benchmark names
    from assistant.text import mentions, name_text

    a = ask("Which papers evaluate on TruthfulQA?", settings=seed_settings)
    assert isinstance(a, Answer) and not a.refused and a.citations, a.confidence
    papers = get_assistant(seed_settings).index.papers.many([c.paper_id for c in a.citations])
    assert all(mentions(name_text(f"{p.title} {p.abstract}"), "TruthfulQA") for p in papers.values())
