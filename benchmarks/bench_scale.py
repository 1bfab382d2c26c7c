"""Index cost at 1k/10k/100k synthetic papers, with everything but the embedding model measured.

    python benchmarks/bench_scale.py [--sizes 1000,10000] [--workdir DIR] [--questions 40]

A synthetic corpus (JSONL with ids, years, ~5 chunks per abstract) is ingested through the real
``litassist ingest`` command with ``ingest.embedder=openai`` pointed at a loopback embeddings server
(OpenAI-compatible ``/v1/embeddings`` on 127.0.0.1, deterministic vectors from a hash of each text),
so the timings are litassist's own cost: parsing, chunking, Chroma, SQLite, BM25. Prints one Markdown
table with the machine described. Every command runs in a subprocess whose peak RSS is read with
``wait4``; the server is a thread of this process and stops with it.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

DIM = 384
WORDS = [f"{a}{b}{c}" for a in ("ka", "lo", "mi", "ne", "po", "ru", "si", "ta", "vu", "ze")
         for b in ("ba", "de", "fi", "go", "hu", "ja", "ke", "li", "mo", "nu")
         for c in ("r", "n", "s", "t", "l", "m", "x", "d", "k", "p")]  # fmt: skip


# --- loopback embeddings server ------------------------------------------------------------------
def synthetic_vector(text: str, dim: int = DIM) -> list[float]:
    """A deterministic unit vector for ``text``."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    vec = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return (vec / np.linalg.norm(vec)).tolist()


class _Embeddings(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real server: the client reuses its connection
    wbufsize = 1 << 16  # headers and body leave in one write, flushed per request
    disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall on a kept-alive connection

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        vecs = [synthetic_vector(t) for t in texts]
        if body.get("encoding_format") == "base64":  # what the openai client asks for, as OpenAI's API answers it
            vecs = [base64.b64encode(np.asarray(v, dtype="<f4").tobytes()).decode() for v in vecs]  # type: ignore[misc]
        data = [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(vecs)]
        out = json.dumps({"object": "list", "data": data, "model": body.get("model", "synthetic"),
                          "usage": {"prompt_tokens": 0, "total_tokens": 0}}).encode()  # fmt: skip
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *_: object) -> None:
        pass


def start_server() -> tuple[ThreadingHTTPServer, str]:
    """Serve ``/v1/embeddings`` on 127.0.0.1 (a free port) from a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Embeddings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


# --- synthetic corpus ----------------------------------------------------------------------------
def _sentence(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 22))).capitalize() + "."


def write_corpus(path: Path, start: int, n: int, seed: int = 0) -> None:
    """``n`` papers with ids ``syn-<i>``; ~90% carry a year; abstracts of ~5 chunks of 96 tokens."""
    rng = random.Random(seed + start)
    with path.open("w", encoding="utf-8") as fh:
        for i in range(start, start + n):
            rec: dict[str, object] = {
                "id": f"syn-{i}",
                "title": " ".join(rng.choice(WORDS) for _ in range(8)).title(),
                "abstract": " ".join(_sentence(rng) for _ in range(rng.randint(8, 11))),
            }
            if rng.random() < 0.9:
                rec["year"] = rng.randint(2015, 2025)
            fh.write(json.dumps(rec) + "\n")


# --- measurements --------------------------------------------------------------------------------
def run_rss(cmd: list[str], env: dict[str, str]) -> tuple[Timing, float, str]:
    """(wall and CPU seconds, peak RSS in GB, stdout) of one command, reaped with ``wait4`` for its own usage."""
    t0 = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - t0
        out.seek(0)
        err.seek(0)
        if proc.returncode:
            raise SystemExit(f"{' '.join(cmd[:4])} failed ({proc.returncode}): {err.read().strip()[-800:]}")
        cpu = usage.ru_utime + usage.ru_stime
        return Timing(seconds, cpu), usage.ru_maxrss / 1e6, out.read()  # ru_maxrss is in KB on Linux


class Timing(NamedTuple):
    """Wall-clock and CPU (user + system, all threads) time of one measurement, in the same unit.

    On a shared machine the wall time includes waiting for a core; the CPU time is the work itself."""

    wall: float
    cpu: float

    def __str__(self) -> str:
        return f"{self.wall:.1f} ({self.cpu:.1f})" if self.wall >= 1 else f"{self.wall:.3f} ({self.cpu:.3f})"


QUERY_SCRIPT = """
import json, resource, statistics, sys, time
from assistant.answering import get_assistant
from assistant.settings import Settings
n = int(sys.argv[1])
a = get_assistant(Settings())
YEARS = {"since": 2020, "until": 2022}
for i in range(3):  # warm up: first calls fill caches (tokenizer, LRU views, the HNSW index)
    a.stream(f"warm up the index {i}").result()
    a.stream(f"warm up the filters {i}", filters=YEARS).result()
times = {"plain": ([], []), "year": ([], [])}
for i in range(n):  # interleaved, so both kinds see the same machine
    for kind in ("plain", "year"):
        q = f"papers about {WORDS[i % len(WORDS)]} and {WORDS[(7 * i + 3) % len(WORDS)]} ({i}, {kind})"
        t, c = time.perf_counter(), time.process_time()
        a.stream(q, filters=YEARS).result() if kind == "year" else a.stream(q).result()
        times[kind][0].append((time.perf_counter() - t) * 1000)
        times[kind][1].append((time.process_time() - c) * 1000)
p50 = {k: [statistics.median(w), statistics.median(c)] for k, (w, c) in times.items()}
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
print(json.dumps({"warm_p50_ms": p50["plain"], "year_p50_ms": p50["year"], "rss_gb": rss}))
"""


def machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor() or "unknown CPU")  # fmt: skip
    mem = next((int(line.split()[1]) / 1e6 for line in Path("/proc/meminfo").read_text().splitlines()
                if line.startswith("MemTotal")), 0.0)  # fmt: skip
    load = os.getloadavg()[0]
    return f"{cpu}, {os.cpu_count()} cores, {mem:.1f} GB RAM, Python {platform.python_version()}, load {load:.1f} at start"


def bench(size: int, root: Path, base_url: str, questions: int, query_only: bool = False) -> dict[str, Any]:
    """Ingest, re-ingest, add 1k, query timings for one corpus size (``query_only``: reuse the index
    and ingest timings a previous run left in ``root``, and measure the queries again)."""
    folder = root / f"n{size}"
    folder.mkdir(parents=True, exist_ok=True)
    corpus, extra, saved = folder / "corpus.jsonl", folder / "extra.jsonl", folder / "ingest.json"
    if not query_only:
        write_corpus(corpus, 0, size)
        write_corpus(extra, size, 1000)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LITASSIST_")}
    env.update({
        "LITASSIST_DATA_DIR": str(folder / "data"), "LITASSIST_CACHE_DIR": str(folder / "data" / "cache"),
        "LITASSIST_CONFIG": "", "LITASSIST_INGEST__EMBEDDER": "openai",
        "LITASSIST_INGEST__EMBEDDING_MODEL": f"synthetic-{DIM}", "LITASSIST_INGEST__EMBEDDING_BASE_URL": base_url,
        "LITASSIST_INGEST__BATCH_SIZE": "256", "LITASSIST_LLM__BACKEND": "extractive",
    })  # fmt: skip
    cli = [sys.executable, "-m", "assistant.cli"]
    if query_only:
        if not saved.is_file():
            raise SystemExit(f"--query-only: no index of a previous run in {folder} ({saved.name} not found)")
        done = json.loads(saved.read_text())
        chunks, ingest_rss = done["chunks"], done["ingest_rss_gb"]
        ingest_s, reingest_s, add_s = (Timing(*done[k]) for k in ("ingest_s", "reingest_s", "add1k_s"))
    else:
        ingest_s, ingest_rss, out = run_rss([*cli, "ingest", "--json", str(corpus)], env)
        chunks = json.loads(out)["total_chunks"]
        reingest_s, _, _ = run_rss([*cli, "ingest", str(corpus)], env)
        add_s, _, _ = run_rss([*cli, "ingest", str(extra)], env)
        saved.write_text(json.dumps({
            "chunks": chunks, "ingest_rss_gb": ingest_rss, "ingest_s": ingest_s, "reingest_s": reingest_s, "add1k_s": add_s
        }))  # fmt: skip
        print(f"{size}: ingest {ingest_s}, peak RSS {ingest_rss:.2f} GB, re-ingest {reingest_s}, add 1k {add_s}",
              file=sys.stderr, flush=True)  # fmt: skip
    script = f"WORDS = {WORDS!r}\n{QUERY_SCRIPT}"
    _, _, out = run_rss([sys.executable, "-c", script, str(questions)], env)
    q = json.loads(out.strip().splitlines()[-1])
    cold_s, _, _ = run_rss([*cli, "ask", f"papers about {WORDS[5]} and {WORDS[9]}"], env)
    return {
        "papers": size, "chunks": chunks, "ingest_s": ingest_s, "ingest_rss_gb": ingest_rss, "reingest_s": reingest_s,
        "add1k_s": add_s, "warm_p50_ms": Timing(*q["warm_p50_ms"]), "year_p50_ms": Timing(*q["year_p50_ms"]),
        "cold_ask_s": cold_s, "query_rss_gb": q["rss_gb"],
    }  # fmt: skip


def table(rows: list[dict[str, Any]]) -> str:
    """The Markdown table; times are wall (CPU)."""
    head = ("| papers | chunks | ingest (no model), s | ingest peak RSS | re-ingest, s | add 1k papers, s "
            "| warm ask p50 (new q), ms | year-filtered ask p50, ms | cold `litassist ask`, s | query RSS |")  # fmt: skip
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['papers'] / 1000:g}k | {r['chunks']:,} | {r['ingest_s']} | {r['ingest_rss_gb']:.2f} GB "
            f"| {r['reingest_s']} | {r['add1k_s']} | {r['warm_p50_ms']} | {r['year_p50_ms']} "
            f"| {r['cold_ask_s']} | {r['query_rss_gb']:.2f} GB |"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000", help="comma list of corpus sizes (100000 takes long)")
    ap.add_argument("--workdir", type=Path, help="where corpora and indexes go (default: a temp dir)")
    ap.add_argument("--questions", type=int, default=40, help="new questions per warm p50")
    ap.add_argument("--query-only", action="store_true",
                    help="reuse the indexes (and ingest timings) a previous run left in --workdir; time the queries")  # fmt: skip
    args = ap.parse_args()
    if args.query_only and not args.workdir:
        ap.error("--query-only needs the --workdir of a previous run")
    server, base_url = start_server()
    rows = []
    try:
        with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
            root = args.workdir or Path(tmp)
            for size in (int(s) for s in args.sizes.split(",")):
                rows.append(bench(size, root, base_url, args.questions, args.query_only))
                print(f"done {size}:\n{table(rows[-1:])}", file=sys.stderr, flush=True)
    finally:
        server.shutdown()
    print(f"Machine: {machine()}. Embeddings: loopback server, synthetic {DIM}-d vectors (no model). "
          "Times: wall (CPU of the process, all threads).\n")
    print(table(rows))


if __name__ == "__main__":
    main()
