"""``litassist ui``: a Gradio chat over the indexed papers, with a sources panel beside it.

Thin by design: every answer comes from :func:`assistant.answering.ask` (streaming); this module
only turns the stream, the final :class:`~assistant.models.Answer` and any
:class:`~assistant.errors.LitassistError` into chat messages, the sources panel and a BibTeX file.
The callbacks live on :class:`ChatApp` so tests can call them without a browser or a server.
"""

from __future__ import annotations

import hashlib
import html
import logging
import math
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.offline import ensure_offline

# before gradio (and huggingface_hub, which reads it at import) is imported: stay offline
ensure_offline()

import gradio as gr  # noqa: E402

from assistant.answering import AnswerStream, ask, get_assistant  # noqa: E402
from assistant.backends import Turn, available_backends  # noqa: E402
from assistant.errors import ConfigError, FilterError, IndexMissingError, LitassistError  # noqa: E402
from assistant.models import MAX_K, Answer, Filters, Paper  # noqa: E402
from assistant.settings import Settings  # noqa: E402
from assistant.text import terminal_safe  # noqa: E402
from ui.gradio_render import bibtex, chat_markdown, example_questions, sources_html, status_html  # noqa: E402

log = logging.getLogger(__name__)

PENDING = "_Searching the papers…_"
MAX_HISTORY = 12  # messages of earlier conversation handed to ask()
SYSTEM_FONTS = ["system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Arial", "sans-serif"]
MONO_FONTS = ["ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace"]

CSS = """
#la-sources .la-sources { max-height: 78vh; overflow-y: auto; padding: 4px 8px; font-size: 14px; line-height: 1.45; }
#la-sources .la-head { font-weight: 600; margin-bottom: 6px; }
#la-sources ol.la-list, #la-sources ol.la-retrieved { padding-left: 0; list-style: none; margin: 0; }
#la-sources li.la-cited, #la-sources li.la-closest, #la-sources li.la-retrieved-item {
  border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 10px; margin: 0 0 8px 0; }
#la-sources .la-title { font-weight: 600; }
#la-sources .la-num { color: var(--color-accent); margin-right: 2px; }
#la-sources .la-meta { color: var(--body-text-color-subdued); font-size: 12px; margin: 2px 0 4px 0; }
#la-sources .la-abstract, #la-sources .la-excerpt { margin: 4px 0 0 0; }
#la-sources details.la-full > summary { cursor: pointer; font-size: 12px; color: var(--body-text-color-subdued); }
#la-sources mark { background: #fde68a; color: #111827; padding: 0 2px; border-radius: 3px; }
#la-sources .la-refusal .la-notice, .la-refusal-msg {
  background: #fff7ed; color: #7c2d12; border-left: 4px solid #f97316; padding: 8px 10px; border-radius: 6px; }
#la-sources .la-refusal li.la-closest { border-style: dashed; }
#la-sources .la-filters { font-weight: 400; color: var(--body-text-color-subdued); margin-left: 6px; }
#la-sources details.la-more > summary { cursor: pointer; margin: 6px 0; }
.la-error-msg { background: #fef2f2; color: #7f1d1d; border-left: 4px solid #dc2626; padding: 8px 10px;
  border-radius: 6px; }
.la-status { font-size: 13px; color: var(--body-text-color-subdued); }
.la-status-missing { background: #fff7ed; color: #7c2d12; padding: 8px 10px; border-radius: 6px; font-size: 14px; }
"""


@dataclass
class ChatState:
    """Per-session conversation: plain-text turns for ``ask(history=…)`` and the latest answer."""

    history: list[Turn] = field(default_factory=list)
    answer: Answer | None = None
    turn: int = 0


ANY_YEAR = "any"


YEARS = (1000, 9999)  # a year box or the API takes a four-digit year (0 or empty: no bound)


def _whole(value: Any) -> float | None:
    """``value`` (a number box, a slider, the API) as a finite whole number, else None (True is not 1)."""
    try:
        number = math.nan if isinstance(value, bool) else float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and number.is_integer() else None


def _year(value: Any, name: str) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", ANY_YEAR)):
        return None
    number = _whole(value)
    if number is None:
        raise FilterError(f"{name}: {value!r} is not a year (a whole number)")
    if number and not YEARS[0] <= number <= YEARS[1]:
        raise FilterError(f"{name}: {value!r} is not a year from {YEARS[0]} to {YEARS[1]}")
    return int(number) or None  # 0 is what an emptied number box sends: no bound


def papers_k(value: Any) -> int | None:
    """The number of papers from the k slider or the API: ``None`` (or an empty box) for the default,
    else a whole number from 1 to ``MAX_K``; anything else (0, 3.5, NaN, inf, text) is a :class:`FilterError`."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    number = _whole(value)
    if number is None or not 1 <= number <= MAX_K:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
        raise FilterError(f"k: expected a whole number of papers from 1 to {MAX_K}, got {shown}")
    return int(number)


def make_filters(since: Any, until: Any) -> Filters:
    """The year filter from the two year boxes (empty box = no bound); ``ask`` checks since ≤ until."""
    return Filters(since=_year(since, "since"), until=_year(until, "until"))


def message_text(content: Any) -> str:
    """Plain text of a Chatbot message's content (a string or Gradio's list of content parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text") or content.get("content") or "")
    if isinstance(content, list):
        return "\n".join(message_text(part) for part in content if part)
    return ""


def _inline(text: str) -> str:
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(terminal_safe(text)))


def _markdown_to_html(text: str) -> str:
    """Escaped ``text``, '- ' lines as a list, `code` as code (refusals and errors are our own HTML)."""
    out, items = [], []
    for line in text.splitlines():
        if line.startswith("- "):
            items.append(f"<li>{_inline(line[2:])}</li>")
            continue
        if items:
            out.append(f"<ul>{''.join(items)}</ul>")
            items = []
        if line.strip():
            out.append(f"<p>{_inline(line)}</p>")
    if items:
        out.append(f"<ul>{''.join(items)}</ul>")
    return "".join(out)


def answer_message(answer: Answer) -> dict[str, str]:
    """The chat message for a final answer; refusals carry the ``la-refusal-msg`` style."""
    if answer.refused:
        return {"role": "assistant", "content": f'<div class="la-refusal-msg">{_markdown_to_html(answer.text)}</div>'}
    return {"role": "assistant", "content": chat_markdown(answer.text)}


def error_message(err: Exception) -> dict[str, str]:
    """A chat message for an error: its one-line message, never a traceback."""
    if isinstance(err, LitassistError):
        lead = "No papers are indexed yet: " if isinstance(err, IndexMissingError) else "⚠ "
        line = lead + str(err)
    else:  # a bug: the traceback goes to the server log, the chat gets one line
        line = f"⚠ Internal error (details in the server log): {type(err).__name__}: {' '.join(str(err).split())}"
    return {"role": "assistant", "content": f'<div class="la-error-msg">{_markdown_to_html(line)}</div>'}


class ChatApp:
    """The UI's callbacks, bound to one :class:`Settings` (built once at the edge)."""

    def __init__(self, settings: Settings, *, bib_dir: Path | None = None) -> None:
        self.settings = settings
        self.backends = available_backends(settings)
        default = settings.llm_backend()
        self.default_backend = default if default in self.backends else self.backends[0]
        self.bib_dir = bib_dir or Path(tempfile.gettempdir()) / "litassist-bib"

    # --- index ----------------------------------------------------------------------------------
    def _papers(self) -> Mapping[str, Paper]:
        try:
            index = get_assistant(self.settings).index
            index.refresh()  # another process may have ingested since
            return index.papers
        except LitassistError:
            return {}

    def status(self, backend: str | None = None) -> str:
        """The index status line (or the empty-index notice with the command to run)."""
        backend = backend or self.default_backend
        try:
            return status_html(get_assistant(self.settings).index.stats(), backend)
        except IndexMissingError as err:
            return status_html(None, backend, error=str(err))
        except LitassistError as err:  # e.g. the embedding backend is misconfigured
            return f'<div class="la-status la-status-missing">{html.escape(terminal_safe(str(err)))}</div>'

    def years(self) -> list[str]:
        """Choices of the year boxes: 'any', then the years the indexed listings give."""
        return [ANY_YEAR, *(str(y) for y in sorted({p.year for p in self._papers().values() if p.year}))]

    def examples(self, n: int = 4) -> list[str]:
        """Example questions drawn from the indexed titles (none when the index is empty)."""
        return example_questions((p.title for p in self._papers().values()), n)

    def refresh(self, backend: str | None = None) -> tuple[Any, ...]:
        """On page load: status line, example questions and year choices from the index as it is now."""
        years = self.years()
        return (
            self.status(backend),
            gr.update(examples=[{"text": q} for q in self.examples()]),
            gr.update(choices=years),
            gr.update(choices=years),
        )

    # --- chat -----------------------------------------------------------------------------------
    def submit(
        self, message: str, chat: list[dict[str, Any]] | None, state: ChatState | None,
        since: Any = None, until: Any = None, k: Any = None, backend: str | None = None,
    ) -> Iterator[tuple[Any, ...]]:
        """Answer ``message``: yields (chat, sources HTML, BibTeX button, state, input box) updates.

        The first yields stream the answer text as ``ask(stream=True)`` produces it; the last
        replaces it with the checked answer and fills the sources panel and the BibTeX export.
        """
        chat = [dict(m) for m in chat or []]
        state = state or ChatState()
        question = (message or "").strip()
        if not question:
            yield list(chat), gr.skip(), gr.skip(), state, ""
            return
        chat += [{"role": "user", "content": question}, {"role": "assistant", "content": PENDING}]
        yield list(chat), gr.skip(), gr.skip(), state, ""
        try:
            stream = ask(
                question, k=papers_k(k), filters=make_filters(since, until),
                backend=backend or self.default_backend, history=state.history[-MAX_HISTORY:], stream=True,
                settings=self.settings,
            )
            assert isinstance(stream, AnswerStream)
            text = ""
            for delta in stream:
                text += delta
                chat[-1] = {"role": "assistant", "content": chat_markdown(text)}
                yield list(chat), gr.skip(), gr.skip(), state, ""
            answer = stream.result()
        except LitassistError as err:
            chat[-1] = error_message(err)
            yield list(chat), gr.skip(), gr.skip(), state, ""
            return
        except Exception as err:  # not a user error: log it, but never leave the chat hanging
            log.exception("answering %r failed", question)
            chat[-1] = error_message(err)
            yield list(chat), gr.skip(), gr.skip(), state, ""
            return
        turn = state.turn + 1
        history = [*state.history, {"role": "user", "content": question}, answer.as_turn()]
        state = ChatState(history=history, answer=answer, turn=turn)
        chat[-1] = answer_message(answer)
        panel = sources_html(answer, self._papers(), turn=turn)
        yield list(chat), panel, self.bib_button(answer), state, ""

    def bib_button(self, answer: Answer | None) -> Any:
        """DownloadButton update: the .bib of the answer's cited papers, or disabled when none."""
        if answer is None or not answer.citations:
            return gr.update(value=None, interactive=False, label="Export BibTeX")
        path = self.write_bibtex(answer)
        return gr.update(value=str(path), interactive=True, label=f"Export BibTeX ({len(answer.citations)})")

    def write_bibtex(self, answer: Answer) -> Path:
        """Write the answer's cited papers as BibTeX; returns the file (named by its content)."""
        papers = {**self._papers(), **{h.paper.id: h.paper for h in answer.contexts}}
        text = bibtex(answer.citations, papers)
        folder = self.bib_dir / hashlib.sha1(text.encode()).hexdigest()[:16]
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "litassist-citations.bib"
        path.write_text(text, encoding="utf-8")
        return path

    def clear(self) -> tuple[Any, ...]:
        """Empty chat, panel, export and conversation (the filter controls keep their values)."""
        return [], sources_html(None), self.bib_button(None), ChatState(), ""

    def api_ask(
        self, question: str, since: float | None = None, until: float | None = None, k: float | None = None,
        backend: str | None = None,
    ) -> dict[str, Any]:
        """The ``/ask`` API: one question, no conversation; the Answer as a dict, or ``{"error": …}``."""
        try:
            stream = ask(
                question, k=papers_k(k), filters=make_filters(since, until),
                backend=backend or self.default_backend, stream=True, settings=self.settings,
            )
            assert isinstance(stream, AnswerStream)
            return stream.result().to_dict()
        except LitassistError as err:
            return {"error": str(err), "kind": type(err).__name__}

    # --- layout ---------------------------------------------------------------------------------
    def build(self) -> Any:
        """The gr.Blocks app (not launched)."""
        with gr.Blocks(title="litassist", analytics_enabled=False) as demo:
            state = gr.State(ChatState())
            status = gr.HTML(self.status(), elem_id="la-status")
            with gr.Row(equal_height=False):
                with gr.Column(scale=3, min_width=420):
                    chatbot = gr.Chatbot(
                        label="Chat", show_label=False, elem_id="la-chat", height=520, buttons=["copy"],
                        examples=[{"text": q} for q in self.examples()], feedback_options=None,
                        placeholder="Ask about the indexed papers. Answers cite them as [n].",
                    )
                    with gr.Row():
                        box = gr.Textbox(
                            placeholder="Ask a question about the indexed papers…", label="Question", show_label=False,
                            scale=6, elem_id="la-input", lines=1, max_lines=4,
                        )
                        send = gr.Button("Ask", variant="primary", scale=1, min_width=80, elem_id="la-send")
                    with gr.Row():
                        years = self.years()
                        since = gr.Dropdown(years, value=ANY_YEAR, label="Since (year)", elem_id="la-since",
                                            allow_custom_value=True, min_width=110)
                        until = gr.Dropdown(years, value=ANY_YEAR, label="Until (year)", elem_id="la-until",
                                            allow_custom_value=True, min_width=110)
                        k = gr.Slider(1, 30, value=self.settings.retrieval.k, step=1, label="Papers (k)",
                                      elem_id="la-k", min_width=160)
                        backend = gr.Dropdown(self.backends, value=self.default_backend, label="Backend",
                                              elem_id="la-backend", min_width=120)
                    with gr.Row():
                        bib = gr.DownloadButton("Export BibTeX", interactive=False, elem_id="la-bib", size="md")
                        clear = gr.Button("Clear chat", elem_id="la-clear", size="md")
                with gr.Column(scale=2, min_width=320):
                    sources = gr.HTML(sources_html(None), label="Sources", elem_id="la-sources", js_on_load=None)
            inputs = [box, chatbot, state, since, until, k, backend]
            outputs = [chatbot, sources, bib, state, box]
            answering: dict[str, Any] = {  # one answer queue, serving ui.concurrency questions at once
                "show_progress": "hidden", "concurrency_id": "ask", "concurrency_limit": self.settings.ui.concurrency,
            }
            box.submit(self.submit, inputs, outputs, api_name="chat", **answering)
            send.click(self.submit, inputs, outputs, api_visibility="private", **answering)
            chatbot.example_select(_picked, None, box, api_visibility="private").then(
                self.submit, inputs, outputs, api_visibility="private", **answering
            )
            clear.click(self.clear, None, outputs, api_visibility="private")
            backend.change(self.status, backend, status, api_visibility="private")
            demo.load(self.refresh, backend, [status, chatbot, since, until], api_visibility="private")
            gr.api(self.api_ask, api_name="ask", concurrency_id="ask", concurrency_limit=self.settings.ui.concurrency)
        return demo


def _picked(evt: gr.SelectData) -> str:
    """The text of the example question the user clicked."""
    return message_text(evt.value)


def theme() -> Any:
    """A Gradio theme with system fonts only (nothing fetched from a font CDN)."""
    return gr.themes.Soft(font=SYSTEM_FONTS, font_mono=MONO_FONTS)


def launch(
    settings: Settings, *, host: str | None = None, port: int | None = None, prevent_thread_lock: bool = False,
    quiet: bool = False,
) -> Any:
    """Build and serve the app on ``host:port`` (default 127.0.0.1:7860); returns the gr.Blocks.

    Basic auth is on when ``ui.username`` and ``ui.password`` are both set. Analytics, share links,
    SSR and the MCP server are off, and the theme uses system fonts, so nothing leaves the machine.
    """
    user, password = settings.ui.username, settings.ui.password
    if bool(user) != bool(password and password.get_secret_value()):
        raise ConfigError("ui.username and ui.password must be set together (LITASSIST_UI__USERNAME/PASSWORD)")
    auth = (user, password.get_secret_value()) if user and password else None
    demo = ChatApp(settings).build()
    demo.queue()
    demo.launch(
        server_name=host or settings.ui.host, server_port=port or settings.ui.port, auth=auth, share=False,
        ssr_mode=False, mcp_server=False, pwa=False, show_error=False, quiet=quiet, theme=theme(), css=CSS,
        footer_links=["api"], prevent_thread_lock=prevent_thread_lock, inbrowser=False,
    )
    return demo
