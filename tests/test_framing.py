"""A question's framing ('For my PhD, …', '… tia') is set aside, not read as a topic the corpus lacks."""

from __future__ import annotations

import pytest

from assistant.answering import ask
from assistant.framing import edge_clauses, framing_candidates, set_aside_note
from assistant.models import Answer
from assistant.settings import Settings

LORA_Q = "Which papers reduce catastrophic forgetting with LoRA?"


def test_edge_clauses_are_a_leading_clause_and_a_first_or_last_sentence() -> None:
    assert edge_clauses("For my PhD, which papers use LoRA?") == [("For my PhD,", "which papers use LoRA?")]
    assert edge_clauses("Writing a rebuttal - which papers use LoRA?") == [
        ("Writing a rebuttal -", "which papers use LoRA?")]
    # sentences end at ? ! . whatever the next word's case ('e.g.', 'Dr.' end none); one that asks is kept
    assert edge_clauses("Which papers use LoRA? tia") == [("tia", "Which papers use LoRA?")]
    assert edge_clauses("Hi Dr. Smith. Which papers use LoRA? tia", last=False) == [
        ("Hi Dr. Smith.", "Which papers use LoRA? tia")]
    assert edge_clauses("Is QuuxNet any good? I mean for retrieval over long legal documents.") == [
        ("I mean for retrieval over long legal documents.", "Is QuuxNet any good?")]
    assert edge_clauses("Which methods, e.g. LoRA, cut memory?") == [("Which methods,", "e.g. LoRA, cut memory?")]
    # a comma inside brackets does not end the leading clause
    assert edge_clauses("Which papers (e.g., LoRA) cut memory, and by how much?") == [
        ("Which papers (e.g., LoRA) cut memory,", "and by how much?")]
    assert edge_clauses("Which papers use LoRA?") == []


def test_a_framing_clause_writes_only_what_no_paper_writes_and_is_the_smaller_part() -> None:
    q = "For my PhD, which papers reduce forgetting with LoRA?"
    assert framing_candidates(q, ["PhD"], ["PhD"]) == [("For my PhD,", "which papers reduce forgetting with LoRA?")]
    # a clause that also names something the corpus has is the topic ('MemoryBank' is indexed)
    assert framing_candidates("MemoryBank vs QuuxMem: which one pages memory in and out?", ["QuuxMem"], ["QuuxMem"]) == []
    # a name in the question's one clause is no framing
    assert framing_candidates("How do unlearning methods score on WMDP?", ["WMDP"], ["WMDP"]) == []
    # an ordinary word no paper writes frames only when the clause has no other word
    assert framing_candidates("Hi all, which papers cut memory with LoRA?", [], ["hi"]) == [
        ("Hi all,", "which papers cut memory with LoRA?")]
    assert framing_candidates("For speech in Swahili, which papers cut memory with LoRA?", [], ["swahili"]) == []
    # a bare name opening the question is its subject
    assert framing_candidates("QuuxNet: what speedups does it report on H100 GPUs?", ["QuuxNet"], ["QuuxNet"]) == []
    assert framing_candidates("For QuuxNet, what speedups does it report on GPUs?", ["QuuxNet"], ["QuuxNet"]) == [
        ("For QuuxNet,", "what speedups does it report on GPUs?")]
    # the rest must carry more of the question than the clause
    assert framing_candidates("For my PhD thesis at ETH Zurich, which papers use LoRA?", ["ETH"], ["ETH"]) == []


def test_the_note_names_what_each_set_aside_clause_wrote_that_no_paper_writes() -> None:
    note = set_aside_note(["For my PhD,", "tia"], ["PhD", "QuuxNet", "tia"])
    assert note == "Read without “For my PhD,” and “tia”: no indexed paper writes 'PhD', 'tia'."
    label = Answer(question="q", standalone_question="q", text="t", backend="extractive", confidence=0.8,
                   not_in_corpus=["PhD"], set_aside=["For my PhD,"]).confidence_label()
    assert label == "confidence 0.80 · read without 'For my PhD,'"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("question", "clauses"),
    [
        (f"For my PhD, {LORA_Q[0].lower()}{LORA_Q[1:]}", ["For my PhD,"]),
        (f"{LORA_Q} Asking for a NeurIPS rebuttal.", ["Asking for a NeurIPS rebuttal."]),
        (f"Hi all! As an MIT student, {LORA_Q[0].lower()}{LORA_Q[1:]}", ["Hi all!", "As an MIT student,"]),
    ],
)
def test_a_question_framed_by_a_name_no_paper_writes_is_answered_as_without_it(
    seed_settings: Settings, question: str, clauses: list[str]
) -> None:
    plain = ask(LORA_Q, settings=seed_settings)
    a = ask(question, settings=seed_settings)
    streamed = "".join(ask(question, settings=seed_settings, stream=True))  # type: ignore[arg-type]
    assert isinstance(a, Answer) and isinstance(plain, Answer) and not plain.refused
    assert not a.refused, (a.confidence, a.not_in_corpus)  # refused at 0.003-0.007 when read whole
    assert a.set_aside == clauses and a.confidence == plain.confidence
    assert {c.paper_id for c in a.citations} == {c.paper_id for c in plain.citations}
    assert a.text.startswith("Read without “") and streamed.startswith(a.text.splitlines()[0])
    assert a.checks.uncited_sentences == [], "the note is a lead-in, not an uncited claim"


@pytest.mark.slow
def test_chatter_no_paper_writes_does_not_lift_a_question_the_corpus_lacks(seed_settings: Settings) -> None:
    # an ordinary word no abstract writes reads as informal wording, which answerable questions have:
    # 'tia' lifted this one from 0.08 to past the refusal line
    q = "Which papers describe the mating calls of tree frogs in the Amazon basin?"
    plain = ask(q, settings=seed_settings)
    a = ask(f"{q} tia", settings=seed_settings)
    assert isinstance(a, Answer) and isinstance(plain, Answer) and plain.refused
    assert a.refused and a.set_aside == ["tia"] and a.confidence == plain.confidence
    assert a.text.startswith("Read without “tia”: no indexed paper writes 'tia'.\n" + plain.text.splitlines()[0])
    # the label keeps the refusal's reason beside what was set aside
    assert a.confidence_label() == plain.confidence_label() .replace(" · no", " · read without 'tia' · no")


@pytest.mark.slow
def test_a_name_inside_the_question_or_beside_an_indexed_one_is_not_set_aside(seed_settings: Settings) -> None:
    q = "What speedup does QuuxAttention-9 give over FlashAttention-2 on H100 GPUs?"
    a = ask(q, settings=seed_settings)
    assert isinstance(a, Answer) and a.set_aside == [] and a.standalone_question == q
    assert "QuuxAttention-9" in a.not_in_corpus
    # the leading clause names an indexed method: it is the topic, so the absent one still counts
    b = ask("MemoryBank vs QuuxMem: which one pages memory in and out like an operating system?",
            settings=seed_settings)
    assert isinstance(b, Answer) and b.refused and b.set_aside == [], b.confidence


@pytest.mark.slow
def test_a_question_sentence_or_a_bare_name_opening_it_is_never_set_aside(seed_settings: Settings) -> None:
    for q in [
        "Which unlearning methods are evaluated on QuuxBench? Looking for results on hazardous knowledge removal "
        "in large language models.",  # the second sentence is longer, but the first one asks
        "QuuxAttention-9: what speedups does it report on H100 GPUs over FlashAttention-2 for long sequences?",
    ]:
        a = ask(q, settings=seed_settings)
        assert isinstance(a, Answer) and a.set_aside == [] and a.standalone_question == q, (q, a.confidence)
        assert "read without" not in a.confidence_label() and not a.text.startswith("Read without")


@pytest.mark.slow
def test_a_follow_up_keeps_its_own_words_and_loses_the_topics_framing(seed_settings: Settings) -> None:
    first = ask(f"For my PhD, {LORA_Q[0].lower()}{LORA_Q[1:]}", settings=seed_settings)
    assert isinstance(first, Answer) and not first.refused
    history = [{"role": "user", "content": first.question}, first.as_turn()]
    for follow_up in ["What about vision models?", "And on QuuxTPU chips."]:  # the follow-up is never framing
        a = ask(follow_up, settings=seed_settings, history=history)
        assert isinstance(a, Answer) and a.set_aside == ["For my PhD,"], (follow_up, a.set_aside)
        assert a.standalone_question.endswith(follow_up), a.standalone_question
