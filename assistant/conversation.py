"""Follow-up questions: which turns lean on the one before, and which ask about its papers.

Two readings of a follow-up, both English anaphora and connectives, never any question's wording:

- a follow-up that continues the *topic* ("What about for vision models?", "And in 2025?") is read together
  with the question it follows (:func:`standalone`);
- a follow-up about the *papers* of the previous answer ("Which of them use vision-language models?",
  "What datasets did they use?") is asked of those papers only (:func:`about_earlier_papers`,
  :func:`earlier_papers`): the corpus is narrowed to what the reader was just shown, and the question is
  asked in its own words when it has a topic of its own, so that it can pick among them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

from assistant.text import content_words

# A follow-up leans on the previous question: it opens with a connective or a bare pronoun, refers back
# to earlier results ("which of them", "the above"), uses a pronoun with hardly a topic of its own ("What
# datasets did they use?"), or is a fragment of a few words opening with a preposition ("for vision
# models?"; "Any work on MoE?" is a new question, "Any from 2024?" refers back). A
# pronoun inside a question that names its own topic ("…speculative decoding and its acceptance rate",
# "…use tools and what limits them") does not make it one. ``(?![\w-])`` so that 'In-context' or
# 'So-called' do not open like 'in' or 'so'.
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
# What points at the previous answer's papers. A partitive ("which of them", "any of these", "among
# those") or "which one" *chooses* among them; a demonstrative with a noun for papers or methods ("these
# methods"), "the above", or a pronoun standing for them ("did they", "does it", "their") asks about *every*
# one of them. "Any others?", "Any from 2024?" and "What about for vision models?" continue the topic instead
# (more papers, not these).
_CHOOSES = re.compile(r"\b((of|among|between) (them|these|those|the above)|(which|that|this) one)" + _END, re.IGNORECASE)
_POINTS_AT = re.compile(
    r"\b(the above|(these|those|both|all) (papers|ones|works|studies|methods|approaches|models)"
    r"|they|them|it|its|their|both)" + _END,
    re.IGNORECASE,
)
# More papers on the same topic than those shown ("Any others?", "What else is there?", "other papers?").
_OTHERS = re.compile(
    r"\b(any (others|more)|anything else|what else|(other|more|further) (papers|ones|works|studies|work))" + _END,
    re.IGNORECASE,
)
CHOOSE, EVERY, OTHERS = "choose", "every", "others"


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


def about_earlier_papers(question: str) -> str | None:
    """How ``question`` refers to the previous answer's papers: :data:`CHOOSE` ("Which of them…", "Do any
    of these…"), :data:`EVERY` ("What datasets did they use?", "How do these methods compare?"),
    :data:`OTHERS` (the topic again, without them: "Any others?", "What else is there?"), or None (a new
    question, or a follow-up that continues the topic)."""
    asks_for_more = _OTHERS.search(question) and len(content_words(_OTHERS.sub(" ", question))) == 0
    if not is_follow_up(question) and not asks_for_more:
        return None
    if _OTHERS.search(question):
        return OTHERS
    if _CHOOSES.search(question):
        return CHOOSE
    return EVERY if _POINTS_AT.search(question) else None


def has_own_topic(question: str) -> bool:
    """Whether ``question`` names something of its own ("use vision-language models", "datasets"),
    beyond pointing at papers and years ("How do they compare?", "Which of those are from 2024?")."""
    return any(not w.isdigit() for w in content_words(question))


# (question, only these papers or None, none of these papers, how it refers to them, the earlier answer's
# confidence) -> (ids of the papers its answer cites, its confidence)
Cited = Callable[[str, list[str] | None, list[str], str | None, float], tuple[list[str], float]]


@dataclass
class Earlier:
    """What the conversation so far showed the reader (see :func:`earlier_papers`)."""

    papers: list[str] = field(default_factory=list)  # cited by the last answer
    seen: list[str] = field(default_factory=list)  # cited by any answer since the topic was set
    confidence: float = 0.0  # the last answer's
    topic: str = ""  # the standalone form of the topic's questions


def earlier_papers(prior: list[str], cited: Cited) -> Earlier:
    """Replay the user turns ``prior`` (oldest first) through ``cited`` (the judgement ``ask()`` makes,
    so the same papers) from the conversation's latest new question on: a turn that chooses among the
    papers before it is asked among them, one about every one of them keeps them, one asking for others
    is asked without any shown so far, and any other turn is asked as its standalone form. No papers
    when there is no earlier turn or the last answer cited nothing (a refusal)."""
    out = Earlier()
    fresh = [i for i, turn in enumerate(prior) if not is_follow_up(turn) and not about_earlier_papers(turn)]
    for turn in prior[fresh[-1] if fresh else 0 :]:
        turn = turn.strip()
        refers = about_earlier_papers(turn) if out.seen else None
        if refers == EVERY and out.papers:
            continue
        if refers == CHOOSE and out.papers:
            query = turn if has_own_topic(turn) else f"{out.topic} {turn}"
            out.papers, out.confidence = cited(query, out.papers, [], CHOOSE, out.confidence)
        elif refers == OTHERS:
            out.papers, out.confidence = cited(out.topic, None, out.seen, OTHERS, out.confidence)
        else:
            out.topic = f"{out.topic} {turn}" if out.topic and is_follow_up(turn) else turn
            out.papers, out.confidence = cited(out.topic, None, [], None, 0.0)
        out.seen = out.seen + [p for p in out.papers if p not in out.seen]  # a new list: cited may keep it
    return out
