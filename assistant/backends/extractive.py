"""The extractive backend: no LLM. Composes answers from the retrieved abstracts' own sentences.

What to say is decided by :mod:`assistant.judgement` (which papers answer, which of their sentences
carry the answer); this module only lays it out. The shape follows the evidence, not a guess at the
question's wording: one paper that answers gets its best four sentences, two or three get up to three
each; more become a list in which the three most relevant papers keep three sentences each and each of the
rest gets ``SENTENCE_BUDGET // n`` (at least one). Every sentence is quoted verbatim and cited.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TYPE_CHECKING

from assistant.backends import REFUSAL, Request, Turn
from assistant.citations import defuse
from assistant.evidence import PaperEvidence, Sentence
from assistant.text import content_words

if TYPE_CHECKING:
    from assistant.settings import Settings

# A follow-up leans on the previous question: it opens with a connective or a bare pronoun, refers back
# to earlier results ("which of them", "the above"), uses a pronoun with hardly a topic of its own ("What
# datasets did they use?"), or is a fragment of a few words opening with a preposition ("for vision
# models?"; "Any work on MoE?" is a new question, "Any from 2024?" refers back). A
# pronoun inside a question that names its own topic ("…speculative decoding and its acceptance rate",
# "…use tools and what limits them") does not make it one. English anaphora, not any question's wording;
# ``(?![\w-])`` so that 'In-context' or 'So-called' do not open like 'in' or 'so'.
_END = r"(?![\w-])"
_OPENS_FOLLOW_UP = re.compile(
    r"^\W*(and|also|or|but|then|so|what about|how about|same|those|these|they|them|it|its|their)" + _END,
    re.IGNORECASE,
)
_REFERS_BACK = re.compile(
    r"\b((of|among|from|in) (them|these|those)|the above|that one|this one|which one|the ones"
    r"|any (others|of|from|since|before|after|in|newer|older)"
    r"|(these|those) (papers|ones|works|methods|approaches|models|results))" + _END,
    re.IGNORECASE,
)
_PRONOUN = re.compile(r"\b(they|them|it|its|their|these|those)" + _END, re.IGNORECASE)
OWN_TOPIC_WORDS = 3  # a question with a pronoun and this many content words has a topic of its own
_OPENS_FRAGMENT = re.compile(
    r"^\W*(for|in|on|with|without|only|except|excluding|beyond|more|fewer|just|even)" + _END, re.IGNORECASE
)
FRAGMENT_WORDS = 4


def is_follow_up(question: str) -> bool:
    """Whether ``question`` reads as a continuation of the previous one rather than a new question."""
    if _OPENS_FOLLOW_UP.search(question) or _REFERS_BACK.search(question):
        return True
    if _PRONOUN.search(question) and len(content_words(question)) < OWN_TOPIC_WORDS:
        return True
    return len(question.split()) <= FRAGMENT_WORDS and bool(_OPENS_FRAGMENT.search(question))


def standalone(question: str, prior: list[str]) -> str:
    """``question`` made standalone from the earlier user turns ``prior`` (oldest first): each turn that
    is a follow-up is read with the standalone form of the turn before it, so a chain of follow-ups keeps
    the topic the conversation started from; a new question starts over."""
    current = ""
    for turn in [*prior, question]:
        turn = turn.strip()
        current = f"{current} {turn}" if current and is_follow_up(turn) else turn
    return current


LEAD_SENTENCES = 3  # each of the LEAD_PAPERS most relevant of two or more answering papers (a layout choice,
# not fitted: length against facts, see evals/README.md)
SENTENCE_BUDGET = 9  # each further paper of a longer list gets budget // n of them, at least one
# Sentences when one paper answers (a layout choice: length against facts; see evals/README.md).
# Out-of-fold, a gold paper's 3 / 4 / 5 best-scored sentences hold 71% / 82% / 89% of its answer sentences.
SINGLE_PAPER_SENTENCES = 4
LEAD_PAPERS = 3  # this many of the most relevant papers keep LEAD_SENTENCES (a layout choice)
# Extra sentences need this share of the paper's best sentence score (a layout choice: 0.35 until the
# sentence model read `gap_specific`, whose wider spread of scores then cut answers short; 0.25 keeps
# their length where it was, see evals/README.md).
MIN_SENTENCE_SHARE = 0.25


_TIE = re.compile(r"(?<=\S)~(?=\S)")  # LaTeX's unbreakable space ('Table~2'); '~10x' (about) stays


def cite(sentence: str, n: int) -> str:
    """Put the citation inside the sentence's final punctuation: 'x y [n].' (LaTeX escapes dropped)."""
    body = _TIE.sub(" ", defuse(sentence).replace("\\%", "%")).rstrip()
    end = ""
    while body and body[-1] in ".!?;:":
        end = body[-1] + end
        body = body[:-1]
    return f"{body} [{n}]{end or '.'}"


def sentences_per_paper(n_papers: int, rank: int = 0) -> int:
    """How many sentences the cited paper at ``rank`` (0 = the most relevant) gets when ``n_papers``
    papers answer: the :data:`LEAD_PAPERS` most relevant get :data:`LEAD_SENTENCES` each (a comparison,
    even one the paper model widened, quotes what each compared paper does and how), the others of a
    longer list ``SENTENCE_BUDGET // n_papers`` each, at least one and at most :data:`LEAD_SENTENCES`."""
    if n_papers <= 1:
        return SINGLE_PAPER_SENTENCES
    if rank < LEAD_PAPERS:
        return LEAD_SENTENCES
    return max(1, min(LEAD_SENTENCES, SENTENCE_BUDGET // n_papers))


def pick(paper: PaperEvidence, n: int) -> list[Sentence]:
    """The paper's ``n`` best sentences (by the judgement's score), in abstract order; extra sentences
    must score at least :data:`MIN_SENTENCE_SHARE` of the best one."""
    ranked = sorted(paper.sentences, key=lambda s: -s.score)
    if not ranked:
        return []
    keep = [ranked[0]] + [s for s in ranked[1:n] if s.score >= MIN_SENTENCE_SHARE * ranked[0].score]
    return sorted(keep, key=lambda s: s.position)


class ExtractiveBackend:
    name = "extractive"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def condense(self, question: str, history: list[Turn]) -> str:
        """Combine the turns: a follow-up is read together with the question it follows (:func:`standalone`)."""
        prior = [t["content"] for t in history if t.get("role") == "user" and t.get("content")]
        return standalone(question, prior) if prior else question

    def generate(self, req: Request) -> Iterator[str]:
        chosen = req.evidence.chosen()
        if not chosen:
            yield REFUSAL
            return
        if len(chosen) == 1:
            pos, paper = chosen[0]
            picked = pick(paper, SINGLE_PAPER_SENTENCES)
            req.quoted[pos] = max(picked, key=lambda s: s.score).text if picked else paper.hit.paper.abstract[:200]
            yield " ".join(cite(s.text, pos) for s in picked) if picked else REFUSAL
            return
        yield f"{len(chosen)} of the indexed papers address this:\n"
        for rank, (pos, paper) in enumerate(chosen):
            per = sentences_per_paper(len(chosen), rank)
            picked = pick(paper, per)
            if not picked:
                continue
            if per == 1:  # one line per paper: the sentence closest in meaning to the question
                picked = [max(paper.sentences, key=lambda s: s.dense)]
            req.quoted[pos] = max(picked, key=lambda s: s.score).text
            yield f"- {defuse(paper.hit.paper.title)}: " + " ".join(cite(s.text, pos) for s in picked) + "\n"
