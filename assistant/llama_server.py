"""A llama.cpp server (the prebuilt ``xllamacpp`` wheel) serving one GGUF model on 127.0.0.1.

:class:`LlamaServer` runs it in a child process (``python -m assistant.llama_server``) on a free port,
waits for ``/health``, and stops it by PID at exit (or when the parent dies: the child gets SIGTERM).
The server speaks the OpenAI chat API (``/v1/chat/completions``, streaming, usage), so every request
goes through the one OpenAI-compatible client (:mod:`assistant.endpoint`). :func:`serve` runs the same
server in the foreground (``litassist llm serve``).

llama.cpp uses OpenMP: ``OMP_WAIT_POLICY=passive`` is set for the server (spinning worker threads
slow generation ~5x when another process is busy on a small machine).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.errors import BackendError, ConfigError, MissingExtraError

if TYPE_CHECKING:
    from assistant.settings import Settings

HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 180.0


def threads(settings: Settings) -> int:
    """``llm.n_threads``, or every core when 0."""
    return settings.llm.n_threads or os.cpu_count() or 1


def model_path(settings: Settings) -> Path:
    """``llm.gguf_path`` when set, else ``llm.local_model`` assembled into ``<cache dir>/models``."""
    if settings.llm.gguf_path:
        path = Path(settings.llm.gguf_path).expanduser()
        if not path.is_file():
            raise ConfigError(f"llm.gguf_path: {path} is not a file")
        return path
    from assistant.gguf import MODELS, assemble_with_bar

    return assemble_with_bar(MODELS[settings.llm.local_model], settings.cache_path() / "models")


def require_xllamacpp() -> None:
    """A MissingExtraError naming the ``local`` extra when xllamacpp is not installed."""
    import importlib.util

    if importlib.util.find_spec("xllamacpp") is None:
        raise MissingExtraError("xllamacpp (the llama.cpp server)", "local")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child before exec (Linux): SIGTERM when the parent dies
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class LlamaServer:
    """One llama.cpp server child process for ``model`` (started by :meth:`start`, stopped by :meth:`stop`)."""

    def __init__(
        self, model: Path, *, n_ctx: int, n_threads: int, port: int | None = None, log: Path | None = None
    ) -> None:
        self.model, self.n_ctx, self.n_threads = model, n_ctx, n_threads
        self.port = port
        self.log = log or model.with_name("llama-server.log")
        self.process: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The OpenAI-compatible base URL (``http://127.0.0.1:<port>/v1``)."""
        return f"http://{HOST}:{self.port}/v1"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def start(self, timeout: float = STARTUP_TIMEOUT_S) -> str:
        """Start the server (once) and wait until it is healthy; returns :attr:`url`."""
        with self._lock:
            if self.process is not None and self.process.poll() is None:
                return self.url
            require_xllamacpp()
            self.port = self.port or free_port()
            cmd = [
                sys.executable, "-m", "assistant.llama_server", str(self.model),
                "--port", str(self.port), "--ctx", str(self.n_ctx), "--threads", str(self.n_threads),
            ]
            env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
            self.log.parent.mkdir(parents=True, exist_ok=True)
            with self.log.open("wb") as log:
                self.process = subprocess.Popen(
                    cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None,
                )
            atexit.register(self.stop)
            self._wait_healthy(timeout)
            return self.url

    def _wait_healthy(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        assert self.process is not None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BackendError(
                    f"local backend: the llama.cpp server for {self.model} exited with code "
                    f"{self.process.returncode} ({self._last_log_line()}; log: {self.log})"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://{HOST}:{self.port}/health", timeout=2.0).status_code == 200:
                    return
            time.sleep(0.25)
        self.stop()
        raise BackendError(
            f"local backend: the llama.cpp server for {self.model} was not ready after {timeout:g}s (log: {self.log})"
        )

    def _last_log_line(self) -> str:
        with contextlib.suppress(OSError):
            lines = [ln for ln in self.log.read_text(errors="replace").splitlines() if ln.strip()]
            if lines:
                return lines[-1].strip()[:200]
        return "no output"

    def stop(self) -> None:
        """Stop the server by PID (SIGTERM, then SIGKILL after 5 s)."""
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> LlamaServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve(model: Path, *, port: int, n_ctx: int, n_threads: int, host: str = HOST) -> None:
    """Run the llama.cpp server in this process until SIGINT/SIGTERM."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")  # read by OpenMP when xllamacpp loads
    require_xllamacpp()
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.hostnames = [host]
    params.port = port
    params.use_jinja = True
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    server = xllamacpp.Server(params)
    print(f"llama.cpp server for {model} on {server.listening_address}/v1", flush=True)
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    del server


def main(argv: list[str] | None = None) -> None:
    """``python -m assistant.llama_server MODEL --port P --ctx N --threads T`` (the child process)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("model", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ctx", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args(argv)
    serve(args.model, port=args.port, n_ctx=args.ctx, n_threads=args.threads)


if __name__ == "__main__":
    main()
