"""The Gradio UI in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

Asks a question by typing it, waits for the streamed answer, checks the citation and the sources
panel, downloads the BibTeX export, checks that a refusal looks different, and saves screenshots
under artifacts/. Prints submit -> first streamed token and submit -> complete answer times.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.answering import ask
from assistant.models import Answer
from assistant.settings import Settings

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "artifacts"
QUESTION = "Which papers reduce catastrophic forgetting with LoRA?"
OFF_TOPIC = "What is a good recipe for sourdough bread with a crunchy crust?"
ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-quic",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.network,
    pytest.mark.skipif(not CHROMIUM.exists(), reason=f"{CHROMIUM} is absent: apt-get install -y chromium chromium-driver"),
]

# Timestamps (performance.now()) of: Enter pressed, first answer text, final sources panel of turn N.
OBSERVER = """(turn) => {
  const la = window.__la = {t0: null, first: null, done: null};
  const box = document.querySelector('#la-input textarea');
  box.addEventListener('keydown', (e) => { if (e.key === 'Enter' && la.t0 === null) la.t0 = performance.now(); }, true);
  const seen = document.querySelectorAll('#la-chat [data-testid="bot"]').length;
  new MutationObserver(() => {
    if (la.t0 === null) return;
    const bots = document.querySelectorAll('#la-chat [data-testid="bot"]');
    if (la.first === null && bots.length > seen) {
      const text = bots[bots.length - 1].innerText.trim();
      if (text && !text.includes('Searching the papers')) la.first = performance.now();
    }
    if (la.done === null && document.querySelector(`#la-sources .la-sources[data-turn="${turn}"]`)) {
      la.done = performance.now();
    }
  }).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


# The chat keeps its newest line in view; scroll its container so the answer's first line is on top.
SCROLL_TO_TOP = """(el) => {
  let box = el.parentElement;
  while (box && !(box.scrollHeight > box.clientHeight && /(auto|scroll)/.test(getComputedStyle(box).overflowY))) {
    box = box.parentElement;
  }
  if (box) box.scrollTop += el.getBoundingClientRect().top - box.getBoundingClientRect().top - 8;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def served(settings: Settings) -> Iterator[str]:
    """The Gradio app over ``settings``' index, launched in-process on 127.0.0.1; its URL, closed afterwards."""
    pytest.importorskip("gradio")
    from ui.gradio_app import launch

    port = free_port()
    demo = launch(settings, host="127.0.0.1", port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        demo.close()


@pytest.fixture
def app_url(seed_settings: Settings) -> Iterator[str]:
    """The app over the seed index."""
    yield from served(seed_settings)


def ask_in_browser(page, question: str, turn: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Type ``question``, press Enter, wait for the answer's sources panel; returns timings in ms."""
    page.evaluate(OBSERVER, turn)
    box = page.locator("#la-input textarea")
    box.click()
    box.type(question)
    box.press("Enter")
    page.wait_for_selector(f'#la-sources .la-sources[data-turn="{turn}"]', timeout=120_000)
    page.wait_for_function("() => window.__la.first !== null && window.__la.done !== null", timeout=30_000)
    la = page.evaluate("() => window.__la")
    return {"first": la["first"] - la["t0"], "done": la["done"] - la["t0"]}


def test_ask_in_chromium(app_url: str, seed_settings: Settings, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    expected = ask(QUESTION, k=seed_settings.retrieval.k, settings=seed_settings)
    assert isinstance(expected, Answer) and expected.citations
    first_title = expected.citations[0].title
    ARTIFACTS.mkdir(exist_ok=True)
    external: list[str] = []

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.on("request", lambda r: None if r.url.startswith(
                ("http://127.0.0.1", "data:", "blob:")) else external.append(r.url))
            page.goto(app_url)
            page.wait_for_selector("#la-input textarea", timeout=60_000)
            assert "414 papers indexed" in page.inner_text("#la-status")
            assert "Which papers" in page.inner_text("#la-chat")  # example questions on the start screen

            ms = ask_in_browser(page, QUESTION, turn=1)
            print(f"\nbrowser: submit -> first streamed token {ms['first']:.0f} ms, "
                  f"submit -> complete answer {ms['done']:.0f} ms")
            bot = page.locator('#la-chat [data-testid="bot"]').last
            assert "[1]" in bot.inner_text()
            assert bot.locator(".la-refusal-msg, .la-error-msg").count() == 0
            panel = page.locator("#la-sources")
            first = panel.locator('li[data-n="1"]')
            assert "[1]" in first.locator(".la-num").inner_text()
            assert " ".join(first.locator(".la-title").inner_text().split()) == f"[1] {' '.join(first_title.split())}"
            assert first.locator(".la-excerpt mark").is_visible()
            answer_bg = bot.evaluate("(el) => getComputedStyle(el.querySelector('.message-content')).backgroundColor")
            page.wait_for_timeout(500)  # let the chat finish rendering (and auto-scrolling) the final text
            bot.evaluate(SCROLL_TO_TOP)  # show the answer's first lines, [1] included
            page.wait_for_timeout(200)
            shot = ARTIFACTS / "ui_browser_answer.png"
            page.screenshot(path=str(shot))
            print(f"screenshot: {shot}")

            with page.expect_download() as download:
                page.click("#la-bib")
            bib = tmp_path / "export.bib"
            download.value.save_as(bib)
            text = bib.read_text()
            assert text.count("@misc{") == len(expected.citations)
            assert re.search(r"title = \{\{" + re.escape(first_title.split(":")[0][:30]), text)

            ms = ask_in_browser(page, OFF_TOPIC, turn=2)
            print(f"browser (refusal): first text {ms['first']:.0f} ms, complete {ms['done']:.0f} ms")
            refusal = page.locator('#la-chat [data-testid="bot"]').last.locator(".la-refusal-msg")
            assert refusal.is_visible()
            refusal_bg = refusal.evaluate("(el) => getComputedStyle(el).backgroundColor")
            assert refusal_bg != answer_bg, "a refusal must not look like an answer"
            assert page.locator("#la-sources .la-refusal .la-notice").is_visible()
            assert page.locator("#la-sources li.la-closest").count() >= 1
            page.screenshot(path=str(ARTIFACTS / "ui_browser_refusal.png"))

            page.click("#la-clear")
            page.wait_for_selector('#la-sources .la-sources[data-turn="0"]')
            assert page.locator('#la-chat [data-testid="bot"]').count() == 0
        finally:
            browser.close()
    assert external == [], f"the page fetched from outside 127.0.0.1: {external}"
