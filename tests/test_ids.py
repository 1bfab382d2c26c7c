"""Records keep their own ids: JSONL id/doi/pmid/s2_id (and BibTeX doi) become the paper id."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.index import Index
from assistant.settings import Settings
from ingest.parsers.base import Entry
from ingest.parsers.bibtex import PARSER as BIBTEX
from ingest.parsers.jsonl import record_to_entry
from ingest.pipeline import ingest
from ingest.records import has_own_id, merge_entries, paper_id

ABSTRACT = "We fine-tune adapters and measure forgetting on held-out tasks; forgetting drops by a third."


def _settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", cache_dir=tmp_path / "cache")


def _jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"id": "W123"}, "W123"),
        ({"_id": 4983}, "4983"),
        ({"doi": "https://doi.org/10.1000/ABC.9"}, "doi:10.1000/abc.9"),
        ({"doi": "doi:10.5/x", "pmid": 7}, "doi:10.5/x"),
        ({"pmid": 31715818}, "pmid:31715818"),
        ({"s2_id": "abc"}, "s2:abc"),
        ({"id": "P1", "doi": "10.1/y", "arxiv_id": "2401.00001"}, "P1"),
        ({"arxiv_id": "2401.00001"}, None),
    ],
)
def test_jsonl_record_own_id(extra: dict[str, object], expected: str | None) -> None:
    entry = record_to_entry({"title": "A title", "abstract": ABSTRACT, **extra}, "x.jsonl", "line 1")
    assert entry.ref == expected


def test_beir_corpus_record_is_read_directly() -> None:
    entry = record_to_entry({"_id": "42", "title": "T", "text": ABSTRACT, "metadata": {}}, "corpus.jsonl", "line 1")
    assert (entry.ref, entry.abstract) == ("42", ABSTRACT)


def test_bibtex_doi_is_the_id_unless_there_is_an_arxiv_id(tmp_path: Path) -> None:
    text = (
        "@article{a, title={Adapter Forgetting}, abstract={" + ABSTRACT + "}, doi={10.1/Q}}\n"
        "@article{b, title={Other Paper}, abstract={" + ABSTRACT + "}, doi={10.1/R}, eprint={2401.00002},"
        " archiveprefix={arXiv}}\n"
    )
    entries = BIBTEX.parse(tmp_path / "x.bib", text).entries
    assert [e.ref for e in entries] == ["doi:10.1/q", None]
    assert [p.id for p, _ in merge_entries(entries)] == ["doi:10.1/q", "arxiv:2401.00002"]


def _entry(title: str, ref: str | None, source: str = "a.jsonl", abstract: str = ABSTRACT) -> Entry:
    return Entry(title=title, abstract=abstract, source=source, locator="line 1", ref=ref)


def test_dedup_uses_ids_before_titles() -> None:
    papers = merge_entries([
        _entry("Same Title", "1"),
        _entry("Same  title", "2"),  # same normalised title, other id: another paper
        _entry("Same Title", "1", source="b.jsonl", abstract=ABSTRACT + " More."),  # same id: same paper
        _entry("Same Title", None, source="c.txt"),  # no id of its own: merges by title
    ])
    assert [p.id for p, _ in papers] == ["1", "2"]
    first = papers[0][0]
    assert first.sources == ["a.jsonl", "b.jsonl", "c.txt"]
    assert first.abstract.endswith("More.")


def test_same_title_under_two_arxiv_ids_in_one_run_stays_two_papers(tmp_path: Path) -> None:
    # across runs the pipeline kept them apart, within one listing they merged: the second abstract was lost
    rows = [
        {"title": "Routing for Mixture of Experts", "abstract": ABSTRACT, "arxiv_id": "2503.11111"},
        {"title": "Routing for mixture of experts", "abstract": "Capybara routing sends tokens to experts.",
         "arxiv_id": "2504.22222"},
        {"title": "Routing for Mixture of Experts", "abstract": ABSTRACT, "arxiv_id": "2503.11111"},
        {"title": "Routing for Mixture of Experts", "abstract": ABSTRACT},  # no id: merges with the first
    ]
    papers = merge_entries([record_to_entry(r, "x.jsonl", f"line {i}") for i, r in enumerate(rows, 1)])
    assert [p.id for p, _ in papers] == ["arxiv:2503.11111", "arxiv:2504.22222"]
    assert papers[1][0].abstract.startswith("Capybara")
    report = ingest([_jsonl(tmp_path / "a.jsonl", rows)], _settings(tmp_path))
    assert (report.papers, report.new) == (2, 2)


def test_same_title_under_two_arxiv_ids_across_runs_keeps_the_first_abstract(tmp_path: Path) -> None:
    # the first run files the paper under its title's hash (its first entry had no arXiv id); a second
    # paper of that title with another arXiv id used to overwrite it ("updated", abstract lost)
    s = _settings(tmp_path)
    first = [{"title": "Routing Experts", "abstract": ABSTRACT},
             {"title": "Routing Experts", "abstract": ABSTRACT, "arxiv_id": "2503.11111"}]
    ingest([_jsonl(tmp_path / "a.jsonl", first)], s)
    other = [{"title": "Routing experts", "abstract": "Capybara routing sends tokens to experts.", "arxiv_id": "2504.22222"}]
    report = ingest([_jsonl(tmp_path / "b.jsonl", other)], s)
    assert (report.new, report.updated, report.total_papers) == (1, 0, 2)
    kept = [p for p in Index.open(s).papers.many(Index.open(s).ensure_keyword_index().ids).values()]
    assert sorted((p.arxiv_id, p.abstract[:8]) for p in kept) == [("2503.11111", ABSTRACT[:8]), ("2504.22222", "Capybara")]


def test_one_arxiv_id_is_one_paper_whatever_its_titles() -> None:
    papers = merge_entries([
        record_to_entry({"title": "Routing Experts", "abstract": ABSTRACT}, "x.jsonl", "line 1"),
        record_to_entry({"title": "Routing Experts", "abstract": ABSTRACT, "arxiv_id": "2503.11111"}, "x.jsonl", "line 2"),
        record_to_entry({"title": "Routing Experts (v2)", "abstract": ABSTRACT, "arxiv_id": "2503.11111"}, "x.jsonl",
                        "line 3"),
    ])
    assert len(papers) == 1 and papers[0][0].arxiv_id == "2503.11111"


def test_same_title_under_two_ids_stays_two_papers_across_runs(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    rows = [
        {"id": "doc-1", "title": "Adapters and Forgetting", "abstract": ABSTRACT},
        {"doi": "10.9/Z", "title": "Adapters and forgetting", "abstract": ABSTRACT + " Second study."},
    ]
    report = ingest([_jsonl(tmp_path / "a.jsonl", rows)], settings)
    assert (report.papers, report.new) == (2, 2)
    # a later listing without ids, same title: no third paper; the same ids again: unchanged
    plain = _jsonl(tmp_path / "b.jsonl", [{"title": "Adapters and Forgetting", "abstract": ABSTRACT}])
    again = ingest([plain, tmp_path / "a.jsonl"], settings)
    assert again.new == 0 and again.total_papers == 2
    index = Index.open(settings)
    assert sorted(index.registry.missing(["doc-1", "doi:10.9/z", "nope"])) == ["nope"]
    assert index.registry.get("doc-1").sources == ["a.jsonl", "b.jsonl"]  # type: ignore[union-attr]


def test_answer_citations_carry_the_users_id(tmp_path: Path) -> None:
    from assistant import ask

    settings = _settings(tmp_path)
    rows = [
        {"pmid": "777", "title": "Rank-8 Adapters Reduce Catastrophic Forgetting",
         "abstract": "Low-rank adapters (LoRA) cut catastrophic forgetting by 41% compared with full fine-tuning."},
        {"id": "X-2", "title": "Speech Models for Low-Resource Languages",
         "abstract": "Small speech recognition models for ten low-resource languages lower word error rate by 18%."},
    ]  # fmt: skip
    ingest([_jsonl(tmp_path / "ids.jsonl", rows)], settings)
    answer = ask("Does LoRA reduce catastrophic forgetting?", settings=settings)
    assert not answer.refused
    assert "pmid:777" in [c.paper_id for c in answer.citations]
    assert answer.contexts[0].paper.id == "pmid:777"


def _papers(settings: Settings) -> list[tuple[str, str, str]]:
    """(arXiv id or "", title, abstract) of every registered paper, checked for one vector per chunk."""
    index = Index.open(settings)
    assert sorted(index.store.ids()) == index.registry.chunk_ids(), "every registered chunk has one vector"
    return sorted((p.arxiv_id or "", p.title, p.abstract) for p in index.registry.papers())


QUOKKA = "Quokka networks are small happy learners. They smile at noisy data and still converge."


@pytest.mark.parametrize(
    "second",
    [
        [  # crashed: IndexError in chunking (both papers written under the indexed paper's id in one batch)
            {"title": "Quokka Networks", "abstract": QUOKKA + " Revised version with more results.", "arxiv_id": "2501.11111"},
            {"title": "Quokka Networks", "abstract": "Another paper of that title, on planar graphs.", "arxiv_id": "2501.22222"},
        ],
        [  # silently: one paper overwritten with the other's abstract
            {"title": "Quokka Networks", "abstract": QUOKKA + " Revised version with more results.", "arxiv_id": "2501.11111"},
            {"title": "Quokka Networks", "abstract": "Quokka networks in graph theory. We prove a bound.", "arxiv_id": "2501.22222"},
            {"title": "Innocent Bystander", "abstract": "An unrelated paper in the same file. Keep me."},
        ],
    ],
)
def test_two_arxiv_papers_of_one_title_meeting_a_paper_indexed_without_an_id(
    tmp_path: Path, second: list[dict[str, object]]
) -> None:
    # the indexed paper came from an HF listing (no ids: filed under its title's hash); both papers of the
    # second listing found it by title and were given its id
    first = tmp_path / "page.txt"
    first.write_text(f"Quokka Networks\n\n{QUOKKA}\n", encoding="utf-8")
    b = _jsonl(tmp_path / "b.jsonl", second)
    across = Settings(data_dir=tmp_path / "across", cache_dir=tmp_path / "cache")
    ingest([first], across)
    report = ingest([b], across)
    assert report.skipped == []
    one_run = Settings(data_dir=tmp_path / "one", cache_dir=tmp_path / "cache")
    ingest([first, b], one_run)
    assert _papers(across) == _papers(one_run)
    assert {(a, t[:14]) for a, t, _ in _papers(across)} >= {("2501.11111", "Quokka Network"), ("2501.22222", "Quokka Network")}
    assert len(_papers(across)) == len(second)


def test_an_arxiv_paper_whose_title_changed_is_found_by_its_arxiv_id(tmp_path: Path) -> None:
    # r1 (no id) is filed under its title's hash; r2 gives it its arXiv id; r3 (same id, subtitle added)
    # became a second paper: the lookup never read the arXiv id stored in the registry rows
    r1 = tmp_path / "r1.txt"
    r1.write_text(f"Quokka Networks\n\n{QUOKKA}\n", encoding="utf-8")
    r2 = _jsonl(tmp_path / "r2.jsonl", [{"title": "Quokka Networks", "abstract": QUOKKA, "arxiv_id": "2501.12345"}])
    r3 = _jsonl(tmp_path / "r3.jsonl", [{"title": "Quokka Networks: Happy Learners on Noisy Data", "abstract": QUOKKA,
                                         "arxiv_id": "2501.12345"}])
    across = Settings(data_dir=tmp_path / "across", cache_dir=tmp_path / "cache")
    for f in (r1, r2, r3):
        ingest([f], across)
    one_run = Settings(data_dir=tmp_path / "one", cache_dir=tmp_path / "cache")
    ingest([r1, r2, r3], one_run)
    assert [a for a, _, _ in _papers(across)] == [a for a, _, _ in _papers(one_run)] == ["2501.12345"]
    again = ingest([r1], across)  # the old title again: still the same paper
    assert (again.new, again.total_papers) == (0, 1)


def test_an_old_registry_gains_the_arxiv_index(tmp_path: Path) -> None:
    import sqlite3

    from assistant.stores.registry import Registry

    s = _settings(tmp_path)
    ingest([_jsonl(tmp_path / "a.jsonl", [{"title": "T", "abstract": ABSTRACT, "arxiv_id": "2401.00001"}])], s)
    path = s.index_dir() / "registry.sqlite"
    with sqlite3.connect(path) as db:  # a registry written before the index existed
        db.execute("DROP INDEX papers_arxiv")
    has_index = "SELECT COUNT(*) FROM sqlite_master WHERE name='papers_arxiv'"
    assert Registry(path)._db.execute(has_index).fetchone() == (0,), "opening it (as a question does) writes nothing"
    ingest([tmp_path / "a.jsonl"], s)  # ingest creates it, under its write lock
    reg = Registry(path)
    plan = reg._db.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM papers WHERE json_extract(data, '$.arxiv_id')=?", ("2401.00001",)
    ).fetchall()
    assert "papers_arxiv" in str(plan)
    assert reg.ids_for_arxiv("2401.00001") == ["arxiv:2401.00001"]


@pytest.mark.parametrize(("plain_first", "expected"), [
    (True, [("t:", ["plain.txt"]), ("doc-1", ["a.jsonl"])]),  # the plain entry came first: a paper of its title
    (False, [("doc-1", ["a.jsonl", "plain.txt"])]),  # after the own-id paper of its title: joins it
])  # fmt: skip
def test_an_entry_without_ids_joins_an_own_id_paper_of_its_title_only_when_listed_after_it(
    plain_first: bool, expected: list[tuple[str, list[str]]]
) -> None:
    # documented (README "Input formats"): one pass in listing order; the three-pass merge that made this
    # order-independent changed which entry's fields win and let an own-id entry absorb an arXiv paper
    entries = [_entry("Adapters and Forgetting", None, "plain.txt"), _entry("Adapters and forgetting", "doc-1")]
    papers = merge_entries(entries if plain_first else entries[::-1])
    assert [(p.id if has_own_id(p.id) else p.id[:2], sorted(p.sources)) for p, _ in papers] == expected


def test_the_first_listed_entry_of_a_paper_keeps_its_title_and_fields() -> None:
    # the three-pass merge took the arXiv entry's title and url: an index built before came back 'updated'
    plain = record_to_entry({"title": "Deep nets for vision", "abstract": ABSTRACT, "url": "https://example.org/a"},
                            "l1.jsonl", "line 1")
    arx = record_to_entry({"title": "Deep Nets for Vision", "abstract": ABSTRACT, "arxiv_id": "2401.00001",
                           "url": "https://arxiv.org/abs/2401.00001"}, "l1.jsonl", "line 2")
    [(paper, _)] = merge_entries([plain, arx])
    assert (paper.id, paper.title, paper.url, paper.arxiv_id) == (
        paper_id(plain), "Deep nets for vision", "https://example.org/a", "2401.00001")


@pytest.mark.parametrize("doc_first", [False, True])
def test_an_own_id_entry_never_takes_an_arxiv_paper_of_its_title(tmp_path: Path, doc_first: bool) -> None:
    # doc-7 absorbed arXiv 2402.01234 by title (three-pass merge; listed first, also in one pass) while
    # arxiv:2402.01234 stayed indexed: two papers of one arXiv id
    long = "We study sparse attention at scale. It is fast and accurate."
    arx = _jsonl(tmp_path / "arx.jsonl", [{"title": "Sparse Attention at Scale", "abstract": long, "arxiv_id": "2402.01234"}])
    doc = _jsonl(tmp_path / "doc.jsonl", [{"title": "Sparse attention at scale", "abstract": "We study sparse attention.",
                                           "id": "doc-7"}])
    s = _settings(tmp_path)
    ingest([arx], s)
    report = ingest([doc, arx] if doc_first else [arx, doc], s)
    assert (report.new, report.updated, report.unchanged) == (1, 0, 1)
    registry = Index.open(s).registry
    assert registry.ids_for_arxiv("2402.01234") == ["arxiv:2402.01234"]
    got = {p.id: (p.arxiv_id, p.abstract, p.sources) for p in registry.papers()}
    assert got == {"arxiv:2402.01234": ("2402.01234", long, ["arx.jsonl"]),
                   "doc-7": (None, "We study sparse attention.", ["doc.jsonl"])}


@pytest.mark.parametrize("renamed_first", [True, False])
def test_a_renamed_arxiv_paper_and_its_old_title_in_one_run_are_one_paper(tmp_path: Path, renamed_first: bool) -> None:
    # the paper is filed under its old title's hash and holds its arXiv id; a run with the old title
    # (no id: it carries that hash) and the new title (arXiv id) made a second paper of that arXiv id:
    # a paper never took an id another paper of the run carried, even the same paper
    r1 = _jsonl(tmp_path / "r1.jsonl", [{"title": "Quokka Networks", "abstract": QUOKKA}])
    r2 = _jsonl(tmp_path / "r2.jsonl", [{"title": "Quokka Networks", "abstract": QUOKKA, "arxiv_id": "2501.12345"}])
    r3 = _jsonl(tmp_path / "r3.jsonl", [{"title": "Quokka Networks: Happy Learners", "abstract": QUOKKA + " More.",
                                         "arxiv_id": "2501.12345"}])
    s = _settings(tmp_path)
    ingest([r1, r2], s)
    [first_id] = Index.open(s).registry.paper_ids()
    report = ingest([r3, r1] if renamed_first else [r1, r3], s)
    assert (report.papers, report.new, report.updated, report.total_papers) == (1, 0, 1, 1)  # two listings, one paper
    [paper] = Index.open(s).registry.papers()
    assert (paper.id, paper.arxiv_id, paper.abstract) == (first_id, "2501.12345", QUOKKA + " More.")
    assert paper.title == ("Quokka Networks: Happy Learners" if renamed_first else "Quokka Networks")
    assert sorted(paper.sources) == ["r1.jsonl", "r2.jsonl", "r3.jsonl"]
    assert _papers(s)  # one vector per registered chunk
    again = ingest([r1, r2, r3], s)
    assert (again.new, again.total_papers) == (0, 1)


def test_invisible_characters_in_a_title_make_no_duplicate_even_in_an_index_built_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.records as records
    from ingest.parsers.text import legacy_title_key

    zw = "Quokka\u200b Net\u00adworks"  # a zero-width space and a soft hyphen
    a = _jsonl(tmp_path / "a.jsonl", [{"title": zw, "abstract": QUOKKA}])
    b = _jsonl(tmp_path / "b.jsonl", [{"title": "Quokka Networks", "abstract": QUOKKA}])
    assert len(merge_entries([record_to_entry({"title": t, "abstract": QUOKKA}, "x", "line 1") for t in (zw, "Quokka Networks")])) == 1
    s = _settings(tmp_path)
    with monkeypatch.context() as m:  # an index built before: ids and title keys kept the invisible characters
        m.setattr(records, "normalise_title", legacy_title_key)
        ingest([a], s)
    index = Index.open(s)
    index.registry.delete_meta("title_keys")  # as an index of an earlier version has it
    old_id = index.registry.paper_ids()
    assert old_id != [records.paper_id(record_to_entry({"title": zw, "abstract": QUOKKA}, "x", "line 1"))]
    clean = ingest([b], s)  # the title without them, first: the same paper, under the id it was filed under
    assert (clean.new, clean.total_papers) == (0, 1)
    again = ingest([a, b], s)  # its own listing again (another run's digest): no second paper either
    assert (again.new, again.total_papers) == (0, 1)
    assert Index.open(s).registry.paper_ids() == old_id


@pytest.mark.parametrize("order", ["acb", "bac"])
def test_two_arxiv_ids_never_merge_into_one_paper_whatever_the_listing_order(tmp_path: Path, order: str) -> None:
    # filed under 'Quokka Routing''s hash with arXiv 2501.33333, then retitled; a run where a paper without
    # an id took that hash cleared what arXiv id it stood for, so a third paper (2501.33333, another title)
    # and the listing carrying the hash with 2502.44444 were all merged into one and 2502.44444 was lost
    text = "Quokka routing is studied here. It works well."
    s = _settings(tmp_path)
    for n, rows in enumerate([
        [{"title": "Quokka Routing", "abstract": text}],
        [{"title": "Quokka Routing", "abstract": text, "arxiv_id": "2501.33333"}],
        [{"title": "Quokka Routing Revisited", "abstract": text, "arxiv_id": "2501.33333"}],
    ]):  # fmt: skip
        ingest([_jsonl(tmp_path / f"r{n}.jsonl", rows)], s)
    files = {
        "a": _jsonl(tmp_path / "a.jsonl", [{"title": "Quokka Routing Revisited", "abstract": text}]),
        "b": _jsonl(tmp_path / "b.jsonl", [
            {"title": "Quokka Routing", "abstract": text},
            {"title": "Quokka Routing", "abstract": "Wombat routing is another paper. It is about wombats.",
             "arxiv_id": "2502.44444"},
        ]),
        "c": _jsonl(tmp_path / "c.jsonl", [{"title": "Capybara Cascades", "abstract": "Capybara cascades differ.",
                                            "arxiv_id": "2501.33333"}]),
    }  # fmt: skip
    report = ingest([files[k] for k in order], s)
    registry = Index.open(s).registry
    held = {p.arxiv_id for p in registry.papers()}
    assert {"2501.33333", "2502.44444"} <= held, held  # no arXiv id is merged away
    assert report.papers == report.new + report.updated + report.unchanged
