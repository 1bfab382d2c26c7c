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
from ingest.records import merge_entries

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
