"""Warm ask() latency with the extractive backend over every dev-set question.

    python benchmarks/bench_ask.py [--data-dir DIR] [--rounds 5]

Uses LITASSIST_DATA_DIR (or --data-dir) and expects the seed corpus to be ingested there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from assistant.answering import get_assistant
from assistant.settings import Settings


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", type=Path)
    ap.add_argument("--questions", type=Path, default=Path("../shared/evals/dev.jsonl"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    settings = Settings(data_dir=args.data_dir) if args.data_dir else Settings()
    questions = [json.loads(line)["question"] for line in args.questions.read_text().splitlines() if line.strip()]
    t0 = time.perf_counter()
    assistant = get_assistant(settings)
    assistant.stream(questions[0]).result()
    cold = (time.perf_counter() - t0) * 1000
    for q in questions:  # warm every query path once (query-embedding cache is per question)
        assistant.stream(q).result()
    runs: list[float] = []
    stages: dict[str, list[float]] = {}
    for _ in range(args.rounds):
        for q in questions:
            t = time.perf_counter()
            answer = assistant.stream(q).result()
            runs.append((time.perf_counter() - t) * 1000)
            for key, value in answer.timings.items():
                stages.setdefault(key, []).append(value)
    runs.sort()
    print(f"cold first ask (open index + first query): {cold:.0f} ms")
    print(f"warm ask, {len(runs)} calls: p50 {statistics.median(runs):.1f} ms, "
          f"p95 {runs[int(0.95 * len(runs)) - 1]:.1f} ms, max {runs[-1]:.1f} ms")
    print("stage p50 (ms): " + ", ".join(f"{k}={statistics.median(v):.1f}" for k, v in stages.items()))
    # uncached question embeddings: new question text each time
    fresh = []
    for i, q in enumerate(questions):
        t = time.perf_counter()
        assistant.stream(f"{q} ({i})").result()
        fresh.append((time.perf_counter() - t) * 1000)
    print(f"warm ask with a never-seen question (query embedded): p50 {statistics.median(fresh):.1f} ms")
    # follow-ups about the previous answer's papers replay the conversation (one judgement per earlier turn)
    follow: dict[str, list[float]] = {}
    for q in questions:
        first = assistant.stream(q).result()
        history = [{"role": "user", "content": q}, {"role": "assistant", "content": first.text}]
        for kind, follow_up in (("choose", "Which of them use reinforcement learning?"),
                                ("every", "What datasets did they use?"), ("others", "Any others?")):
            assistant.stream(follow_up, history=history).result()  # its query embedding, once
            t = time.perf_counter()
            assistant.stream(follow_up, history=history).result()
            follow.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
    print("warm follow-up on the previous answer's papers, p50 (ms): "
          + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in follow.items()))


if __name__ == "__main__":
    main()
