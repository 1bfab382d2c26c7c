"""Prompt building for the LLM backends (``openai`` and ``local``), budgeted with tiktoken.

The chat is two messages: ``prompts/system.txt`` and ``prompts/answer.txt`` filled with the
question and the numbered sources (``prompts/source.txt``). Source ``[n]`` is always hit ``n``
(1-based position in ``req.hits``): budgeting may drop *trailing* sources and shorten abstracts,
but never renumbers, so a citation ``[n]`` in the reply maps straight back to ``hits[n-1]``.

Abstracts are data. Each one sits inside ``<abstract>…</abstract>`` within ``<source id="n">``;
delimiter-like tags inside titles and abstracts are escaped so that text from a paper cannot
close its delimiter and pose as instructions (the system prompt tells the model to ignore any
instruction found inside an abstract), and chat-template control tokens (``<|im_end|>``) are
broken up so that they cannot end the user turn of a local model.

Budget: ``system + user message + llm.max_tokens <= llm.context_window``. When the sources do
not fit: (1) drop trailing sources down to :data:`MIN_SOURCES`; (2) cut the longest abstracts
at sentence boundaries (the first sentence of each is kept); (3) drop trailing sources down to
one; (4) cut the last abstract by tokens. A question too long for the window is a ConfigError.

Two prompt styles (``llm.evidence``): ``abstracts`` (the whole abstract of every hit) and ``sentences``
(for small models on a CPU: only the top ``llm.max_sources`` hits, each shown as its
``llm.sentences_per_source`` best-supporting sentences from :class:`~assistant.evidence.Evidence`, after
two worked examples from ``prompts/examples.txt``: a cited answer and a refusal). The examples sit
right after the system prompt, so a llama.cpp server reuses their KV cache from one answer to the next.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from assistant.citations import defuse
from assistant.errors import ConfigError
from assistant.models import Hit
from assistant.offline import count_tokens
from assistant.prompts import render, template
from assistant.settings import LLMSettings
from assistant.text import split_sentences

if TYPE_CHECKING:
    from assistant.evidence import Evidence

Counter = Callable[[str], int]
Message = dict[str, str]

MIN_SOURCES = 3  # trailing sources are dropped down to this many before abstracts are shortened
MESSAGE_OVERHEAD = 4  # chat-format tokens per message (role markers, separators)
REPLY_PRIMING = 3  # tokens that open the assistant's reply
ELLIPSIS = " …"

# <abstract>, </abstract>, < / source id="3" > … in any case: the delimiters we use around sources
_DELIMITER_TAG = re.compile(r"<\s*/?\s*(?:abstract|source)\b[^<>]*>?", re.IGNORECASE)
# chat-template control tokens (<|im_start|>, <|eot_id|>, <|end|>): never let data carry them
_CONTROL_TOKEN = re.compile(r"<\|([^<>|]{0,40})\|>")


def escape_data(text: str) -> str:
    """Neutralise anything in paper text that could close a source delimiter, end a chat turn, or pose
    as a citation of another source (a "[3]" inside an abstract is shown to the model as "(3)")."""
    text = _DELIMITER_TAG.sub(lambda m: m.group(0).replace("<", "&lt;").replace(">", "&gt;"), defuse(text))
    return _CONTROL_TOKEN.sub(lambda m: f"&lt;|{m.group(1)}|&gt;", text)


def format_source(n: int, hit: Hit, abstract: str | None = None) -> str:
    """One numbered source block (``prompts/source.txt``); ``abstract`` overrides the paper's."""
    p = hit.paper
    return render(
        "source",
        n=n,
        title=escape_data(" ".join(p.title.split())),
        date=escape_data(p.date or "unknown"),
        abstract=escape_data(" ".join((p.abstract if abstract is None else abstract).split())),
    )


@dataclass
class _Source:
    n: int
    hit: Hit
    sentences: list[str]
    kept: int  # sentences kept
    cut_text: str | None = None  # set when the abstract was cut by tokens (last resort)
    tokens: int = 0

    def abstract(self) -> str:
        if self.cut_text is not None:
            return self.cut_text
        text = " ".join(self.sentences[: self.kept])
        return text + ELLIPSIS if self.kept < len(self.sentences) else text

    def text(self) -> str:
        return format_source(self.n, self.hit, self.abstract())


@dataclass
class Context:
    """The messages for one answer, and what budgeting did to the sources."""

    messages: list[Message]
    sources: list[int] = field(default_factory=list)  # hit positions sent, in order (always 1..m)
    dropped: list[int] = field(default_factory=list)  # hit positions left out (trailing)
    truncated: list[int] = field(default_factory=list)  # hit positions whose abstract was shortened
    prompt_tokens: int = 0  # as counted by the budget's counter (incl. chat overhead)


def messages_tokens(messages: Sequence[Message], count: Counter = count_tokens) -> int:
    """Prompt tokens of a chat, including the per-message chat-format overhead."""
    return sum(count(m["content"]) + MESSAGE_OVERHEAD for m in messages) + REPLY_PRIMING


def example_messages() -> list[Message]:
    """The worked examples of ``prompts/examples.txt`` as alternating user/assistant messages."""
    messages = []
    for block in re.split(r"^### ", template("examples"), flags=re.MULTILINE):
        role, _, content = block.partition("\n")
        if role.strip() in ("user", "assistant"):
            messages.append({"role": role.strip(), "content": content.strip()})
    return messages


def best_sentences(evidence: Evidence, hit_pos: int, per_source: int) -> str:
    """The ``per_source`` best-supporting sentences of hit ``hit_pos`` in abstract order (gaps marked …)."""
    sentences = evidence.papers[hit_pos - 1].sentences
    top = sorted(sorted(range(len(sentences)), key=lambda i: -sentences[i].score)[:per_source])
    text = ""
    for j, i in enumerate(top):
        if j:
            text += " " if i == top[j - 1] + 1 else ELLIPSIS + " "
        text += sentences[i].text.strip()
    return text + (ELLIPSIS if top and top[-1] < len(sentences) - 1 else "")


def build_context(
    question: str,
    hits: Sequence[Hit],
    *,
    context_window: int,
    max_tokens: int,
    count: Counter = count_tokens,
    abstracts: Sequence[str] | None = None,
    examples: bool = False,
) -> Context:
    """System + user messages for ``question`` over ``hits``, fitted into ``context_window``.

    ``abstracts`` replaces the papers' abstracts (hit n shows ``abstracts[n-1]``); ``examples`` puts the
    worked examples between the system prompt and the question.
    """
    system = template("system").strip()
    shots = example_messages() if examples else []
    sources = []
    for n, h in enumerate(hits, start=1):
        text = h.paper.abstract if abstracts is None else abstracts[n - 1]
        sentences = split_sentences(text) or [text]
        sources.append(_Source(n, h, sentences, len(sentences)))

    def user_message(kept: Sequence[_Source]) -> str:
        return render("answer", sources="\n\n".join(s.text() for s in kept), question=question.strip())

    base = messages_tokens([{"content": system}, *shots, {"content": user_message([])}], count)
    budget = context_window - max_tokens - base
    if budget < 0:
        raise ConfigError(
            f"llm.context_window ({context_window}) is too small for the prompt ({base} tokens without "
            f"sources) plus llm.max_tokens ({max_tokens}); raise llm.context_window or lower llm.max_tokens"
        )

    def measure(s: _Source) -> None:
        s.tokens = count(s.text()) + 2  # + the blank line joining it to the next source

    for s in sources:
        measure(s)
    kept = list(sources)
    truncated: set[int] = set()

    def used() -> int:
        return sum(s.tokens for s in kept)

    # (1) drop trailing sources down to MIN_SOURCES
    while used() > budget and len(kept) > MIN_SOURCES:
        kept.pop()
    # (2) cut the longest abstracts at sentence boundaries (keep each one's first sentence)
    while used() > budget:
        longest = max((s for s in kept if s.kept > 1), key=lambda s: s.tokens, default=None)
        if longest is None:
            break
        longest.kept -= 1
        truncated.add(longest.n)
        measure(longest)
    # (3) drop trailing sources down to one
    while used() > budget and len(kept) > 1:
        kept.pop()
    # (4) cut the one remaining abstract by tokens
    if kept and used() > budget:
        last = kept[0]
        text = " ".join(last.sentences)
        words = text.split()
        lo, hi = 0, len(words)
        while lo < hi:  # the most words that fit
            mid = (lo + hi + 1) // 2
            last.cut_text = " ".join(words[:mid]) + ELLIPSIS
            measure(last)
            if last.tokens <= budget:
                lo = mid
            else:
                hi = mid - 1
        if lo == 0:
            kept = []
        else:
            last.cut_text = " ".join(words[:lo]) + ELLIPSIS
            measure(last)
            truncated.add(last.n)
    if hits and not kept:
        raise ConfigError(
            f"llm.context_window ({context_window}) leaves no room for any source after the prompt "
            f"and llm.max_tokens ({max_tokens}); raise llm.context_window or lower llm.max_tokens"
        )

    messages = [
        {"role": "system", "content": system},
        *shots,
        {"role": "user", "content": user_message(kept)},
    ]
    return Context(
        messages=messages,
        sources=[s.n for s in kept],
        dropped=[s.n for s in sources[len(kept) :]],
        truncated=sorted(n for n in truncated if n <= len(kept)),
        prompt_tokens=messages_tokens(messages, count),
    )


def answer_context(
    question: str,
    hits: Sequence[Hit],
    llm: LLMSettings,
    count: Counter = count_tokens,
    evidence: Evidence | None = None,
) -> Context:
    """:func:`build_context` as the ``llm`` settings section asks (window, reply size, ``llm.evidence``).

    ``sentences`` mode needs the scored ``evidence``; without it the whole abstracts are shown.
    """
    if llm.evidence == "sentences" and evidence is not None:
        hits = hits[: llm.max_sources]
        shown = [best_sentences(evidence, n, llm.sentences_per_source) for n in range(1, len(hits) + 1)]
        return build_context(
            question, hits, context_window=llm.context_window, max_tokens=llm.max_tokens, count=count,
            abstracts=shown, examples=True,
        )
    return build_context(
        question, hits, context_window=llm.context_window, max_tokens=llm.max_tokens, count=count
    )


def history_text(history: Sequence[Message], *, max_turns: int = 6, max_chars: int = 1200) -> str:
    """The last turns of a conversation as 'User: …' / 'Assistant: …' lines for the condense prompt."""
    lines = []
    for turn in list(history)[-max_turns:]:
        content = " ".join(str(turn.get("content", "")).split())
        if not content:
            continue
        if len(content) > max_chars:
            content = content[:max_chars].rsplit(" ", 1)[0] + ELLIPSIS
        role = "Assistant" if turn.get("role") == "assistant" else "User"
        lines.append(f"{role}: {content}")
    return "\n".join(lines)


def condense_messages(question: str, history: Sequence[Message]) -> list[Message]:
    """The one-message chat that asks a model to rewrite a follow-up as a standalone question."""
    return [
        {
            "role": "user",
            "content": render("condense", history=history_text(history), question=question.strip()),
        }
    ]


_LEAD = re.compile(r"^\s*(?:standalone(?: question)?|(?:rewritten )?question)\s*:\s*", re.IGNORECASE)


def clean_condensed(reply: str | None, fallback: str) -> str:
    """The standalone question from a condense reply (first non-empty line, unquoted); ``fallback`` if empty."""
    for line in (reply or "").splitlines():
        line = _LEAD.sub("", line).strip().strip("\"'`“”").strip()
        if line:
            return line
    return fallback
