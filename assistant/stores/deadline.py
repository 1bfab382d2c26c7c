"""Bounded waits on the Chroma server: a server that accepts connections but never answers must fail
within ``store.timeout`` with a message naming it, not hang ``stats``, ``ask`` or ``ingest`` forever
(chromadb's HttpClient uses an httpx session without any timeout)."""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from assistant.errors import BackendError

if TYPE_CHECKING:
    from assistant.settings import StoreSettings


def probe(store: StoreSettings) -> None:
    """Ask the server's heartbeat once, within ``store.timeout`` in all; raise a one-line error if not."""
    import httpx

    scheme = "https" if store.chroma_ssl else "http"
    url = f"{scheme}://{store.chroma_host}:{store.chroma_port}/api/v2/heartbeat"
    t0 = time.monotonic()
    try:
        with httpx.Client(timeout=httpx.Timeout(store.timeout)) as client, client.stream("GET", url) as resp:
            for _ in resp.iter_bytes():
                if time.monotonic() - t0 > store.timeout:
                    raise httpx.ReadTimeout("overall deadline passed")
    except httpx.TimeoutException:
        raise BackendError(
            f"the Chroma server at {store.chroma_host}:{store.chroma_port} did not answer within "
            f"{store.timeout:g}s (waited {time.monotonic() - t0:.1f}s; store.timeout)"
        ) from None
    except httpx.HTTPError as err:
        raise BackendError(
            f"cannot reach the Chroma server at {store.chroma_host}:{store.chroma_port} "
            f"({type(err).__name__}: {err}; waited {time.monotonic() - t0:.1f}s)"
        ) from None


def bound(client: Any, store: StoreSettings) -> Any:
    """Give the client's HTTP session a timeout (every later request is bounded too)."""
    import httpx

    with contextlib.suppress(Exception):  # chromadb internals: best effort, the probe already ran
        client._server._session.timeout = httpx.Timeout(store.timeout)
    return client
