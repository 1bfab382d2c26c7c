"""Citation checks: invalid numbers removed, renumbering, uncited sentences, unsupported numbers."""

from __future__ import annotations

from assistant.citations import Renumberer, check, units
from assistant.models import Hit, Paper


def _hit(i: int, title: str, abstract: str) -> Hit:
    return Hit(paper=Paper(id=f"p{i}", title=title, abstract=abstract), score=1.0 / i, rank=i)


HITS = [
    _hit(1, "Alpha", "Alpha cuts forgetting by 41% on five tasks."),
    _hit(2, "Beta", "Beta trains 0.3% of the parameters."),
    _hit(3, "Gamma", "Gamma studies speech."),
]


def test_invalid_numbers_removed_and_renumbered() -> None:
    text, cites, checks = check("Beta is small [2]. Alpha helps [1][7]. Nothing here [0].", HITS)
    assert checks.removed_citations == [7, 0]
    assert "[7]" not in text and "[0]" not in text
    assert [c.title for c in cites] == ["Beta", "Alpha"]  # renumbered by first use
    assert "Beta is small [1]" in text and "Alpha helps [2]" in text


def test_uncited_sentence_flagged_and_lead_in_ignored() -> None:
    text = "Two papers address this:\n- Alpha: it helps [1].\n- Beta is small. It is cheap [2]."
    _, _, checks = check(text, HITS)
    assert checks.uncited_sentences == ["Beta is small."]
    assert checks.sentences == 3


def test_numbers_checked_against_cited_abstracts() -> None:
    _, _, ok = check("Alpha cuts forgetting by 41% [1].", HITS)
    assert ok.unsupported_numbers == []
    _, _, bad = check("Alpha cuts forgetting by 45% on 5 tasks [1]. Beta trains 0.3% [2].", HITS)
    assert bad.unsupported_numbers == ["45%", "5"]
    _, _, wrong_paper = check("Beta cuts forgetting by 41% [2].", HITS)
    assert wrong_paper.unsupported_numbers == ["41%"]


def test_ranges_and_lists() -> None:
    _, cites, checks = check("All three [1-3]. Two [1, 2].", HITS)
    assert [c.n for c in cites] == [1, 2, 3]
    assert checks.removed_citations == []


def test_units_split_bullets_and_sentences() -> None:
    assert units("Intro:\n- A one [1]. A two [1].\n* B [2]") == ["A one [1].", "A two [1].", "B [2]"]


def test_paper_links_are_http_only_with_arxiv_fallback() -> None:
    assert Paper(id="a", title="t", abstract="x", url="javascript:alert(1)").link() is None
    assert Paper(id="a", title="t", abstract="x", url="javascript:x", arxiv_id="2401.1").link() == (
        "https://arxiv.org/abs/2401.1"
    )
    assert Paper(id="a", title="t", abstract="x", url=" https://x.org/p ").link() == "https://x.org/p"


def test_renumberer_streams_split_citations() -> None:
    from assistant.citations import Renumberer

    r = Renumberer(limit=5)
    out = "".join(r.feed(d) for d in ["A [", "3", "] and B [9][", "5]. C [3", "]."]) + r.flush()
    assert out == "A [1] and B [2]. C [1]."
    assert r.removed == [9]


def test_a_removed_citation_takes_its_space_and_quoted_text_stays_as_written() -> None:
    text, _, checks = check("Only invalid [42]. Finally ,we evaluate it [1][9]. Beta [9] [2].", HITS)
    assert checks.removed_citations == [42, 9]
    assert text == "Only invalid. Finally ,we evaluate it [1]. Beta [2]."


def test_a_list_line_opening_with_a_title_is_not_an_uncited_claim() -> None:
    title = "Why Can GPT Learn In-Context? Language Models Secretly Perform Gradient Descent"
    hits = [_hit(1, title, "It does gradient descent."), *HITS[1:]]
    text = f"2 of the indexed papers address this:\n- {title}: It does gradient descent [1].\n"
    _, _, checks = check(text + "- Beta: Beta trains 0.3% of the parameters [2].", hits)
    assert checks.uncited_sentences == [] and checks.sentences == 2


def test_a_long_citation_group_streamed_a_character_at_a_time_is_renumbered() -> None:
    text = "LoRA cuts forgetting [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]. And [3]."
    r = Renumberer(limit=4)
    streamed = "".join(r.feed(c) for c in text) + r.flush()
    assert streamed == "LoRA cuts forgetting [1][2][3][4]. And [3]."
    assert r.removed == [5, 6, 7, 8, 9, 10]
    r = Renumberer(limit=4)
    assert "".join(r.feed(c) for c in "See [the appendix] for more.") + r.flush() == "See [the appendix] for more."
    runs = "Claim" + " [1]" * 5000 + " [9]" * 3 + "."  # a long trailing run, held back and scanned from its end
    r = Renumberer(limit=2)
    assert "".join(r.feed(runs[i : i + 7]) for i in range(0, len(runs), 7)) + r.flush() == "Claim" + " [1]" * 5000 + "."


def test_a_citation_spelt_with_spaces_is_held_until_it_closes() -> None:
    for reply, shown in [("LoRA helps [1 - 2].", "LoRA helps [1][2]."), ("LoRA helps [1 ,2] a lot.", "LoRA helps [1][2] a lot.")]:
        r = Renumberer(limit=2)
        streamed = "".join(r.feed(w + " ") for w in reply.split()) + r.flush()
        assert streamed.rstrip() == shown == check(reply, HITS[:2])[0]
