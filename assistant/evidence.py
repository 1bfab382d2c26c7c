"""Evidence over retrieved abstracts: named features of every paper and sentence for a question.

Nothing here decides anything: :mod:`assistant.judgement` turns these features into "does the corpus
answer this?", "is this paper an answer?" and "which sentences answer it?". Dense similarities come
from vectors embedded at ingest (each abstract's title and sentences, and the chunk vectors), read
through :mod:`assistant.profiles`, so scoring a question costs one query embedding.
"""

from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field

import numpy as np

from assistant.index import Index
from assistant.models import Hit
from assistant.profiles import Profile, profiles
from assistant.stores.bm25 import BM25Index
from assistant.text import base_name, content_words, mentions, name_text, terms
from assistant.wordpieces import rare_pieces, text_matches

_DIGIT_CHARS = frozenset("0123456789")
NAME_CHECKS = 64  # papers read to confirm that the corpus writes a name (when no candidate does)


@dataclass
class Sentence:
    """One abstract sentence of a retrieved paper, with its features and (once judged) its score."""

    hit: int  # 1-based position of the paper in the hits
    text: str
    position: int  # 0-based index in the abstract
    lexical: float  # idf-weighted share of the question's terms in this sentence
    dense: float  # cosine similarity of question and sentence
    rare: float = math.nan  # the question's rare word pieces matched in this sentence alone (NaN: unmeasured)
    named: float = 0.0  # share of the question's named tokens this sentence writes
    specific: float = 0.0  # how rare, in the corpus, the terms it adds to the question's are (mean idf / max)
    terms: frozenset[str] = frozenset()
    features: dict[str, float] = field(default_factory=dict)
    score: float = 0.0  # P(this sentence carries the answer), set by the judgement


@dataclass
class PaperEvidence:
    """One retrieved paper: its features, its sentences and (once judged) its relevance."""

    hit: Hit
    coverage: float  # idf-weighted share of question terms in title + abstract
    title_coverage: float
    dense: float  # best chunk similarity
    sentences: list[Sentence]
    terms: frozenset[str] = frozenset()  # content terms of title + abstract
    vector: np.ndarray | None = None  # mean of the paper's chunk vectors
    features: dict[str, float] = field(default_factory=dict)
    relevance: float = 0.0  # P(this paper answers the question), set by the judgement
    writes: list[bool] = field(default_factory=list)  # which of the question's names it writes (Evidence.names)

    def best(self) -> Sentence | None:
        """The sentence most likely to carry the answer."""
        return max(self.sentences, key=lambda s: s.score, default=None)


_TOKEN = re.compile(r"[A-Za-z0-9][A-Za-z0-9^.\-]*[A-Za-z0-9]")


def named_tokens(question: str) -> list[str]:
    """Tokens written as names: acronyms ('WMDP'), inner capitals ('LLaDA') or digits ('H100')."""
    out = []
    for tok in _TOKEN.findall(question):
        tok = re.sub(r"'s$", "", tok)
        inner_caps = any(c.isupper() for c in tok[1:])
        if (inner_caps and len(tok) >= 2) or (any(c.isdigit() for c in tok) and any(c.isalpha() for c in tok)):
            out.append(tok)
    return list(dict.fromkeys(out))


def _in_corpus(index: Index, bm25: BM25Index, name: str, rows: np.ndarray) -> bool:
    """Whether an indexed paper writes ``name``, given ``rows``, the papers holding all of its keyword
    terms (``bm25.papers_with``): the first :data:`NAME_CHECKS` are read; when more hold them, it is
    taken as written (no evidence of absence)."""
    if len(rows) > NAME_CHECKS:
        return True
    papers = index.papers.many([bm25.ids[i] for i in rows])
    return any(mentions(name_text(f"{p.title} {p.abstract}"), name) for p in papers.values())


def _ranks(values: list[float]) -> list[int]:
    order = sorted(range(len(values)), key=lambda i: -values[i])
    out = [0] * len(values)
    for r, i in enumerate(order, start=1):
        out[i] = r
    return out


class Evidence:
    """Features of every retrieved paper and sentence for one question (see module docstring).

    ``papers`` follow the hits' order; ``question_features`` describe the question as a whole. The
    judgement fills in ``relevance``/``score``, ``confidence`` and ``included``.
    """

    def __init__(self, index: Index, question: str, hits: list[Hit]) -> None:
        bm25 = index.ensure_keyword_index()
        qterms = [t for t in dict.fromkeys(bm25.query_terms(question)) if t]  # '' is a misspelt framing word
        self.weights = {t: bm25.idf(t) for t in qterms}
        self._idf: dict[str, float] = {}
        self._idf_max = bm25.idf_of(0) or 1.0
        total = sum(self.weights.values()) or 1.0
        self.question = question
        qvec = index.embed_query(question)
        self.papers: list[PaperEvidence] = []
        # named tokens ('WMDP', 'LLaDA', 'FlashAttention-3'), matched as written (see text.mentions)
        self.names: list[str] = [n for n in dict.fromkeys(base_name(t) for t in named_tokens(question)) if terms(n)]
        names = self.names
        self.unwritten: list[str] = []  # what no indexed paper writes (set with the question features)
        self.absent_names: list[str] = []  # the names among them ('WMDP', 'PhD'; not ordinary words)
        self.partial = False  # a follow-up on earlier papers they only partly answer (see Judge.cover)
        profs = profiles(index, [h.paper for h in hits])
        rare, rare_texts = self._piece_matches(index, bm25, profs, len(qvec))
        for pos, (hit, prof) in enumerate(zip(hits, profs, strict=True), start=1):
            chunk_sims = prof.chunk_vectors @ qvec if len(prof.chunk_vectors) else np.zeros(0)
            sent_sims = prof.sentence_vectors @ qvec if len(prof.sentence_vectors) else np.zeros(0)
            sents = [
                Sentence(
                    hit=pos, text=text, position=i, terms=st, dense=float(sent_sims[i]),
                    lexical=sum(w for t, w in self.weights.items() if t in st) / total,
                    rare=rare_texts[pos - 1][i + 1],
                    named=sum(mentions(prof.sentence_names[i], n) for n in names) / len(names) if names else 0.0,
                    specific=self._specificity(bm25, st),
                )
                for i, (text, st) in enumerate(prof.sentences)
            ]
            writes = [mentions(prof.names, n) for n in names]  # which of ``names`` its title + abstract writes
            top2 = np.sort(sent_sims)[-2:] if len(sent_sims) else np.zeros(1)
            paper = PaperEvidence(
                hit=hit,
                coverage=sum(w for t, w in self.weights.items() if t in prof.doc_terms) / total,
                title_coverage=sum(w for t, w in self.weights.items() if t in prof.title_terms) / total,
                dense=float(chunk_sims.max()) if len(chunk_sims) else (hit.dense or 0.0),
                sentences=sents,
                terms=prof.doc_terms,
                vector=prof.chunk_vectors.mean(axis=0) if len(prof.chunk_vectors) else None,
                writes=writes,
            )
            paper.features = {
                "sent_max": float(top2[-1]),
                "sent_top2": float(top2.mean()),
                "chunk_max": paper.dense,
                "title_sim": float(prof.title_vector @ qvec) if prof.title_vector is not None else 0.0,
                "lex_cover": paper.coverage,
                "lex_title": paper.title_coverage,
                "lex_sent_max": max((s.lexical for s in sents), default=0.0),
                "fused_rank": 1.0 / pos,
                "tok_rare": rare[pos - 1],
                "named_hit": sum(writes) / len(names) if names else 0.0,
                "named_title": sum(mentions(prof.title_names, n) for n in names) / len(names) if names else 0.0,
            }
            self.papers.append(paper)
        self._relative_features()
        self.question_features = self._question_features(index, bm25)
        self.confidence = 0.0  # P(the corpus answers this), set by the judgement
        self.included: list[int] = []  # 1-based positions of the papers judged to answer it

    def _specificity(self, bm25: BM25Index, sentence_terms: frozenset[str]) -> float:
        """Mean BM25 idf (as a share of the highest possible) of the sentence's terms that are not the
        question's: what it says beyond restating the question, and how specific that is (a method,
        data set or number against a motivating generality)."""
        new = [t for t in sentence_terms if t not in self.weights]
        if not new:
            return 0.0
        idf = self._idf
        for t in new:
            if t not in idf:
                idf[t] = bm25.idf(t)
        return sum(idf[t] for t in new) / len(new) / self._idf_max

    def _piece_matches(
        self, index: Index, bm25: BM25Index, profs: list[Profile], dim: int
    ) -> tuple[list[float], list[list[float]]]:
        """Each candidate's ``tok_rare`` and each of its texts' (title, then sentences): unmeasured (NaN)
        for all unless every candidate has its word pieces; a paper whose pieces do not split per text
        (see :func:`assistant.profiles._split_bits`) is still matched as a whole, its sentences left NaN."""
        texts = [[np.zeros(0)] * (len(p.sentences) + 1) for p in profs]
        whole = [p.token_bits for p in profs if p.token_bits is not None]
        if len(whole) < len(profs):
            return text_matches(None, texts, dim)
        groups = [p.text_bits if p.text_bits is not None else [w] for p, w in zip(profs, whole, strict=True)]
        rare, per_text = text_matches(rare_pieces(index, bm25, self.question), groups, dim)
        unsplit = [[math.nan] * len(t) for t in texts]
        return rare, [t if p.text_bits is not None else u for p, t, u in zip(profs, per_text, unsplit, strict=True)]

    def _feedback_features(self, lead: int = 3) -> None:
        """Pseudo-relevance feedback: each paper's similarity to the centroid of the leading papers
        (itself left out), so papers on the same topic as the best matches rise."""
        vecs = []
        for p in self.papers:
            v = p.vector if p.vector is not None else np.zeros(1)
            n = float(np.linalg.norm(v))
            vecs.append(v / n if n else v)
        for i, p in enumerate(self.papers):
            others = [vecs[j] for j in range(min(lead + 1, len(self.papers))) if j != i][:lead]
            if not others or p.vector is None:
                p.features["prf_sim"] = 0.0
                continue
            c = np.mean(others, axis=0)
            norm = float(np.linalg.norm(c)) or 1.0
            p.features["prf_sim"] = float(vecs[i] @ c / norm)

    def _relative_features(self) -> None:
        """Features of a paper relative to the other retrieved papers (rank agreement, gaps)."""
        if not self.papers:
            return
        self._feedback_features()
        dense_r = _ranks([p.features["sent_max"] for p in self.papers])
        bm25_vals = [p.hit.bm25 or 0.0 for p in self.papers]
        bm25_r = _ranks(bm25_vals)
        top_bm25 = max(bm25_vals) or 1.0
        keys = ("sent_max", "title_sim", "lex_cover", "chunk_max", "prf_sim", "tok_rare")  # tok_rare may be NaN
        best = {k: max(p.features[k] for p in self.papers) for k in keys}
        spread = {k: np.array([p.features[k] for p in self.papers]) for k in keys}
        stats = {k: (float(v.mean()), float(v.std()) or 1.0) for k, v in spread.items()}
        for p, rd, rb, b in zip(self.papers, dense_r, bm25_r, bm25_vals, strict=True):
            f = p.features
            f["bm25_rel"] = b / top_bm25
            f["dense_rank"] = 1.0 / rd
            f["bm25_rank"] = 1.0 / rb if b > 0 else 0.0
            f["rank_agree"] = -abs(math.log(rd) - math.log(rb if b > 0 else len(self.papers) + 1))
            for k, v in best.items():
                f[f"gap_{k}"] = f[k] - v
                f[f"z_{k}"] = (f[k] - stats[k][0]) / stats[k][1]

    def _named(self, index: Index, bm25: BM25Index) -> tuple[list[str], float, float]:
        """The question's named tokens (acronyms, CamelCase, names with digits) that no indexed paper
        writes, their share, and the share that none of the three leading papers writes ('FlashAttention-3'
        is absent from a corpus that has FlashAttention-2 and other papers with a 3 in them). Both shares
        weigh each name by how rare its keyword terms are in the corpus (BM25 idf of the papers holding
        all of them; an absent name weighs the most), so a common acronym ('LLMs', 'RL') the leading
        papers happen not to write counts for little beside a specific method's name."""
        names = self.names
        if not names:
            return [], 0.0, 0.0
        written = [p.writes for p in self.papers]  # in the retrieved order: the judgement has not re-ranked yet
        absent, weights, absent_weight, missing_weight = [], [], 0.0, 0.0
        for j, n in enumerate(names):
            rows = bm25.papers_with(terms(n))
            gone = not any(row[j] for row in written) and not _in_corpus(index, bm25, n, rows)
            w = bm25.idf_of(0 if gone else len(rows))
            weights.append(w)
            if gone:
                absent.append(n)
                absent_weight += w
            if not any(row[j] for row in written[:3]):
                missing_weight += w
        total = sum(weights) or 1.0
        return absent, absent_weight / total, missing_weight / total

    def _question_features(self, index: Index, bm25: BM25Index) -> dict[str, float]:
        """Whole-question features: the strength of the best evidence and what the corpus lacks."""
        top = self.papers[:5]
        idf_max = self._idf_max
        absent_terms = {t for t in self.weights if bm25.df.get(t, 0) == 0}  # typos corrected (query_terms)
        absent = [w for t, w in self.weights.items() if t in absent_terms]
        covered_top3 = {t for p in self.papers[:3] for t in p.terms}
        total = sum(self.weights.values()) or 1.0
        missing_top3 = [w for t, w in self.weights.items() if t not in covered_top3]
        sims = sorted((p.features["sent_max"] for p in self.papers), reverse=True) + [0.0, 0.0, 0.0]
        self.absent_names, named_absent, named_missing = self._named(index, bm25)
        self.unwritten = self._unwritten(bm25, self.absent_names, absent_terms)
        return {
            "q_named_absent": named_absent,
            "q_named_missing_top3": named_missing,
            "q_sent_max": sims[0],
            "q_sent_3rd": sims[2],
            "q_chunk_max": max((p.features["chunk_max"] for p in top), default=0.0),
            "q_title_max": max((p.features["title_sim"] for p in top), default=0.0),
            "q_lex_max": max((p.coverage for p in top), default=0.0),
            "q_absent_idf": max(absent, default=0.0) / idf_max,
            "q_absent_share": sum(absent) / total,
            "q_missing_top3": sum(missing_top3) / total,
            "q_missing_max_idf": max(missing_top3, default=0.0) / idf_max,
        }

    def _unwritten(self, bm25: BM25Index, names: list[str], absent_terms: set[str]) -> list[str]:
        """``names`` (the question's names no indexed paper writes), then its words whose term is one of
        ``absent_terms`` (typos corrected, in no indexed paper), as the question writes them: what a
        refusal can point to."""
        in_names = {w for n in names for w in content_words(n)}
        words = content_words(self.question)
        absent = [
            w for t, w in zip(bm25.query_terms(self.question), words, strict=True)
            if t in absent_terms and w not in in_names
        ]
        return list(dict.fromkeys([*names, *absent]))

    def screened(self) -> Evidence:
        """A copy holding only the chosen papers (renumbered 1..n, best first): what an LLM is shown."""
        out = copy.copy(self)
        out.papers = []
        for pos, (_, paper) in enumerate(self.chosen(), start=1):
            sents = [copy.copy(s) for s in paper.sentences]
            for s in sents:
                s.hit = pos
            out.papers.append(copy.copy(paper))
            out.papers[-1].sentences = sents
        out.included = list(range(1, len(out.papers) + 1))
        return out

    def chosen(self) -> list[tuple[int, PaperEvidence]]:
        """The papers judged to answer the question, as (1-based position, evidence)."""
        return [(i, self.papers[i - 1]) for i in self.included]

    def snippet(self, hit_pos: int) -> str:
        """The best supporting sentence of the paper at ``hit_pos`` (1-based)."""
        best = self.papers[hit_pos - 1].best()
        return best.text if best else ""
