"""Listing parsers: each format on hand-written fixtures, bad input, detection, and the real HF corpus."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ingest.parsers import (
    ARXIV_ATOM,
    BIBTEX,
    HF_DAILY,
    JSON,
    LISTING_EXTENSIONS,
    Entry,
    ParseResult,
    detect_parser,
    iter_listing_files,
    read_listing,
)
from ingest.parsers.bibtex import latex_to_text, split_bib_authors
from ingest.parsers.hf_daily import split_date_upvotes
from ingest.parsers.text import extract_arxiv_id, normalise_title, parse_date

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "listings"
CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "corpus" / "hf-daily-papers"
# Built at run time so that no tracked file contains the page's subscription line verbatim.
TRENDING_LINE = "Get trending papers in your " + "email inbox!"


def by_title(result: ParseResult) -> dict[str, Entry]:
    return {e.title: e for e in result.entries}


def skip_map(result: ParseResult) -> dict[str, str]:
    return {s.locator: s.reason for s in result.skipped}


# --------------------------------------------------------------------------- HF Daily Papers text


def test_hf_daily_fields_exact() -> None:
    result = read_listing(FIXTURES / "hf_daily.txt")
    assert result.skipped == []
    assert [e.title for e in result.entries] == [
        "LoRA: Low-Rank Adaptation of Large Language Models",
        "QLoRA: Efficient Finetuning of Quantized LLMs",
        "Verbalized Sampling: How to Mitigate Mode Collapse and Unlock LLM Diversity",
        "Mamba: Linear-Time Sequence Modeling with Selective State Spaces",
        "Direct Preference Optimization: Your Language Model is Secretly a Reward Model",
    ]
    lora, qlora, verbalized, mamba, dpo = result.entries
    # "Apr 22": no year given, so none is invented.
    assert (lora.date, lora.year, lora.date_iso, lora.upvotes, lora.n_authors) == (
        "Apr 22",
        None,
        None,
        None,
        8,
    )
    assert lora.source == "hf_daily.txt" and lora.locator == "line 11"
    assert lora.abstract.startswith("We propose Low-Rank Adaptation, which freezes")
    assert lora.abstract.endswith("for downstream tasks.")
    assert (qlora.date, qlora.year, qlora.date_iso, qlora.upvotes, qlora.n_authors) == (
        "Dec 5, 2024",
        2024,
        "2024-12-05",
        4,
        4,
    )
    # Organisation block: "stanfordnlp Stanford NLP" / · / "Oct 1 3" -> display name, date, upvotes.
    assert (verbalized.org, verbalized.date, verbalized.upvotes, verbalized.year) == (
        "Stanford NLP",
        "Oct 1",
        3,
        None,
    )
    assert verbalized.n_authors is None and verbalized.locator == "line 27"
    # No metadata block at all.
    assert (mamba.date, mamba.n_authors, mamba.org, mamba.upvotes, mamba.locator) == (
        None,
        None,
        None,
        None,
        "line 35",
    )
    assert (dpo.date, dpo.year, dpo.date_iso, dpo.upvotes, dpo.n_authors) == (
        "Aug 6, 2024",
        2024,
        "2024-08-06",
        None,
        6,
    )
    assert all(e.org is None for e in (lora, qlora, mamba, dpo))


def test_hf_daily_without_metadata_blocks() -> None:
    result = read_listing(FIXTURES / "hf_plain.txt")
    assert result.skipped == []
    assert [(e.title, e.locator) for e in result.entries] == [
        ("Attention Is All You Need", "line 5"),
        ("Scaling Laws for Neural Language Models", "line 9"),
        ("Retrieval-Augmented Generation for Knowledge-Intensive NLP Tasks", "line 13"),
    ]
    assert result.entries[1].abstract.startswith("We study empirical scaling laws")
    assert all(e.date is None and e.n_authors is None for e in result.entries)


def test_hf_daily_bad_entries_are_skipped_and_the_rest_parses() -> None:
    path = FIXTURES / "hf_bad.txt"
    result = read_listing(path)
    assert [(e.title, e.locator) for e in result.entries] == [
        ("FlashAttention: Fast and Memory-Efficient Exact Attention with IO-Awareness", "line 9"),
        ("Chain-of-Thought Prompting Elicits Reasoning in Large Language Models", "line 19"),
    ]
    flash = result.entries[0]
    assert (flash.n_authors, flash.date, flash.year, flash.date_iso, flash.upvotes) == (
        5,
        "May 27, 2022",
        2022,
        "2022-05-27",
        12,
    )
    assert result.entries[1].abstract.startswith("We explore how generating a chain of thought")
    skips = skip_map(result)
    assert set(skips) == {"line 3", "line 17", "line 23"}
    assert "A Title Whose Abstract Went Missing" in skips["line 3"] and "no abstract" in skips["line 3"]
    assert "Another Title Without Any Abstract" in skips["line 17"] and "no abstract" in skips["line 17"]
    assert "no title" in skips["line 23"]
    assert all(s.source == str(path) and "hf_bad.txt" in str(s) for s in result.skipped)
    assert all("\n" not in str(s) for s in result.skipped)


def test_hf_daily_page_header_and_missing_trailing_newline(tmp_path: Path) -> None:
    text = "\n\n".join(
        ["new", TRENDING_LINE, "Subscribe", "Daily Papers", "byAK and the research community", "Oct 28",
         "Some Title", "An abstract. It has two sentences.", "  • 1 authors\n·\nJan 2, 2025 1.2k"]
    )  # fmt: skip
    path = tmp_path / "page.txt"
    path.write_text(text, encoding="utf-8")  # no trailing newline, like the real files
    result = read_listing(path)
    assert result.skipped == []
    [entry] = result.entries
    assert (entry.title, entry.locator, entry.n_authors, entry.date, entry.upvotes, entry.date_iso) == (
        "Some Title",
        "line 13",
        1,
        "Jan 2, 2025",
        1200,
        "2025-01-02",
    )


def test_hf_title_at_end_of_file_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "cut.txt"
    path.write_text("Good Title\n\nA good abstract.\n\nDangling Title\n", encoding="utf-8")
    result = read_listing(path)
    assert [e.title for e in result.entries] == ["Good Title"]
    assert [(s.locator, "no abstract" in s.reason) for s in result.skipped] == [("line 5", True)]


@pytest.mark.parametrize(
    ("last", "kept"),
    [
        ("Second abstract, cut off in the middle of the", False),  # the file ends inside an abstract
        ("Second abstract, whole. It ends with a sentence.", True),  # only the author/date line is missing
        ("Second abstract, whole. Code: https://github.com/org/repo", True),  # a link ends many abstracts
    ],
)
def test_hf_abstract_cut_at_end_of_file_is_skipped(tmp_path: Path, last: str, kept: bool) -> None:
    # a page saved half-way used to store its last paper with the cut abstract, reported as nothing skipped
    path = tmp_path / "half.txt"
    path.write_text("First Title\n\nA whole abstract.\n\n  • 2 authors\n·\nJan 2, 2025\n\nSecond Title\n\n" + last,
                    encoding="utf-8")
    result = read_listing(path)
    assert [e.title for e in result.entries] == ["First Title", "Second Title"][: 1 + kept]
    assert [s.locator for s in result.skipped] == ([] if kept else ["line 9"])
    assert kept or "cut short in its abstract (end of file)" in result.skipped[0].reason


def test_split_date_upvotes() -> None:
    assert split_date_upvotes("May 13 2") == ("May 13", 2)
    assert split_date_upvotes("Dec 15, 2023 1") == ("Dec 15, 2023", 1)
    assert split_date_upvotes("Aug 6, 2024") == ("Aug 6, 2024", None)
    assert split_date_upvotes("stanfordnlp Stanford NLP") is None


# --------------------------------------------------------------------------- JSON Lines / JSON


def test_jsonl_entries_and_bad_lines() -> None:
    path = FIXTURES / "papers.jsonl"
    result = read_listing(path)
    attention, gpt3, mixtral = result.entries
    assert attention.title == "Attention Is All You Need" and attention.locator == "line 1"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer"] and attention.n_authors == 2
    assert (attention.date, attention.year, attention.date_iso) == ("2017-06-12", 2017, "2017-06-12")
    assert (attention.arxiv_id, attention.venue) == ("1706.03762", "NeurIPS")
    assert attention.url == "https://arxiv.org/abs/1706.03762v7"
    assert gpt3.authors == ["Tom B. Brown", "Benjamin Mann", "Nick Ryder"]
    assert (gpt3.date, gpt3.year, gpt3.date_iso) == ("2020", 2020, None)
    assert (mixtral.date, mixtral.year, mixtral.arxiv_id, mixtral.locator) == (
        "Jan 8",
        None,
        "2401.04088",
        "line 6",
    )
    skips = skip_map(result)
    assert set(skips) == {"line 4", "line 5", "line 7"}
    assert "invalid JSON" in skips["line 4"] and "column" in skips["line 4"]
    assert "record 4" in skips["line 5"] and "'abstract'" in skips["line 5"]
    assert "record 6" in skips["line 7"] and "'title'" in skips["line 7"] and "string" in skips["line 7"]
    assert all(s.source == str(path) for s in result.skipped)


def test_json_papers_object() -> None:
    result = read_listing(FIXTURES / "papers.json")
    entries = by_title(result)
    assert [e.locator for e in result.entries] == ["record 1", "record 3", "record 4"]
    toolformer = entries["Toolformer: Language Models Can Teach Themselves to Use Tools"]
    assert (toolformer.date, toolformer.year, toolformer.date_iso, toolformer.arxiv_id) == (
        "Feb 9, 2023",
        2023,
        "2023-02-09",
        "2302.04761",
    )
    assert toolformer.authors == ["Timo Schick", "Jane Dwivedi-Yu"] and toolformer.source == "papers.json"
    selfcons = entries["Self-Consistency Improves Chain of Thought Reasoning in Language Models"]
    assert (selfcons.date, selfcons.year, selfcons.date_iso) == ("spring 2023", 2023, None)
    react = entries["ReAct: Synergizing Reasoning and Acting in Language Models"]
    assert (react.date, react.year, react.date_iso, react.arxiv_id) == ("2022-10", 2022, None, None)
    skips = skip_map(result)
    assert set(skips) == {"record 2", "record 5"}
    assert "'title'" in skips["record 2"] and "missing" in skips["record 2"]
    assert "'authors'" in skips["record 5"]


def test_json_list_and_arxiv_id_from_url() -> None:
    result = read_listing(FIXTURES / "list.json")
    assert result.skipped == []
    resnet, adam = result.entries
    assert (resnet.year, resnet.date_iso, resnet.venue, resnet.arxiv_id) == (2015, "2015-12-10", "CVPR", None)
    assert (adam.arxiv_id, adam.date, adam.year) == ("1412.6980", None, None)


def test_malformed_json_file_names_line_and_column() -> None:
    path = FIXTURES / "broken.json"
    result = read_listing(path)
    assert result.entries == []
    [skip] = result.skipped
    assert skip.source == str(path) and skip.locator == "line 4"
    assert "line 4, column 22" in skip.reason


def test_json_of_the_wrong_shape(tmp_path: Path) -> None:
    path = tmp_path / "odd.json"
    path.write_text('{"items": []}', encoding="utf-8")
    [skip] = read_listing(path).skipped
    assert "'papers'" in skip.reason and skip.locator == ""


# --------------------------------------------------------------------------- arXiv Atom


def test_arxiv_atom_entries() -> None:
    path = FIXTURES / "arxiv.xml"
    result = read_listing(path)
    lora, bert = result.entries
    assert lora.title == "LoRA: Low-Rank Adaptation of Large Language Models"
    assert lora.abstract == (
        "An important paradigm of natural language processing consists of large-scale pre-training "
        "on general domain data & adaptation to tasks."
    )
    assert (lora.arxiv_id, lora.url, lora.date, lora.year, lora.date_iso) == (
        "2106.09685",
        "http://arxiv.org/abs/2106.09685v2",
        "2021-06-17",
        2021,
        "2021-06-17",
    )
    assert lora.authors == ["Edward J. Hu", "Yelong Shen"] and lora.n_authors == 2 and lora.venue is None
    assert (lora.source, lora.locator) == ("arxiv.xml", "record 1")
    assert bert.title == "BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding"
    assert (bert.venue, bert.arxiv_id, bert.date) == (
        "NAACL-HLT 2019, pages 4171-4186",
        "1810.04805",
        "2018-10-11",
    )
    [skip] = result.skipped
    assert (skip.source, skip.locator) == (str(path), "record 3") and "summary" in skip.reason


def test_arxiv_error_feed_is_a_skip() -> None:
    result = read_listing(FIXTURES / "arxiv_error.xml")
    assert result.entries == []
    [skip] = result.skipped
    assert (
        skip.locator == "record 1"
        and "arXiv API error" in skip.reason
        and "incorrect id format" in skip.reason
    )


def test_malformed_xml_names_line() -> None:
    path = FIXTURES / "broken.xml"
    [skip] = read_listing(path).skipped
    assert skip.source == str(path) and skip.locator == "line 6"
    assert "malformed XML" in skip.reason and "line 6" in skip.reason


# --------------------------------------------------------------------------- BibTeX


def test_bibtex_entries() -> None:
    path = FIXTURES / "refs.bib"
    result = read_listing(path)
    lora, attention, qlora = result.entries
    assert lora.title == "LoRA: Low-Rank Adaptation of Large Language Models"
    assert lora.abstract == (
        "We propose Low-Rank Adaptation, or LoRA, which freezes the pre-trained model weights and "
        "injects trainable rank decomposition matrices."
    )
    assert lora.authors == ["Edward J. Hu", "Yelong Shen", "Phillip Wallis"] and lora.n_authors == 3
    assert (lora.year, lora.date, lora.arxiv_id, lora.venue, lora.locator) == (
        2021,
        "June 2021",
        "2106.09685",
        "arXiv preprint",
        "line 8",
    )
    assert attention.title == "Attention is All you Need"
    assert attention.authors == ["Ashish Vaswani", "Noam Shazeer", "Jérôme Müller"]
    assert attention.venue == "Advances in Neural Information Processing Systems 30"  # @string macro # "..."
    assert (attention.year, attention.locator) == (2017, "line 20")
    assert attention.url is not None and attention.url.startswith("https://proceedings.neurips.cc/")
    assert (qlora.title, qlora.arxiv_id, qlora.year, qlora.locator) == (
        "QLoRA: Efficient Finetuning of Quantized LLMs",
        "2305.14314",
        2023,
        "line 40",
    )
    skips = skip_map(result)
    assert set(skips) == {"line 29", "line 35"}
    assert "noabstract2020" in skips["line 29"] and "no abstract field" in skips["line 29"]
    assert "broken2022" in skips["line 35"] and "unbalanced" in skips["line 35"]
    assert all(s.source == str(path) for s in result.skipped)


def test_latex_cleanup() -> None:
    assert latex_to_text(r"{LoRA}: Low-Rank {A}daptation") == "LoRA: Low-Rank Adaptation"
    assert latex_to_text(r"Schr\"{o}dinger {\'e}t\'e \c{c}a \ss{} \o") == "Schrödinger été ça ß ø"
    assert latex_to_text(r"\emph{Fast} \& 50\% -- \LaTeX{} $\alpha$") == "Fast & 50% – LaTeX α"
    assert split_bib_authors(r"Hu, Edward and {Google Research} and M{\"u}ller, J. and others") == [
        "Edward Hu", "Google Research", "J. Müller"
    ]  # fmt: skip


def test_bibtex_quoted_and_paren_entries(tmp_path: Path) -> None:
    path = tmp_path / "x.bib"
    path.write_text(
        '@misc(k1, title = "A {B} c", abstract = "Quoted, with {braces}.", year = "2024",\n'
        "  date = {2024-03-05}, url = {https://arxiv.org/abs/2403.01234v3})\n",
        encoding="utf-8",
    )
    [entry] = read_listing(path).entries
    assert (entry.title, entry.abstract, entry.date, entry.date_iso, entry.arxiv_id) == (
        "A B c",
        "Quoted, with braces.",
        "2024-03-05",
        "2024-03-05",
        "2403.01234",
    )


# --------------------------------------------------------------------------- read_listing: whole-file problems


@pytest.mark.parametrize("name", ["empty.txt", "blank.jsonl"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"" if name == "empty.txt" else b"\n  \n")
    assert [(s.source, s.locator, s.reason) for s in read_listing(path).skipped] == [
        (str(path), "", "empty file")
    ]


def test_binary_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    result = read_listing(path)
    assert result.entries == [] and [s.reason for s in result.skipped] == ["binary file, not a listing"]


def test_non_utf8_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("Title\n\nAbstract one.\n\nCaf\u00e9 Title\n".encode("latin-1"))
    [skip] = read_listing(path).skipped
    assert skip.source == str(path) and skip.locator == "line 5"
    assert "not valid UTF-8 at line 5" in skip.reason


def test_missing_file_and_directory(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    [skip] = read_listing(missing).skipped
    assert (skip.source, skip.reason) == (str(missing), "no such file")
    [skip] = read_listing(tmp_path).skipped
    assert "directory" in skip.reason


def test_unrecognised_format(tmp_path: Path) -> None:
    path = tmp_path / "table.csv"
    path.write_text("title,abstract\nA,B\nC,D\n", encoding="utf-8")
    [skip] = read_listing(path).skipped
    assert skip.source == str(path) and "unrecognised format" in skip.reason


def test_bom_and_crlf_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "win.txt"
    path.write_bytes(
        b"\xef\xbb\xbfTitle One\r\n\r\nAbstract one.\r\n\r\n  \xe2\x80\xa2 2 authors\r\n\xc2\xb7\r\nMay 1, 2024\r\n"
    )
    [entry] = read_listing(path).entries
    assert (entry.title, entry.abstract, entry.n_authors, entry.date_iso) == (
        "Title One",
        "Abstract one.",
        2,
        "2024-05-01",
    )


def test_garbage_never_raises(tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = "{}[]()<>@\"',=#\\:/ \n\tabcXYZ019·•é"
    for i in range(200):
        ext = [".txt", ".json", ".jsonl", ".xml", ".bib", ""][i % 6]
        path = tmp_path / f"g{i}{ext}"
        path.write_text("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 300))), encoding="utf-8")
        result = read_listing(path)
        assert all("\n" not in s.reason and "Traceback" not in s.reason for s in result.skipped)
        assert all("parser failed" not in s.reason for s in result.skipped), result.skipped


# --------------------------------------------------------------------------- format detection


def test_detection_by_extension() -> None:
    assert detect_parser(Path("a.jsonl"), "") is JSON
    assert detect_parser(Path("a.JSON"), "") is JSON
    assert detect_parser(Path("a.xml"), "") is ARXIV_ATOM
    assert detect_parser(Path("a.atom"), "") is ARXIV_ATOM
    assert detect_parser(Path("a.bib"), "") is BIBTEX
    assert detect_parser(Path("a.txt"), '{"title": "x"}') is HF_DAILY  # the extension wins
    assert {".txt", ".json", ".jsonl", ".xml", ".atom", ".bib"} <= LISTING_EXTENSIONS


@pytest.mark.parametrize(
    ("fixture", "parser_name", "n_entries"),
    [
        ("hf_daily.txt", "hf_daily", 5),
        ("papers.jsonl", "json", 3),
        ("papers.json", "json", 3),
        ("arxiv.xml", "arxiv_atom", 2),
        ("refs.bib", "bibtex", 3),
    ],
)
def test_detection_by_content(tmp_path: Path, fixture: str, parser_name: str, n_entries: int) -> None:
    text = (FIXTURES / fixture).read_text(encoding="utf-8")
    path = tmp_path / "listing.dat"  # an extension no parser owns
    path.write_text(text, encoding="utf-8")
    parser = detect_parser(path, text[:4096])
    assert parser is not None and parser.name == parser_name
    assert len(read_listing(path).entries) == n_entries


# --------------------------------------------------------------------------- iter_listing_files


def test_iter_listing_files(tmp_path: Path) -> None:
    root = tmp_path / "listings"
    (root / "sub").mkdir(parents=True)
    (root / ".hidden").mkdir()
    for name in ["b.txt", "a.jsonl", "sub/c.bib", "sub/d.xml", "notes.md", ".secret.txt", ".hidden/e.txt"]:
        (root / name).write_text("x", encoding="utf-8")
    odd = tmp_path / "named.dat"
    odd.write_text("x", encoding="utf-8")
    files, skipped = iter_listing_files([root, odd, tmp_path / "missing.txt", root / "b.txt"])
    assert files == [root / "a.jsonl", root / "b.txt", root / "sub" / "c.bib", root / "sub" / "d.xml", odd]
    [skip] = skipped
    assert skip.source == str(tmp_path / "missing.txt") and "no such file" in skip.reason


# --------------------------------------------------------------------------- text helpers


def test_normalise_title() -> None:
    assert normalise_title("  Attention is  all\nyou need. ") == normalise_title("ATTENTION IS ALL YOU NEED")
    assert normalise_title("“Quoted” Title!") == "quoted” title"  # only the ends are stripped
    assert normalise_title("(Dynamic) Prompting") == "dynamic) prompting"
    assert normalise_title("GPT-4 vs. Llama") == "gpt-4 vs. llama"


@pytest.mark.parametrize(
    ("text", "year", "iso"),
    [
        ("Apr 22", None, None),
        ("Aug 6, 2024", 2024, "2024-08-06"),
        ("2024-05-01", 2024, "2024-05-01"),
        ("2024-05-01T17:37:18Z", 2024, "2024-05-01"),
        ("2024", 2024, None),
        ("May 2024", 2024, None),
        ("6 Aug 2024", 2024, "2024-08-06"),
        ("Feb 30, 2024", 2024, None),
        ("sometime", None, None),
        (None, None, None),
    ],
)
def test_parse_date(text: str | None, year: int | None, iso: str | None) -> None:
    info = parse_date(text)
    assert (info.year, info.date_iso) == (year, iso)


def test_extract_arxiv_id() -> None:
    assert extract_arxiv_id("http://arxiv.org/abs/2401.12345v2") == "2401.12345"
    assert extract_arxiv_id("https://arxiv.org/pdf/2401.12345.pdf") == "2401.12345"
    assert extract_arxiv_id("arXiv:hep-th/9901001v1") == "hep-th/9901001"
    assert extract_arxiv_id("10.48550/arXiv.2305.14314") == "2305.14314"
    assert extract_arxiv_id("2106.09685") == "2106.09685"
    assert extract_arxiv_id("https://example.com/2401.12345") is None
    assert extract_arxiv_id("not an id") is None


# --------------------------------------------------------------------------- the real corpus


def test_real_hf_corpus() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"../shared/corpus not present: {CORPUS} is missing")
    files, skipped = iter_listing_files([CORPUS])
    assert skipped == [] and len(files) == 5
    entries: list[Entry] = []
    per_file: dict[str, int] = {}
    for path in files:
        result = read_listing(path)
        assert result.skipped == [], result.skipped[:3]
        per_file[path.name[:3]] = len(result.entries)
        entries.extend(result.entries)
    assert per_file == {"000": 18, "001": 95, "002": 94, "003": 92, "004": 143}
    assert len(entries) == 442
    assert len({normalise_title(e.title) for e in entries}) == 414
    assert sum(e.org is not None for e in entries) == 7
    assert sum(e.year is not None for e in entries) == 113
    assert all(e.title and e.abstract and len(e.abstract) > len(e.title) for e in entries)
    assert all(e.year is None or (e.date is not None and str(e.year) in e.date) for e in entries)
    assert not any(TRENDING_LINE in e.title or e.title in {"Daily Papers", "Subscribe"} for e in entries)


# --------------------------------------------------------------------------- review fixes (B3, B6, B9, B10)
def test_placeholder_arxiv_ids_and_nan_are_bad_fields_named_with_their_line(tmp_path: Path) -> None:
    # B3: "N/A" was kept as the arXiv id (every record carrying it became one paper), NaN was stored as "nan"
    lines = [
        '{"title": "Good Paper", "abstract": "Fine.", "arxiv_id": "arXiv:2401.00001v2"}',
        '{"title": "Placeholder One", "abstract": "First.", "arxiv_id": "N/A"}',
        '{"title": "Placeholder Two", "abstract": "Second.", "arxiv_id": "none"}',
        '{"title": "Empty Id", "abstract": "Kept: an empty id is no id.", "arxiv_id": ""}',
        '{"title": "Not A Number", "abstract": "Third.", "date": NaN}',
        '{"title": "Infinite", "abstract": "Fourth.", "upvotes": -Infinity}',
    ]
    path = tmp_path / "ids.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = read_listing(path)
    assert [(e.title, e.arxiv_id) for e in res.entries] == [("Good Paper", "2401.00001"), ("Empty Id", None)]
    skips = skip_map(res)
    assert set(skips) == {"line 2", "line 3", "line 5", "line 6"}
    assert "'arxiv_id'" in skips["line 2"] and "'N/A'" in skips["line 2"]
    assert "'date'" in skips["line 5"] and "NaN" in skips["line 5"]
    assert "'upvotes'" in skips["line 6"] and "-Infinity" in skips["line 6"]
    assert all(str(s).startswith(f"{path}:line ") and "\n" not in str(s) for s in res.skipped)
    doc = tmp_path / "ids.json"  # a JSON document: one bad record, not the whole file
    doc.write_text('[{"title": "A", "abstract": "x", "date": NaN}, {"title": "B", "abstract": "y"}]', encoding="utf-8")
    res = read_listing(doc)
    assert [e.title for e in res.entries] == ["B"] and list(skip_map(res)) == ["record 1"]


def test_bibtex_placeholder_eprint_is_a_bad_field(tmp_path: Path) -> None:
    text = (
        "@article{a, title={One}, abstract={First.}, eprint={N/A}, archiveprefix={arXiv}}\n"
        "@article{b, title={Two}, abstract={Second.}, eprint={2401.00002v3}, archiveprefix={arXiv}}\n"
    )
    res = BIBTEX.parse(tmp_path / "x.bib", text)
    assert [(e.title, e.arxiv_id) for e in res.entries] == [("Two", "2401.00002")]
    assert len(res.skipped) == 1 and res.skipped[0].locator == "line 1" and "eprint" in res.skipped[0].reason


def test_json_lines_in_a_json_file_are_read(tmp_path: Path) -> None:
    # B10: rejected whole ("invalid JSON at line 2, column 1: Extra data")
    path = tmp_path / "papers.json"
    path.write_text('{"title": "A", "abstract": "x"}\n{"title": "B", "abstract": "y"}\nnot json\n', encoding="utf-8")
    res = read_listing(path)
    assert [e.title for e in res.entries] == ["A", "B"]
    assert list(skip_map(res)) == ["line 3"]
    broken = tmp_path / "broken.json"  # a real document with trailing junk is still a one-line error
    broken.write_text('[{"title": "A", "abstract": "x"}] trailing', encoding="utf-8")
    assert not read_listing(broken).entries and "Extra data" in read_listing(broken).skipped[0].reason


@pytest.mark.parametrize("first", ['{"title": "A", "abstract": ', '{"title": "A" "abstract": "x"}', "[" * 100_000])
def test_json_lines_in_a_json_file_are_read_when_the_first_record_is_broken(tmp_path: Path, first: str) -> None:
    # only 'Extra data' fell back to JSON Lines: a broken first record lost every record of the file
    path = tmp_path / "papers.json"
    path.write_text(first + '\n{"title": "B", "abstract": "y"}\n{"title": "C", "abstract": "z"}\n', encoding="utf-8")
    res = read_listing(path)
    assert [e.title for e in res.entries] == ["B", "C"]
    assert list(skip_map(res)) == ["line 1"]
    lone = tmp_path / "lone.json"  # one broken document is still one line naming where
    lone.write_text('[{"title": "A", "abstract": "x"},\n {"title": "B" "abstract": "y"}]\n', encoding="utf-8")
    [skip] = read_listing(lone).skipped
    assert (skip.locator, "invalid JSON at line 2" in skip.reason) == ("line 2", True)


def test_invisible_characters_do_not_change_the_title_key() -> None:
    # B9: zero-width space, soft hyphen, direction marks, BOM (category Cf) made duplicates
    plain = normalise_title("Quokka Networks")
    for title in ("Quokka\u200b Networks", "Quo\u00adkka Networks", "\u200fQuokka Networks\u200e", "\ufeffQuokka Networks."):
        assert normalise_title(title) == plain


def test_a_file_name_that_is_not_utf8_gives_clean_source_names(tmp_path: Path) -> None:
    import os

    path = tmp_path / os.fsdecode(b"list\xff.jsonl")
    path.write_text('{"title": "A", "abstract": "x"}\n{"title": "B"}\n', encoding="utf-8")
    res = read_listing(path)
    assert [e.source for e in res.entries] == ["list\ufffd.jsonl"]
    assert res.skipped[0].source.endswith("list\ufffd.jsonl")
    str(res.skipped[0]).encode("utf-8")  # printable: no lone surrogate left
