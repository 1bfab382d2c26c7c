"""The Slack bot: one slack-bolt ``App`` answering mentions, DMs and ``/litassist`` in the question's thread
(follow-ups get the thread as history, and the thread's latest inline filters unless they type their own),
run in Socket Mode (``litassist slack --socket``) or as an Events API HTTP server (``--http``,
``slack.host:slack.port/slack/events``). See "Run the Slack bot" in README.md."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from assistant.errors import ConfigError, LitassistError, redact
from assistant.models import Answer
from assistant.settings import Settings
from ui import slack_blocks as sb
from ui.slack_blocks import Block, Query, escape
from ui.slack_http import EVENTS_PATH, RecentKeys, make_http_server

AskFn = Callable[..., Answer]

SLACK_API = "https://slack.com/api/"
COMMAND = "/litassist"
SEARCHING = ":mag: Searching the papers…"
HISTORY_TURNS = 12
METADATA_EVENT = "litassist_answer"  # message metadata on an answer: the ids of the papers it cited
NOTICES = (":mag:", ":warning:", ":hourglass:", ":wave:")  # bot messages that are not answers
HELP = (
    ":wave: Ask me about the indexed ML papers, e.g. `Which papers reduce catastrophic forgetting with LoRA?`\n"
    "Optional filters anywhere in the question: `since:2024` `until:2025` `source:003` `k:5`."
)

log = logging.getLogger("litassist.slack")


class SecretFilter(logging.Filter):
    """Masks the configured Slack secrets (and anything shaped like a Slack token) in log records."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.redact(record.getMessage()), ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        return True


class RateLimiter:
    """At most ``limit`` questions per key in any ``window_s`` seconds (sliding window)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.window_s, self.clock = limit, window_s, clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Record a question from ``key``; False when it is over the limit (not recorded then)."""
        now = self.clock()
        with self._lock:
            times = self._seen.setdefault(key, deque())
            while times and now - times[0] >= self.window_s:
                times.popleft()
            if len(times) >= self.limit:
                return False
            times.append(now)
            return True


def _ack(ack: Callable[[], Any]) -> None:
    ack()


def _filtered_question(text: str) -> Query | None:
    """``text`` parsed, when it is a question that typed inline filters (a bad filter was not answered)."""
    try:
        query = sb.parse_question(text)
    except LitassistError:
        return None
    return query if query.question and query.explicit() else None


def carry_filters(query: Query, earlier: Query | None) -> Query:
    """A thread follow-up keeps the filters of the thread's latest filtered question (``earlier``) unless
    it types its own, which then replace them all (``k`` included)."""
    if earlier is None or query.explicit():
        return query
    return Query(query.question, dict(earlier.filters), earlier.k, carried=True)


def _default_ask(settings: Settings) -> AskFn:
    def ask_papers(question: str, **kwargs: Any) -> Answer:
        from assistant.answering import ask

        answer = ask(question, settings=settings, **kwargs)
        assert isinstance(answer, Answer)
        return answer

    return ask_papers


class SlackBot:
    """The listeners behind the app; ``ask`` defaults to :func:`assistant.answering.ask` on ``settings``."""

    def __init__(self, settings: Settings, ask: AskFn | None = None) -> None:
        self.settings = settings
        self.ask = ask or _default_ask(settings)
        self.limiter = RateLimiter(settings.slack.rate_limit, settings.slack.rate_window_s)
        self.events, self.messages = RecentKeys(), RecentKeys()
        self._answering = threading.Lock()  # one answer at a time: the index and backends are shared
        self._pending: dict[str, Query] = {}  # slash commands acknowledged, answer to follow (by trigger_id)

    def register(self, app: App) -> None:
        """Listeners ack at once (in the request thread) and do the work lazily on the listener executor."""
        app.event("app_mention")(ack=_ack, lazy=[self.on_mention])
        app.event("message")(ack=_ack, lazy=[self.on_message])
        app.command(COMMAND)(ack=self.ack_command, lazy=[self.answer_command])

    # --- middleware and listeners ----------------------------------------------------------
    def dedupe(self, body: dict[str, Any], next: Callable[[], BoltResponse]) -> BoltResponse | None:
        """Acknowledge a redelivered event (Slack retries with ``X-Slack-Retry-Num``) without reprocessing."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if event_id and not self.events.add(str(event_id)):
            log.info("duplicate delivery of event %s acknowledged, not processed", event_id)
            return BoltResponse(status=200, body="")
        return next()

    def on_mention(self, event: dict[str, Any], context: Any, client: WebClient) -> None:
        self._on_question(event, context, client)  # channels and group DMs

    def on_message(self, event: dict[str, Any], context: Any, client: WebClient) -> None:
        """Direct messages only; edits, bot messages and channel chatter are ignored."""
        if event.get("channel_type") == "im" and not event.get("subtype") and not event.get("bot_id"):
            self._on_question(event, context, client)

    def ack_command(self, ack: Callable[..., None], command: dict[str, Any]) -> None:
        """``/litassist QUESTION``, within Slack's 3 seconds: an ephemeral "searching" (or why not)."""
        try:
            query = sb.parse_question(sb.unescape(command.get("text", "")))
        except LitassistError as err:
            ack(text=f":warning: {escape(str(err))}", response_type="ephemeral")
            return
        if not query.question:
            ack(text=HELP, response_type="ephemeral")
            return
        if not self.limiter.allow(f"{command.get('team_id')}:{command.get('user_id')}"):
            ack(text=self._rate_message(), response_type="ephemeral")
            return
        log.info("/litassist from %s in %s", command.get("user_id"), command.get("channel_id"))
        self._pending[str(command.get("trigger_id"))] = query
        ack(text=f"{SEARCHING} _{escape(query.question)}_", response_type="ephemeral")

    def answer_command(self, command: dict[str, Any], respond: Callable[..., Any]) -> None:
        """The lazy half of ``/litassist``: the answer, in the channel, via ``response_url``."""
        query = self._pending.pop(str(command.get("trigger_id")), None)
        if query is None:
            return  # acknowledged with an error, help or rate-limit notice
        text, blocks = self.answer(query, None)
        try:
            resp = respond(text=text, blocks=blocks, response_type="in_channel", replace_original=False)
            if getattr(resp, "status_code", 200) != 200:
                log.error("response_url refused the answer: HTTP %s", resp.status_code)
        except Exception:
            log.exception("could not send the /litassist answer")

    # --- the work --------------------------------------------------------------------------
    def _on_question(self, event: dict[str, Any], context: Any, client: WebClient) -> None:
        channel, ts = event.get("channel"), event.get("ts")
        if not channel or not ts or not event.get("user") or not self.messages.add(f"{channel}:{ts}"):
            return  # incomplete, or the same message seen as both app_mention and message.im
        thread_ts = event.get("thread_ts") or ts
        bot_user = context.get("bot_user_id")
        try:
            self._reply(client, event, channel, thread_ts, bot_user, context.get("bot_id"))
        except Exception:  # a Slack API failure: nothing more can be said in the thread
            log.exception("could not answer message %s in %s", ts, channel)

    def _reply(
        self, client: WebClient, event: dict[str, Any], channel: str, thread_ts: str, bot_user: str | None,
        bot_id: str | None,
    ) -> None:
        def post(text: str, blocks: list[Block] | None = None) -> str:
            """Post in the thread; returns the new message's ts."""
            return str(client.chat_postMessage(channel=channel, thread_ts=thread_ts, text=text, blocks=blocks)["ts"])

        try:
            query = sb.parse_question(sb.unescape(sb.strip_mentions(event.get("text", ""), bot_user)))
        except LitassistError as err:
            post(*sb.notice(f":warning: {escape(str(err))}"))
            return
        if not query.question:
            post(*sb.notice(HELP))
            return
        if not self.limiter.allow(f"{event.get('team')}:{event['user']}"):
            post(*sb.notice(self._rate_message()))
            return
        log.info("question from %s in %s (thread %s)", event["user"], channel, thread_ts)
        placeholder = post(SEARCHING)
        history = None
        if event.get("thread_ts") and event["thread_ts"] != event["ts"]:
            # in a channel the thread also holds talk not addressed to the bot ("thanks!", "@alice look"):
            # only its root and the messages that mention the bot are turns (in a DM every message is)
            history, earlier = self.thread(client, channel, event["thread_ts"], event["ts"], bot_user, bot_id,
                                           addressed_only=event.get("channel_type") != "im")
            query = carry_filters(query, earlier)
        text, blocks, metadata = self.reply(query, history)
        try:
            client.chat_update(channel=channel, ts=placeholder, text=text, blocks=blocks, metadata=metadata)
        except SlackApiError as err:
            log.warning("chat.update failed (%s); posting the answer instead", err.response.get("error"))
            post(text, blocks)

    def history(
        self, client: WebClient, channel: str, thread_ts: str, before_ts: str, bot_user: str | None,
        bot_id: str | None,
    ) -> list[dict[str, Any]]:
        """The thread's turns before ``before_ts`` as ``[{"role", "content"}]`` (bot messages → assistant)."""
        return self.thread(client, channel, thread_ts, before_ts, bot_user, bot_id)[0]

    def thread(
        self, client: WebClient, channel: str, thread_ts: str, before_ts: str, bot_user: str | None,
        bot_id: str | None, *, addressed_only: bool = False,
    ) -> tuple[list[dict[str, Any]], Query | None]:
        """The thread before ``before_ts``: its turns (see :meth:`history`) and the latest question in it
        that typed inline filters (None when none did), whose filters a follow-up carries on. With
        ``addressed_only`` (a channel thread), a user's message counts only when it is the thread's root
        or mentions the bot."""
        try:
            messages = client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, include_all_metadata=True
            ).get("messages") or []
        except SlackApiError as err:  # e.g. a missing *:history scope: answer without the history
            log.warning("conversations.replies failed (%s); answering without thread history",
                        err.response.get("error"))
            return [], None
        turns, filtered = [], None
        for msg in messages:
            if float(msg.get("ts", "0")) >= float(before_ts):
                continue
            mine = bool(bot_user and msg.get("user") == bot_user) or bool(bot_id and msg.get("bot_id") == bot_id)
            text = msg.get("text") or ""
            if mine and text.startswith(NOTICES):
                continue  # placeholders and notices are not turns
            if not mine and addressed_only and msg.get("ts") != thread_ts and not (bot_user and f"<@{bot_user}" in text):
                continue  # talk among the people in the thread, not a question to the bot
            if not mine:
                filtered = _filtered_question(sb.unescape(sb.strip_mentions(text, bot_user))) or filtered
            if mine:  # the whole answer: the plain-text fallback is cut at 3,000 characters, the sections are not
                text = _sections_text(msg.get("blocks")) or text
            content = sb.unescape(text if mine else sb.strip_filters(sb.strip_mentions(text, bot_user)))
            if content.strip():
                turn: dict[str, Any] = {"role": "assistant" if mine else "user", "content": content.strip()}
                meta = msg.get("metadata") if mine else None  # what the answer cited (see reply)
                if isinstance(meta, dict) and meta.get("event_type") == METADATA_EVENT:
                    turn.update(meta.get("event_payload") or {})
                turns.append(turn)
        return turns[-HISTORY_TURNS:], filtered

    def answer(self, query: Query, history: list[dict[str, Any]] | None) -> tuple[str, list[Block]]:
        """``(text, blocks)`` answering ``query``; errors become a polite notice (and a log line)."""
        text, blocks, _ = self.reply(query, history)
        return text, blocks

    def reply(
        self, query: Query, history: list[dict[str, Any]] | None
    ) -> tuple[str, list[Block], dict[str, Any] | None]:
        """:meth:`answer`, with the message metadata that keeps what the answer cited (read back by
        :meth:`thread`, so a follow-up about those papers needs no replay); None for a notice."""
        try:
            with self._answering:
                result = self.ask(query.question, k=query.k, filters=query.filters or None, history=history)
            note = query.describe()
            label = "Filters from earlier in this thread" if query.carried else "Filters"
            notes = [f"{label}: {escape(note)}"] if note else []
            got = result.filters  # a follow-up asked of, or past, the previous answer's papers
            if got.papers is not None:
                n = len(got.papers)  # the previous answer's, or an earlier one's when that was a refusal
                notes.append("Asked of the earlier paper" if n == 1 else f"Asked of the {n} earlier papers")
            if got.exclude:
                n = len(got.exclude)
                notes.append("Leaving out the paper already cited" if n == 1 else f"Leaving out the {n} papers already cited")
            text, blocks = sb.answer_blocks(result, note=" · ".join(notes) or None)
            turn = result.as_turn()  # what it cited, as Gradio and litassist chat keep it with the turn
            payload = {key: turn[key] for key in ("papers", "confidence")}
            return text, blocks, {"event_type": METADATA_EVENT, "event_payload": payload}
        except LitassistError as err:
            log.warning("question not answered: %s", err)
            return (*sb.notice(f":warning: {escape(str(err))}"), None)
        except Exception:
            ref = uuid.uuid4().hex[:8]
            log.exception("error while answering (ref %s)", ref)
            return (*sb.notice(f":warning: Sorry, something went wrong while answering. It was logged as `{ref}`."), None)

    def _rate_message(self) -> str:
        s = self.settings.slack
        many = "question" if s.rate_limit == 1 else f"{s.rate_limit} questions"
        return (f":hourglass: You have reached my limit of {many} per {s.rate_window_s} seconds. "
                "Please try again in a little while.")


def _sections_text(blocks: Any) -> str:
    """The text of a message's Block Kit sections (the answer, then its sources), one per line."""
    if not isinstance(blocks, list):
        return ""
    parts = [b["text"].get("text") for b in blocks
             if isinstance(b, dict) and b.get("type") == "section" and isinstance(b.get("text"), dict)]
    return "\n".join(p for p in parts if isinstance(p, str) and p.strip())


# --- app, servers, run ---------------------------------------------------------------------
def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None and value.get_secret_value() else None


def check_tokens(settings: Settings, mode: str) -> None:
    """Raise :class:`ConfigError` naming the missing variable for ``mode`` ('socket' or 'http')."""
    s = settings.slack
    bot, app_token = _secret(s.bot_token), _secret(s.app_token)
    if not bot:
        raise ConfigError("SLACK_BOT_TOKEN is not set (slack.bot_token): the bot token (xoxb-…) from "
                          "OAuth & Permissions of your Slack app")
    if bot.startswith("xapp-"):
        raise ConfigError("SLACK_BOT_TOKEN holds an app-level token (xapp-…); use the bot token (xoxb-…)")
    if mode == "socket" and not app_token:
        raise ConfigError("SLACK_APP_TOKEN is not set (slack.app_token): Socket Mode needs an app-level token "
                          "(xapp-…) with the connections:write scope; or run with --http")
    if mode == "socket" and app_token and not app_token.startswith("xapp-"):
        raise ConfigError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if mode == "http" and not _secret(s.signing_secret):
        raise ConfigError("SLACK_SIGNING_SECRET is not set (slack.signing_secret): HTTP mode needs the signing "
                          "secret from Basic Information; or run with --socket")
    if mode not in ("socket", "http"):
        raise ConfigError(f"slack.mode: expected 'socket' or 'http', got {mode!r}")


def create_app(
    settings: Settings, *, mode: str | None = None, ask: AskFn | None = None,
    listener_executor: Executor | None = None,
) -> App:
    """The Bolt app for ``mode`` (default ``settings.slack.mode``); Web API calls go to
    ``slack.api_base_url``. ``ask`` replaces :func:`assistant.answering.ask` (tests)."""
    mode = mode or settings.slack.mode
    check_tokens(settings, mode)
    s = settings.slack
    secrets = [_secret(s.bot_token), _secret(s.app_token), _secret(s.signing_secret)]
    known = [f for f in log.filters if isinstance(f, SecretFilter)] or [SecretFilter([])]
    known[0].secrets = sorted({*known[0].secrets, *(x for x in secrets if x)})
    log.addFilter(known[0])  # no-op when already there
    base_url = (s.api_base_url or SLACK_API).rstrip("/") + "/"
    bot = SlackBot(settings, ask)
    app = App(
        logger=log,
        client=WebClient(token=_secret(s.bot_token), base_url=base_url, logger=log),
        signing_secret=_secret(s.signing_secret) or "",
        token_verification_enabled=False,  # auth.test runs on the first request, through base_url
        process_before_response=True,  # ack functions answer Slack; the work runs in lazy listeners
        request_verification_enabled=mode == "http",
        before_authorize=bot.dedupe,
        listener_executor=listener_executor,
    )
    bot.register(app)
    return app


def socket_handler(app: App, settings: Settings) -> Any:
    """The Socket Mode handler for ``app`` (not yet connected; ``.start()`` / ``.connect()`` does that)."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, _secret(settings.slack.app_token), logger=log)


def run(settings: Settings, mode: str | None = None) -> None:
    """Start the bot in ``mode`` ('socket' or 'http'; default ``settings.slack.mode``) until interrupted."""
    mode = mode or settings.slack.mode
    app = create_app(settings, mode=mode)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if mode == "socket":
        log.info("litassist Slack bot connecting in Socket Mode")
        handler = socket_handler(app, settings)
        try:
            handler.start()
        except KeyboardInterrupt:
            handler.close()
        return
    server = make_http_server(app, settings.slack.host, settings.slack.port)
    host, port = server.server_address[:2]
    log.info("litassist Slack bot listening on http://%s:%s%s", host, port, EVENTS_PATH)
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
