"""The Gradio UI: callbacks called directly, render helpers, and the app served on 127.0.0.1.

Answers come from the extractive backend over the seed index; its wording is not asserted, only the
structure (citations, sources panel, refusal styling, BibTeX, error messages).
"""

from __future__ import annotations

import html
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

gr = pytest.importorskip("gradio")

from assistant.answering import ask, get_assistant  # noqa: E402
from assistant.errors import BackendError, ConfigError, FilterError  # noqa: E402
from assistant.models import Answer, Citation, Paper  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from ui import gradio_app  # noqa: E402
from ui.gradio_app import ChatApp, ChatState, launch, make_filters, message_text  # noqa: E402
from ui.gradio_render import bibtex, example_questions, excerpt, filters_label, highlight, sources_html  # noqa: E402

QUESTION = "Which papers reduce catastrophic forgetting with LoRA?"
OFF_TOPIC = "What is a good recipe for sourdough bread with a crunchy crust?"


@pytest.fixture
def app(seed_settings: Settings, tmp_path: Path) -> ChatApp:
    return ChatApp(seed_settings, bib_dir=tmp_path / "bib")


def run_turn(app: ChatApp, question: str, state: ChatState | None = None, chat: list | None = None, **controls):
    """All (chat, sources, bib, state, box) tuples ``submit`` yields for one question."""
    args = {"since": "any", "until": "any", "k": 10, "backend": "extractive", **controls}
    return list(app.submit(question, chat or [], state or ChatState(), **args))


def last_text(chat: list[dict]) -> str:
    return message_text(chat[-1]["content"])


def is_skip(value: object) -> bool:
    return isinstance(value, dict) and value.get("__type__") == "update" and len(value) == 1


# --- callbacks ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_submit_streams_then_shows_checked_answer_and_sources(app: ChatApp, seed_settings: Settings) -> None:
    t0 = time.perf_counter()
    steps = run_turn(app, QUESTION)
    print(f"submit -> final: {(time.perf_counter() - t0) * 1000:.0f} ms over {len(steps)} yields")
    expected = ask(QUESTION, k=10, settings=seed_settings)
    assert isinstance(expected, Answer) and not expected.refused and expected.citations

    first_chat, *_ = steps[0]
    assert first_chat[-2] == {"role": "user", "content": QUESTION}
    assert last_text(first_chat) == gradio_app.PENDING
    streamed = [last_text(s[0]) for s in steps[1:-1]]
    assert streamed, "no streamed text before the final answer"
    assert all(is_skip(s[1]) for s in steps[:-1]), "sources panel must only change with the final answer"

    chat, panel, bib, state, box = steps[-1]
    assert box == ""
    assert last_text(chat) == expected.text and "[1]" in last_text(chat)
    assert len(chat) == 2
    first = expected.citations[0]
    assert html.escape(first.title) in panel
    assert 'class="la-sources la-answer"' in panel and 'data-turn="1"' in panel
    mark = re.search(r'id="la-src-1".*?<mark>(.*?)</mark>', panel, re.S)
    assert mark and " ".join(html.unescape(mark.group(1)).split()) == " ".join(first.snippet.split())
    uncited = [h for h in expected.contexts if h.paper.id not in {c.paper_id for c in expected.citations}]
    if uncited:
        assert "<details class=\"la-more\">" in panel and html.escape(uncited[0].paper.title) in panel
    assert state.turn == 1 and state.answer.text == expected.text
    assert bib["interactive"] is True and Path(bib["value"]).name.endswith(".bib")
    text = Path(bib["value"]).read_text()
    assert text.count("@misc{") == len(expected.citations)
    assert "Catastrophic Forgetting" in text


@pytest.mark.slow
def test_refusal_is_styled_and_lists_closest(app: ChatApp) -> None:
    chat, panel, bib, state, _ = run_turn(app, OFF_TOPIC)[-1]
    assert state.answer.refused and state.answer.closest
    assert '<div class="la-refusal-msg">' in chat[-1]["content"]
    assert 'class="la-sources la-refusal"' in panel and 'class="la-notice"' in panel
    assert html.escape(state.answer.closest[0].title) in panel and "la-closest" in panel
    assert bib["interactive"] is False  # nothing cited, nothing to export


@pytest.mark.slow
def test_follow_up_passes_history_and_keeps_filters(app: ChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[dict] = []

    def spy(question: str, **kwargs):  # type: ignore[no-untyped-def]
        calls.append({"question": question, **kwargs})
        return ask(question, **kwargs)

    monkeypatch.setattr(gradio_app, "ask", spy)
    chat, _, _, state, _ = run_turn(app, QUESTION, since="2024")[-1]
    first_answer = state.answer
    chat, panel, _, state, _ = run_turn(app, "Which of them use Fisher information?", state, chat, since="2024")[-1]
    assert len(chat) == 4 and state.turn == 2
    assert calls[0]["history"] == []
    assert calls[1]["history"] == [  # the answer's papers kept with its turn: a follow-up needs no replay
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": first_answer.text, "papers": [c.paper_id for c in first_answer.citations],
         "confidence": first_answer.confidence},
    ]
    assert calls[0]["filters"].since == calls[1]["filters"].since == 2024
    assert state.answer.filters.since == 2024
    years = [c.year for c in state.answer.citations + state.answer.closest]
    assert years and all(y is not None and y >= 2024 for y in years)
    # asked of the papers the first answer cited, and the panel says so
    shown = {c.paper_id for c in first_answer.citations}
    assert set(state.answer.filters.papers or []) == shown
    got = {c.paper_id for c in state.answer.citations + state.answer.closest}
    assert got and got <= shown
    assert f"among {len(shown)} earlier papers" in filters_label(state.answer.filters)
    assert html.escape(f"among {len(shown)} earlier papers") in panel


@pytest.mark.slow
def test_bad_filter_is_a_chat_message(app: ChatApp) -> None:
    steps = run_turn(app, QUESTION, since="2025", until="2024")
    chat, panel, _, state, _ = steps[-1]
    content = chat[-1]["content"]
    assert '<div class="la-error-msg">' in content and "2025" in content and "Traceback" not in content
    assert is_skip(panel) and state.turn == 0 and state.history == []
    with pytest.raises(FilterError):
        make_filters("twenty", None)
    assert make_filters("any", 0).is_empty() and make_filters("2023", 2024.0).until == 2024


@pytest.mark.slow
def test_backend_error_is_a_chat_message(app: ChatApp, seed_settings: Settings, monkeypatch) -> None:
    class DownBackend:
        name = "openai"

        def condense(self, question: str, history: list) -> str:
            return question

        def generate(self, req):  # type: ignore[no-untyped-def]
            raise BackendError("LLM endpoint http://127.0.0.1:9/v1 is unreachable (connection refused)")
            yield ""

    monkeypatch.setitem(get_assistant(seed_settings)._backends, "openai", DownBackend())
    chat, *_ = run_turn(app, QUESTION, backend="openai")[-1]
    assert '<div class="la-error-msg">' in chat[-1]["content"] and "unreachable" in chat[-1]["content"]


def test_empty_index_message_gives_the_command(tmp_path: Path) -> None:
    app = ChatApp(Settings(data_dir=tmp_path / "empty"), bib_dir=tmp_path / "bib")
    status = app.status()
    assert "la-status-missing" in status and "<code>litassist ingest" in status
    assert app.examples() == [] and app.years() == ["any"]
    assert app.build() is not None  # the page still builds, showing the notice
    chat, *_ = run_turn(app, QUESTION)[-1]
    content = chat[-1]["content"]
    assert "la-error-msg" in content and "No papers are indexed yet" in content and "<code>litassist ingest" in content


def test_unexpected_failure_is_one_line_in_chat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(question: str, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    monkeypatch.setattr(gradio_app, "ask", broken)
    app = ChatApp(Settings(data_dir=tmp_path / "empty"), bib_dir=tmp_path / "bib")
    chat, *_ = run_turn(app, QUESTION)[-1]
    content = chat[-1]["content"]
    assert "la-error-msg" in content and "RuntimeError: boom" in content and "Traceback" not in content


def test_empty_question_does_nothing(tmp_path: Path) -> None:
    app = ChatApp(Settings(data_dir=tmp_path / "empty"), bib_dir=tmp_path / "bib")
    ((chat, *_),) = run_turn(app, "   ")
    assert chat == []


@pytest.mark.slow
def test_status_examples_and_clear(app: ChatApp, seed_settings: Settings) -> None:
    status = app.status("extractive")
    assert "414 papers indexed" in status and "all-MiniLM-L6-v2-int8" in status and "extractive" in status
    titles = [p.title.lower() for p in get_assistant(seed_settings).index.papers.values()]
    questions = app.examples()
    assert 2 <= len(questions) <= 4
    for q in questions:
        topic = re.match(r"Which papers (?:address|work on|study) (.+)\?$", q).group(1).lower()
        stem = topic.rstrip("s")
        assert sum(stem in t for t in titles) >= 2, q
    assert app.years()[0] == "any" and "2024" in app.years()
    status2, chatbot, since, until = app.refresh("extractive")
    assert status2 == status and [e["text"] for e in chatbot["examples"]] == questions
    assert since["choices"] == until["choices"] == app.years()
    chat, panel, bib, state, box = app.clear()
    assert chat == [] and state.turn == 0 and 'data-turn="0"' in panel and bib["interactive"] is False


# --- render helpers ----------------------------------------------------------------------------


def test_examples_follow_the_corpus_not_a_fixed_list() -> None:
    titles = [
        "Graph Neural Networks for Protein Folding", "Scalable Graph Neural Networks on Large Graphs",
        "Protein Folding with Diffusion", "Protein Folding at Scale", "Graph Neural Networks Explained",
        "Weather Forecasting with Transformers", "Neural Weather Forecasting", "A Note on Sorting",
    ] + [f"Unrelated Title Number {i}" for i in range(12)]
    questions = example_questions(titles, 3)
    joined = " ".join(questions).lower()
    assert all(q.startswith("Which papers") and q.endswith("?") for q in questions)
    assert "graph neural network" in joined and "protein folding" in joined and "weather forecasting" in joined


def test_highlight_escapes_and_marks() -> None:
    abstract = "We study <script>x</script> & co. Our method cuts   forgetting by 40%. It is fast."
    out = highlight(abstract, "Our method cuts forgetting by 40%.")
    assert "<script>" not in out and "&lt;script&gt;" in out and "&amp; co." in out
    assert "<mark>Our method cuts   forgetting by 40%.</mark>" in out
    assert excerpt(abstract, "It is fast.").endswith("<mark>It is fast.</mark>")
    assert highlight(abstract, "not in there").startswith("<mark>not in there</mark>")


def test_sources_panel_escapes_titles_and_links_urls() -> None:
    paper = Paper(id="arxiv:2401.1", title="A <b>bold</b> title", abstract="Intro. Key claim here. Outro.",
                  arxiv_id="2401.1", sources=["003_x.txt"], date="Jan 2, 2024", year=2024)
    cite = Citation(n=1, paper_id=paper.id, title=paper.title, date=paper.date, year=2024,
                    sources=paper.sources, snippet="Key claim here.")
    from assistant.models import Hit

    answer = Answer(question="q", standalone_question="q", text="Yes [1].", citations=[cite], backend="x",
                    contexts=[Hit(paper=paper, score=1.0, rank=1)])
    panel = sources_html(answer, turn=3)
    assert "A &lt;b&gt;bold&lt;/b&gt; title" in panel and "<b>bold</b>" not in panel
    assert 'href="https://arxiv.org/abs/2401.1"' in panel and "listing: 003_x.txt" in panel
    assert "Jan 2, 2024" in panel and "<mark>Key claim here.</mark>" in panel and 'data-turn="3"' in panel


CONTROLS = ("\u202e", "\u2066", "\u200f", "\u061c", "\x1b", "\x07", "\x9b", "\x00")
HOSTILE = "RTL \u202eevil\u202c and \u2066iso\u2069 \u200f\u061c \x1b[31mred\x1b[0m \x1b]0;title\x07 \x9b2J \x00nul"


def test_sources_panel_and_refusal_drop_bidi_overrides_and_escapes() -> None:
    """Titles, abstracts, snippets and listing names in the sources panel (and a refusal's chat message,
    which quotes them) lose bidi controls, ANSI/OSC escapes and other control characters."""
    from assistant.models import Hit

    abstract = f"Intro. We show {HOSTILE} works. Outro."
    paper = Paper(id="t:1", title=f"Title {HOSTILE}", abstract=abstract, sources=[f"003_{HOSTILE}.txt"],
                  date="Jan 2, 2024\u202e", year=2024)
    other = Paper(id="t:2", title=f"Other {HOSTILE}", abstract=abstract, year=2024)
    cite = Citation(n=1, paper_id=paper.id, title=paper.title, date=paper.date, year=2024, sources=paper.sources,
                    snippet=f"We show {HOSTILE} works.")
    hits = [Hit(paper=paper, score=1.0, rank=1), Hit(paper=other, score=0.5, rank=2)]
    answered = Answer(question="q", standalone_question="q", text=f"We show {HOSTILE} works [1].", citations=[cite],
                      backend="x", contexts=hits)
    refused = Answer(question="q", standalone_question="q", refused=True, backend="x", contexts=hits, closest=[cite],
                     text=f'No answer.\nClosest, but not answering:\n- {cite.title} — "{cite.snippet}"')
    for answer in (answered, refused):
        shown = sources_html(answer) + gradio_app.answer_message(answer)["content"]
        assert not [c for c in CONTROLS if c in shown], shown
        assert "Title RTL evil and iso" in shown and "red" in shown
    assert "<mark>We show RTL evil and iso" in sources_html(answered)  # the snippet is still found and marked


def test_api_k_must_be_a_whole_number_of_papers(tmp_path: Path) -> None:
    """k from the API (or a scripted chat call) is 1..100 papers; anything else is a one-line FilterError,
    never an exception, and never silently the default or a rounded number."""
    app = ChatApp(Settings(data_dir=tmp_path / "empty"), bib_dir=tmp_path / "bib")
    for bad in (float("nan"), float("inf"), -float("inf"), 0, 3.5, -2, 101, "many", True, 10**400, [3]):
        result = app.api_ask(QUESTION, k=bad)  # type: ignore[arg-type]
        assert result["kind"] == "FilterError" and result["error"].startswith("k: "), (bad, result)
        chat, *_ = run_turn(app, QUESTION, k=bad)[-1]
        content = chat[-1]["content"]
        assert "la-error-msg" in content and "k: expected a whole number" in content, (bad, content)
    assert [gradio_app.papers_k(v) for v in (None, "", 1, 5.0, "7", 100)] == [None, None, 1, 5, 7, 100]


def _balanced(text: str) -> bool:
    depth = 0
    for m in re.finditer(r"\\.|[{}]", text):
        if m.group() == "{":
            depth += 1
        elif m.group() == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def test_bibtex_escapes_braces_and_fills_fields() -> None:
    paper = Paper(id="arxiv:2401.00001", title="Curly {Braces} and } stray % 50_50",
                  abstract="Uses {unbalanced braces and \\commands & 5% more.", authors=["Ada Lovelace", "Alan Turing"],
                  arxiv_id="2401.00001", year=2024, url="https://example.org/p?a={1}")
    other = Paper(id="t:1", title="Curly sequel", abstract="Plain.", year=2024)
    cites = [Citation(n=1, paper_id=paper.id, title=paper.title, year=2024, url=paper.url),
             Citation(n=2, paper_id=other.id, title=other.title, year=2024)]
    text = bibtex(cites, {paper.id: paper, other.id: other})
    entries = [e for e in text.split("\n\n") if e.strip()]
    assert len(entries) == 2 and all(_balanced(e) for e in entries)
    first = entries[0]
    assert first.startswith("@misc{lovelace2024curly,")
    assert r"title = {{Curly \{Braces\} and \} stray \% 50\_50}}" in first
    assert r"abstract = {Uses \{unbalanced braces and \textbackslash{}commands \& 5\% more.}" in first
    assert "author = {Ada Lovelace and Alan Turing}" in first and "year = {2024}" in first
    assert "eprint = {2401.00001}" in first and "url = {https://example.org/p?a=%7B1%7D}" in first
    assert entries[1].startswith("@misc{curly2024,") and "url = " not in entries[1]


def test_auth_settings_must_come_in_pairs(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, ui={"username": "ada"})
    with pytest.raises(ConfigError, match="username and ui.password"):
        launch(settings, port=free_port(), prevent_thread_lock=True)


# --- served on 127.0.0.1 -----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen | None = None, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}: {proc.stdout.read() if proc.stdout else ''}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


@pytest.fixture
def served(seed_env: Path) -> Iterator[str]:
    """``litassist ui --port <free>`` over the seed index, stopped by PID afterwards."""
    port = free_port()
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    exe = Path(sys.executable).with_name("litassist")
    proc = subprocess.Popen([str(exe), "ui", "--port", str(port)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        t0 = time.perf_counter()
        wait_http(url, proc)
        print(f"server up in {time.perf_counter() - t0:.1f}s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.mark.slow
@pytest.mark.network
def test_gradio_client_end_to_end(served: str) -> None:
    from gradio_client import Client

    client = Client(served, verbose=False)
    t0 = time.perf_counter()
    chat, panel, bib, box = client.predict(QUESTION, [], "any", "any", 10, "extractive", api_name="/chat")
    print(f"/chat round trip: {(time.perf_counter() - t0) * 1000:.0f} ms")
    assert chat[-2]["role"] == "user" and message_text(chat[-2]["content"]) == QUESTION
    answer = message_text(chat[-1]["content"])
    assert "[1]" in answer
    title = html.unescape(re.search(r'id="la-src-1".*?</span>\s*(.*?)</div>', panel, re.S).group(1))
    assert title
    result = client.predict(QUESTION, None, None, 10, None, api_name="/ask")
    assert "[1]" in result["answer"] and result["citations"][0]["title"] == title and not result["refused"]
    error = client.predict(QUESTION, 2025, 2024, 10, None, api_name="/ask")
    assert error["kind"] == "FilterError" and "2025" in error["error"]


@pytest.mark.slow
@pytest.mark.network
def test_basic_auth_when_configured(seed_settings: Settings) -> None:
    import urllib.error
    import urllib.parse

    settings = Settings(data_dir=seed_settings.data_dir, cache_dir=seed_settings.cache_dir,
                        ui={"username": "ada", "password": "s3cret"})
    port = free_port()
    demo = launch(settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    base = f"http://127.0.0.1:{port}/"
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(base + "config", timeout=10)
        assert denied.value.code == 401
        for password, ok in (("wrong", False), ("s3cret", True)):
            body = urllib.parse.urlencode({"username": "ada", "password": password}).encode()
            try:
                with urllib.request.urlopen(base + "login", data=body, timeout=10) as reply:
                    assert ok and reply.status == 200
            except urllib.error.HTTPError as err:
                assert not ok and err.code in (400, 401)
    finally:
        demo.close()


@pytest.mark.parametrize("year", [True, -5, 1e30, float("inf"), 99999, "12"])
def test_a_year_box_takes_a_four_digit_year(year: object) -> None:
    from ui.gradio_app import make_filters

    with pytest.raises(FilterError, match="since"):
        make_filters(year, None)
    assert make_filters(2024, "2025").since == 2024 and make_filters(0, None).since is None
