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
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from assistant.backends import Turn
from assistant.errors import ConfigError
from assistant.text import content_words, replace_surrogates

History = Sequence[Turn] | Sequence[tuple[str, str]] | None

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
    r"\b((of|among|from|in) (them|these|those)|the above|that one|this one|which ones?|the ones"
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
# What points at the previous answer's papers. A partitive after a word that picks ("which of them", "any
# of these", "none of those", "among them, …") or "which one(s)" *chooses* among them; a demonstrative with
# a noun for papers or methods ("these methods", "the limitations of these approaches"), "the above", or a
# pronoun standing for them ("did they", "does it", "their") asks about *every* one of them. Only the
# question's first clause counts, unless it opens with a connective: in "Which papers study hallucination
# and how do they measure it?" the pronouns stand for what the question itself names.
_CHOOSES = re.compile(
    r"(\b(which|what|any|one|some|none|many|who|each)( \w+)? (of|among|between) (them|these|those|the above)"
    r"|^\W*(and |so |but )?(among|of|between) (them|these|those)|\bwhich ones?|\b(that|this) one)" + _END,
    re.IGNORECASE,
)
_POINTS_AT = re.compile(
    r"\b(the above|(these|those|both|all) (papers|ones|works|studies|methods|approaches|models)"
    r"|they|them|it|its|their|both)" + _END,
    re.IGNORECASE,
)
# A question that asks for papers afresh ("Which papers study…", "Any work on…") names its own subject.
_ASKS_AFRESH = re.compile(
    r"\b(which|what|any|find|list|show me)( \w+)? (papers|works|work|studies|articles)" + _END, re.IGNORECASE
)
_CLAUSE = re.compile(r",|;|:| - | and | or | but ", re.IGNORECASE)
_SUBJECT = re.compile(r"\b(they|it)" + _END, re.IGNORECASE)  # "Do they outperform others?": about them
# More papers than those shown ("Any others?", "Are there others?", "Are there more?", "What else is there?", "other
# approaches?", "alternatives?"), on the same topic, or on it with a further condition when the question
# reads as a follow-up ("What about others that use mixture of experts?").
_OTHERS = re.compile(
    r"\b(others|anything else|what else|alternatives|any more|(are|is) there (any )?more"
    r"|(other|more|further) (papers|ones|works|studies|work|approaches|methods|models|options))" + _END,
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
    is a follow-up is read with the topic before it, so a chain of follow-ups keeps the topic the
    conversation started from, and a new question starts over. An earlier turn about the papers of the
    answer before it ("Which of them…", "Any others?") leaves the topic as it was."""
    topic = ""
    for turn in prior:
        turn = turn.strip()
        if not about_earlier_papers(turn):
            topic = f"{topic} {turn}" if topic and is_follow_up(turn) else turn
    question = question.strip()
    return f"{topic} {question}" if topic and (is_follow_up(question) or about_earlier_papers(question)) else question


def about_earlier_papers(question: str) -> str | None:
    """How ``question`` refers to the previous answer's papers: :data:`CHOOSE` ("Which of them…", "Do any
    of these…"), :data:`EVERY` ("What datasets did they use?", "How do these methods compare?"),
    :data:`OTHERS` (the topic again, without them: "Any others?", "What else is there?"), or None (a new
    question, or a follow-up that continues the topic)."""
    follows = is_follow_up(question)
    head = question if _OPENS_FOLLOW_UP.search(question) else _CLAUSE.split(question, maxsplit=1)[0]
    others = _OTHERS.search(question) and (follows or not has_own_topic(_OTHERS.sub(" ", question)))
    if others and not _SUBJECT.search(head):
        return OTHERS
    if not follows:
        return None
    if _ASKS_AFRESH.search(head) and not _CHOOSES.search(head):
        return None
    if _CHOOSES.search(head):
        return CHOOSE
    return EVERY if _POINTS_AT.search(head) else None


# Words that only point at papers or date them ("which ones", "released in 2024", "came out later").
_DATING = frozenset("one ones released published appeared came come out later earlier newer older recent "
                    "latest year years onwards since after before until".split())


def has_own_topic(question: str) -> bool:
    """Whether ``question`` names something of its own ("use vision-language models", "datasets"),
    beyond pointing at papers and dating them ("How do they compare?", "Which ones came out in 2024?")."""
    return any(not w.isdigit() and w not in _DATING for w in content_words(question))


_YEAR = r"((?:19|20)\d\d)"
_IN_YEAR = re.compile(r"\b(?:from|in|during|of) " + _YEAR + r"\b", re.IGNORECASE)
_SINCE = re.compile(
    r"\b(since|after) " + _YEAR + r"|\b(from|in) " + _YEAR + r" (?:on\b|onwards?\b|or (?:later|after|newer)\b)",
    re.IGNORECASE,
)
_UNTIL = re.compile(
    r"\b(before|until|up to|through) " + _YEAR + r"|\b(from|in) " + _YEAR + r" or (?:earlier|before|older)\b",
    re.IGNORECASE,
)


def years_in(question: str) -> tuple[int | None, int | None]:
    """The year range a follow-up on earlier papers names ("from 2024", "since 2023", "before 2025"):
    ``(since, until)``, None where it names no bound."""
    since = until = None
    if m := _SINCE.search(question):
        word, year = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        since = int(year) + (1 if word.lower() == "after" else 0)
    if m := _UNTIL.search(question):
        word, year = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        until = int(year) - (1 if word.lower() == "before" else 0)
    if since is None and until is None and (m := _IN_YEAR.search(question)):
        since = until = int(m.group(1))
    return since, until


@dataclass
class Earlier:
    """What the conversation so far showed the reader (see :func:`earlier_papers`)."""

    papers: list[str] = field(default_factory=list)  # cited by the last answer that cited any since the topic
    shown_by: int = -1  # the user turn (index into the turns) whose answer cited ``papers``
    seen: list[str] = field(default_factory=list)  # cited by any answer since the topic was set
    confidence: float = 0.0  # the last answer's
    topic: str = ""  # the standalone form of the topic's questions
    topic_confidence: float = 0.0  # the answer's to the topic itself (what "others" are as sure as)


@dataclass
class Step:
    """How one turn is asked, given what came before it (:func:`plan`)."""

    question: str  # what is retrieved and judged
    refers: str | None = None  # CHOOSE, EVERY, OTHERS, or None: asked of the whole index
    within: list[str] | None = None  # only these papers
    without: list[str] = field(default_factory=list)  # none of these papers
    since: int | None = None  # the years the turn names
    until: int | None = None
    glued: str = ""  # the turn read with the topic: how sure an answer about every paper is
    topic: str = ""  # the conversation's topic after this turn
    asks_topic: bool = False  # the turn asks the topic itself (a new question, or one continuing it)
    dated: bool = False  # a choice among the papers by year only ("Which of those are from 2024?")


def plan(turn: str, earlier: Earlier) -> Step:
    """How ``turn`` is asked after ``earlier``: among the papers it refers to, past them, or (a new
    question, or one that continues the topic) as :func:`standalone` reads it. A turn that picks among the
    papers by year only ("Which of those are from 2024?") is about every one of them the years let through."""
    turn = turn.strip()
    refers = about_earlier_papers(turn)
    glued = f"{earlier.topic} {turn}" if earlier.topic else turn
    if refers in (CHOOSE, EVERY) and earlier.papers:
        since, until = years_in(turn)
        dated = refers == CHOOSE and not has_own_topic(turn)
        if dated:
            refers = EVERY
        question = turn if has_own_topic(turn) else glued
        return Step(question, refers, list(earlier.papers), [], since, until, glued, earlier.topic, dated=dated)
    if refers == OTHERS and earlier.seen:
        since, until = years_in(turn)
        return Step(others_query(earlier.topic, turn), OTHERS, None, list(earlier.seen), since, until, glued,
                    earlier.topic)
    if refers:  # nothing to refer to (the last answer was a refusal): read with the topic, which it leaves as is
        return Step(glued, topic=earlier.topic)
    topic = glued if is_follow_up(turn) else turn
    return Step(topic, topic=topic, asks_topic=True)


Recorded = tuple[list[str], float]  # (ids of the papers an answer cited, its confidence)
Cited = Callable[[Step, float], Recorded]  # (step, the earlier answer's confidence) -> what its answer cites


def earlier_papers(prior: list[str], cited: Cited, recorded: list[Recorded | None] | None = None) -> Earlier:
    """What the answers to the user turns ``prior`` (oldest first) showed, from the conversation's latest
    new question on, each turn asked as :func:`plan` asks it: taken from ``recorded`` (what each answer
    cited, as a front end kept it) where it is given, else replayed through ``cited`` (the judgement
    ``ask()`` makes, so the same papers). No papers when the topic's answer cited nothing (a refusal); a
    refused turn about the papers ("None of the 4 papers of the previous answer addresses this.") leaves
    them as they were, so "What datasets did they use?" after it is still about them."""
    out = Earlier()
    turns = [turn.strip() for turn in prior]
    known = recorded if recorded is not None else [None] * len(turns)
    fresh = [i for i, turn in enumerate(turns) if not is_follow_up(turn) and not about_earlier_papers(turn)]
    start = fresh[-1] if fresh else 0
    for i, (turn, kept) in enumerate(zip(turns[start:], known[start:], strict=True), start=start):
        step = plan(turn, out)
        earlier = out.topic_confidence if step.refers == OTHERS else out.confidence
        papers, confidence = kept if kept is not None else cited(step, earlier)
        if not papers and step.refers is not None and out.papers:
            continue  # refused: the papers, the topic and what was seen stay as they were
        out.papers, out.confidence, out.shown_by = papers, confidence, i
        if step.asks_topic:
            out.topic_confidence = out.confidence
        out.topic = step.topic
        out.seen = out.seen + [p for p in out.papers if p not in out.seen]  # a new list: cited may keep it
    return out


def others_query(topic: str, question: str) -> str:
    """What an "others" follow-up is asked as: the topic, with the question's own condition if it has one
    ("What about others that use mixture of experts?")."""
    return topic if not has_own_topic(_OTHERS.sub(" ", question)) else f"{topic} {question}"


def dated_follow_up(question: str) -> tuple[int | None, int | None] | None:
    """The years a follow-up that only dates the topic names ("Any from 2024?", "What about 2025?", "Only
    the ones since 2023?"), or None (no years, or a topic of its own besides)."""
    if not is_follow_up(question) or has_own_topic(question):
        return None
    since, until = years_in(question)
    if since is None and until is None:
        bare = re.findall(r"\b" + _YEAR + r"\b", question)  # "What about 2025?"
        if len(bare) == 1:
            since = until = int(bare[0])
    return None if since is None and until is None else (since, until)


def years_phrase(since: int | None, until: int | None) -> str:
    """'from 2024', 'from 2023 on', 'up to 2024', or '' for no bound."""
    if since is not None and since == until:
        return f"from {since}"
    return " and ".join(x for x in (f"from {since} on" if since is not None else "",
                                     f"up to {until}" if until is not None else "") if x)


def none_of_previous(n: int, before: bool = False) -> str:
    """'None of the 4 papers of the previous answer' or 'The paper of the previous answer' (then 'does not');
    with ``before``, of 'an earlier answer' (the previous one was a refusal)."""
    which = "an earlier answer" if before else "the previous answer"
    return f"The paper of {which} does not" if n == 1 else f"None of the {n} papers of {which}"


def papers_of_previous(n: int, before: bool = False) -> str:
    """'the paper of the previous answer' or 'the 4 papers of the previous answer'; with ``before``, of
    'an earlier answer' (the previous one was a refusal)."""
    which = "an earlier answer" if before else "the previous answer"
    return f"the paper of {which}" if n == 1 else f"the {n} papers of {which}"


def normalise_history(history: History) -> list[Turn]:
    """Accept ``[{"role", "content"}]`` or ``[(user, assistant), …]`` turns."""
    turns: list[Turn] = []
    if history is not None and (isinstance(history, (str, bytes, dict)) or not isinstance(history, Iterable)):
        raise ConfigError(f"history: expected a list of turns, got {type(history).__name__}")
    for item in history or []:
        if isinstance(item, dict):
            if item.get("content"):
                turn: Turn = {"role": str(item.get("role", "user")), "content": replace_surrogates(str(item["content"]))}
                papers = item.get("papers")  # what an answer cited, as a front end kept it (assistant.narrowing)
                if isinstance(papers, (list, tuple)) and all(isinstance(p, str) for p in papers):
                    turn["papers"] = list(papers)
                    if isinstance(item.get("confidence"), (int, float)):
                        turn["confidence"] = float(item["confidence"])
                turns.append(turn)
        elif isinstance(item, (str, bytes)) or not isinstance(item, Sequence) or len(item) != 2:
            raise ConfigError("history: each turn is a {'role', 'content'} dict or a (user, assistant) pair")
        else:
            user, bot = item
            if user:
                turns.append({"role": "user", "content": replace_surrogates(str(user))})
            if bot:
                turns.append({"role": "assistant", "content": replace_surrogates(str(bot))})
    return turns
