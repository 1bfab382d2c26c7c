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
from assistant.conversation import standalone
from assistant.evidence import PaperEvidence, Sentence

if TYPE_CHECKING:
    from assistant.settings import Settings

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


def quoted(text: str) -> str:
    """An abstract's sentence (or title) as an answer writes it: defused, LaTeX ties and escapes dropped."""
    return _TIE.sub(" ", defuse(text).replace("\\%", "%")).rstrip()


def cite(sentence: str, n: int) -> str:
    """Put the citation inside the sentence's final punctuation: 'x y [n].' (LaTeX escapes dropped)."""
    body = quoted(sentence)
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
        yield f"Each of {req.scope}:\n" if req.every else f"{len(chosen)} of {req.scope} address this:\n"
        for rank, (pos, paper) in enumerate(chosen):
            per = sentences_per_paper(len(chosen), rank)
            picked = pick(paper, per)
            if not picked:
                continue
            if per == 1:  # one line per paper: the sentence closest in meaning to the question
                picked = [max(paper.sentences, key=lambda s: s.dense)]
            req.quoted[pos] = max(picked, key=lambda s: s.score).text
            yield f"- {defuse(paper.hit.paper.title)}: " + " ".join(cite(s.text, pos) for s in picked) + "\n"
