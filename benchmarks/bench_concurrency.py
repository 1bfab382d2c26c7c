"""8 users at once on the Gradio app: time to first token and to the complete answer, per backend.

    python benchmarks/bench_concurrency.py [--users 8] [--corpus ../shared/corpus/hf-daily-papers]

The app is launched on 127.0.0.1 (a free port) over an index of the seed corpus (built in a temporary
data dir; embeddings come from LITASSIST_CACHE_DIR when set). Two backends:

- ``openai``: the loopback OpenAI stub (tests/openai_stub.py) answering in 2 s (1 s before the first
  token, then a token every 0.1 s): the question is whether users wait for each other;
- ``extractive``: no LLM; 8 answers at once against 8 lone answers (CPU-bound: the bound is the CPU's share).

Each user is a gradio_client session calling the chat endpoint; the table gives p50 / max over users.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO))

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
QUESTION = "Which papers reduce catastrophic forgetting with LoRA?"
ANSWER = "Low-rank adapters forget less than full fine-tuning [1]. " * 2


def one_user(url: str, backend: str, out: list[tuple[float, float]], start: threading.Barrier) -> None:
    from gradio_client import Client

    client = Client(url, verbose=False)
    start.wait()
    t0 = time.perf_counter()
    job = client.submit(QUESTION, [], None, None, 10, backend, api_name="/chat")
    first = None
    for update in job:
        chat = update[0] if isinstance(update, list | tuple) else None
        last = chat[-1] if chat else None
        text = str(last.get("content") if isinstance(last, dict) else last or "")
        if first is None and text and "Searching" not in text:
            first = time.perf_counter() - t0
    job.result()
    total = time.perf_counter() - t0
    out.append((first if first is not None else total, total))


def run_users(url: str, backend: str, users: int) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    barrier = threading.Barrier(users)
    threads = [threading.Thread(target=one_user, args=(url, backend, out, barrier)) for _ in range(users)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=8)
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus" / "hf-daily-papers")
    args = ap.parse_args()
    from openai_stub import OpenAIStub, Reply
    from pydantic import SecretStr

    from assistant.settings import LLMSettings, Settings
    from ingest.pipeline import ingest
    from ui.gradio_app import launch

    data = Path(tempfile.mkdtemp(prefix="bench-concurrency-"))
    cache = Path(os.environ.get("LITASSIST_CACHE_DIR") or data / "cache")
    with OpenAIStub() as stub:
        settings = Settings(
            data_dir=data, cache_dir=cache,
            llm=LLMSettings(base_url=stub.url, api_key=SecretStr("sk-bench"), model="stub-model", timeout=30),
        )
        report = ingest([args.corpus], settings)
        print(f"index: {report.total_papers} papers in {data}; {os.cpu_count()} CPUs; ui.concurrency={settings.ui.concurrency}")
        demo = launch(settings, host="127.0.0.1", port=_free_port(), prevent_thread_lock=True, quiet=True)
        url = demo.local_url
        try:
            rows: list[tuple[str, str, float, float, float, float]] = []
            for backend in ("openai", "extractive"):
                def script(n: int) -> None:
                    words = ANSWER.split(" ")
                    stub.script(*[Reply(chunks=[w + " " for w in words[:10]] + [" ".join(words[10:])],
                                        delay=1.0, trickle=0.1) for _ in range(n)])

                script(1)
                lone = run_users(url, backend, 1)  # warm-up (index, embedder), not reported
                script(args.users)
                lone = []
                for _ in range(3 if backend == "extractive" else 1):
                    script(1)
                    lone += run_users(url, backend, 1)
                script(args.users)
                many = run_users(url, backend, args.users)
                for label, res in (("alone", lone), (f"{args.users} at once", many)):
                    firsts, totals = [r[0] for r in res], [r[1] for r in res]
                    rows.append((backend, label, statistics.median(firsts), max(firsts),
                                 statistics.median(totals), max(totals)))
            print(f"\n{'backend':11} {'users':10} {'first p50':>10} {'first max':>10} {'done p50':>9} {'done max':>9}")
            for b, label, f50, fmax, d50, dmax in rows:
                print(f"{b:11} {label:10} {f50:9.2f}s {fmax:9.2f}s {d50:8.2f}s {dmax:8.2f}s")
            ex_alone = next(r for r in rows if r[0] == "extractive" and r[1] == "alone")[4]
            ex_many = next(r for r in rows if r[0] == "extractive" and r[1] != "alone")[5]
            cpus = os.cpu_count() or 1
            bound = 1.2 * args.users * ex_alone / cpus
            print(f"\nextractive: last of {args.users} done in {ex_many:.2f}s; CPU-share bound "
                  f"1.2 x {args.users} x {ex_alone:.2f}s / {cpus} cores = {bound:.2f}s")
        finally:
            demo.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    main()
