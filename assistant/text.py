"""Text helpers shared by keyword search, sentence selection and citation checks."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any

# Letters and digits of any script (Cyrillic, Greek, CJK...), not only ASCII: an index of non-Latin papers
# must still have keyword terms. ``[^\W_]`` is a Unicode letter or digit.
_WORD = re.compile(r"[^\W_]+(?:[.'][^\W_]+)*")
_NUMBER = re.compile(r"(?<![\w.])[$]?\d+(?:[.,]\d+)*(?:\s?%|x\b|×)?")
_SENT_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")
# listings sometimes glue sentences: "assistant.Based on" (split_sentences adds the missing space)
_GLUED = re.compile(r"(?<=[a-z]{2}[.!?])(?=[A-Z][a-z])")
_ABBREV = re.compile(r"\b(?:e\.g|i\.e|et al|etc|vs|Fig|Eq|cf|approx|resp)\.$", re.IGNORECASE)
# a question typed in lower case ends a sentence before any word ("…with LoRA? tia"), and not after a title
_ANY_CASE_END = re.compile(r"(?<=[.!?])\s+")
_TITLE = re.compile(r"\b(?:no|dr|prof|mr|mrs|ms|st|u\.s|u\.k)\.$", re.IGNORECASE)

STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have having
    he her here hers herself him himself his how i if in into is it its itself just me more most my myself no
    nor not now of off on once only or other our ours ourselves out over own same she should so some such than
    that the their theirs them themselves then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours yourself yourselves
    paper papers propose proposes proposed method methods approach approaches work works study studies show
    shows use uses using used via also may might must whether whose within without toward towards""".split()
)

# Words that frame a question rather than name its topic ("how much", "according to", "agree on").
QUESTION_WORDS = frozenset(
    """according agree agreed always answer bad badly beat beating came cheaper choose come compare compared
    comparison contrast contribute could describe describes differ difference different do does especially
    examine examines explain explicitly find finding findings get gets give giving good help helps instead
    kind kinds little make makes many match matching much purely reach reached reaches regard regarding report
    reported reports say says specifically still style tell try tries way ways e.g i.e etc well whether
    anyone anybody someone somebody anything something""".split()
)


@lru_cache(maxsize=1)
def _stemmer() -> Any:
    import Stemmer

    return Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """Lower-cased word tokens (keeps 'gsm8k', '3.5', "model's")."""
    return _WORD.findall(text.lower().replace("-", " "))


def terms(text: str) -> list[str]:
    """Stemmed content terms without stopwords: the unit of keyword search."""
    return list(_stemmer().stemWords(content_words(text)))


def has_glued_sentences(text: str) -> bool:
    """Whether ``text`` has a sentence glued to the next ('assistant.Based'): there, and only there,
    the terms of its sentences differ from the terms of the whole text ('assistant.bas')."""
    return _GLUED.search(text) is not None


def split_sentences(text: str, any_case: bool = False) -> list[str]:
    """Split an abstract into sentences (keeps 'e.g.' and 'et al.' inside sentences). With ``any_case`` (a
    question, typed as people type: "…with LoRA? tia") a sentence ends before any word, not only before a
    capital or digit, and not after a title ('Dr.', 'U.S.')."""
    text = " ".join(text.split())
    # listings sometimes glue sentences: "assistant.Based on" -> add the missing space
    text = _GLUED.sub(" ", text)
    parts = (_ANY_CASE_END if any_case else _SENT_END).split(text)
    out: list[str] = []
    for part in parts:
        if out and (_ABBREV.search(out[-1]) or (any_case and _TITLE.search(out[-1]))):
            out[-1] = f"{out[-1]} {part}"
        else:
            out.append(part)
    return [p.strip() for p in out if p.strip()]


def numbers(text: str) -> list[str]:
    """Numbers as written ('28.8%', '$0.00487', '70B' -> '70'), for grounding checks."""
    found = []
    for m in _NUMBER.finditer(text):
        tok = m.group(0).replace(" ", "")
        if tok:
            found.append(tok)
    return found


def normalise_number(tok: str) -> str:
    """Canonical form used to compare numbers: no '$', ',' or trailing '%'/'x'."""
    return tok.replace("$", "").replace(",", "").rstrip("%x×").rstrip(".")


_NAME_PIECE = re.compile(r"[0-9a-z]+")


def base_name(token: str) -> str:
    """A named token without the ordinary words hyphenated after it: 'LoRA-style' -> 'LoRA',
    'RL-trained' -> 'RL' (a compound modifier, not a longer name); 'FlashAttention-3', 'Sky-T1' and
    '4-bit' stay whole (a piece with a capital or a digit is part of the name, and so is any piece
    when nothing with a letter would be left)."""
    parts = token.split("-")
    while len(parts) > 1 and parts[-1].isalpha() and parts[-1].islower() and any(c.isalpha() for c in "".join(parts[:-1])):
        parts.pop()
    return "-".join(parts)


def name_text(text: str) -> str:
    """``text`` as the lower-case letter/digit pieces that names are matched against, space-separated
    ('FlashAttention-3 on H100s' -> 'flashattention 3 on h100s')."""
    return " ".join(_NAME_PIECE.findall(text.lower()))


def mentions(pieces: str, name: str) -> bool:
    """Whether ``pieces`` (a :func:`name_text`) writes ``name`` as a run of whole adjacent pieces,
    whatever the separators: 'FlashAttention-3' matches 'FlashAttention 3' and 'flashattention3' but
    not 'FlashAttention-2', 'LLaMA-3.1-70B' matches 'Llama 3.1 70B', 'ASR' does not match inside
    'hasreached'; a name matches its plural and a plural name its singular ('H100' in 'H100s',
    'ResNets' in 'a ResNet')."""
    key = "".join(_NAME_PIECE.findall(name.lower()))
    if not key:
        return False
    keys = [key, f"{key}s"]
    if len(key) > 3 and key.endswith("s") and key[-2].isalpha():
        keys.append(key[:-1])
    compact = pieces.replace(" ", "")
    if not any(k in compact for k in keys):
        return False
    starts, ends, pos = set(), set(), 0
    for piece in pieces.split(" "):
        starts.add(pos)
        pos += len(piece)
        ends.add(pos)
    for k in keys:
        at = compact.find(k)
        while at >= 0:
            if at in starts and at + len(k) in ends:
                return True
            at = compact.find(k, at + 1)
    return False


_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def edits1(word: str) -> set[str]:
    """Every string one deletion, transposition, replacement or insertion away from ``word``."""
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    return (
        {a + b[1:] for a, b in splits if b}
        | {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1}
        | {a + c + b[1:] for a, b in splits if b for c in _LETTERS}
        | {a + c + b for a, b in splits for c in _LETTERS}
    )


MAX_CORRECTED = 30  # longest word the typo corrector tries: its one-edit neighbours number ~54 x length,
# each as long as the word, so a pasted 10,000-letter run would cost gigabytes; no English word is this long
MAX_CORRECTIONS = 50  # distinct unknown words corrected per text (~2 ms each): a pasted page costs no more


_FRAMING = frozenset(w for w in STOPWORDS | QUESTION_WORDS if len(w) >= 4 and w.isalpha())
FRAMING_TYPO_LENGTH = 4  # shortest word read as a misspelt framing word ('wich'; 'teh' is left alone)
FRAMING_TYPO_WORDS = 2  # only a question's first words are framing ('Wich papers…', 'Which paeprs…'): further
# in, a word the corpus lacks one slip from a framing word is as likely a word of its own ('dose', 'Bing')
_OPENING = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*")  # words as written, a hyphenated compound as one


def framing_typo(word: str) -> bool:
    """Whether ``word`` is a framing word (a stopword or question word of four letters or more) with two
    adjacent letters swapped, one letter left out or one doubled ('waht', 'wich', 'whhich'): the slips of
    typing. Substitutions are not counted: they turn real words into framing words ('dogs' -> 'does')."""
    if len(word) < FRAMING_TYPO_LENGTH or word in _FRAMING:
        return False
    swaps = {word[:i] + word[i + 1] + word[i] + word[i + 2 :] for i in range(len(word) - 1)}
    gaps = {word[:i] + c + word[i:] for i in range(len(word) + 1) for c in _LETTERS}  # a letter left out
    undoubled = {word[:i] + word[i + 1 :] for i in range(len(word) - 1) if word[i] == word[i + 1]}
    return not _FRAMING.isdisjoint(swaps | gaps | undoubled)


def corrected_terms(text: str, known: dict[str, int], min_length: int = 5) -> list[str]:
    """:func:`terms` of ``text``, where a word whose term is unknown (not a key of ``known``, e.g. a
    corpus' document frequencies) becomes the most frequent known term one edit away ('trainng' ->
    'train'), or ``""`` (no term) when one of its first two words is a misspelt framing word
    (:func:`framing_typo`: 'Wich papers…' is not a question about 'wich'); words shorter than ``min_length`` or longer than
    :data:`MAX_CORRECTED`, words not in ASCII letters (the edits are ASCII: a run of CJK text is one long
    'word') and words with no known neighbour stay as they are."""
    out = []
    fixed: dict[str, str] = {}  # each distinct word is corrected once, and at most MAX_CORRECTIONS of them
    opening = {w.lower() for w in _OPENING.findall(text)[:FRAMING_TYPO_WORDS] if w.isalpha()}
    for term, word in zip(terms(text), content_words(text), strict=True):
        if term not in known and len(word) <= MAX_CORRECTED and word.isascii() and word.isalpha():
            if word not in fixed and len(fixed) < MAX_CORRECTIONS:
                if word in opening and framing_typo(word):
                    fixed[word] = ""
                elif len(word) >= min_length:
                    stems = _stemmer().stemWords(sorted(edits1(word)))
                    fixed[word] = max((s for s in stems if s in known), key=lambda s: known[s], default=None) or term
            term = fixed.get(word, term)
        out.append(term)
    return out


def content_words(text: str) -> list[str]:
    """The unstemmed words behind :func:`terms` (same filter, same order, lower case)."""
    return [
        w for w in words(text)
        if w not in STOPWORDS and w not in QUESTION_WORDS and (len(w) > 1 or w.isdigit())
    ]

_SURROGATES = re.compile("[\ud800-\udfff]")
# C0/C1 control characters (ESC starts ANSI/OSC sequences; BEL ends OSC titles) except tab and newline,
# and the bidirectional marks, overrides and isolates that reorder what a reader sees (Trojan Source).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# A whole escape sequence: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ESC \), or a 2-char ESC sequence.
_ESCAPE_SEQ = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-Z\\-_]|\x9b[0-?]*[ -/]*[@-~]")


def replace_surrogates(text: str) -> str:
    """``text`` with lone UTF-16 surrogates (undecodable bytes of a command line) as U+FFFD."""
    return _SURROGATES.sub("\ufffd", text)


def terminal_safe(text: str) -> str:
    """``text`` safe to print to a terminal: ANSI/OSC escape sequences, other control characters and
    bidi overrides removed (tabs and newlines kept), lone surrogates replaced."""
    return _CONTROL.sub("", _ESCAPE_SEQ.sub("", replace_surrogates(text)))
