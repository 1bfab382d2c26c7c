"""BEIR-format evaluation: folder layouts, metrics, and ``litassist eval --beir`` end to end."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from assistant.errors import InputError
from evals.beir import load_beir, ndcg_graded, score_query
from tests.conftest import SHARED

DOCS = {
    "d1": ("Low-rank adapters reduce catastrophic forgetting", "Freezing base weights and training LoRA adapters cuts forgetting by 41%."),
    "d2": ("Retrieval heads in long-context transformers", "Attention heads that retrieve facts from long contexts; pruning them drops needle accuracy."),
    "d3": ("Tiny speech models for low-resource languages", "Small speech recognition models lower word error rate by 18% with multilingual pretraining."),
    "d4": ("Protein folding with diffusion", "A diffusion model predicts protein structures from sequences."),
}  # fmt: skip
QUERIES = {"q1": "speech recognition for low-resource languages", "q2": "pruning retrieval heads", "q3": "unjudged"}


def _beir(folder: Path, *, standard: bool = True) -> Path:
    folder.mkdir(parents=True)
    if standard:  # BEIR's own layout: _id/text, queries.jsonl, qrels/<split>.tsv
        corpus = [{"_id": d, "title": t, "text": x, "metadata": {}} for d, (t, x) in DOCS.items()]
        queries = [{"_id": q, "text": t, "metadata": {}} for q, t in QUERIES.items()]
        (folder / "qrels").mkdir()
        qrels, qname = folder / "qrels" / "test.tsv", "queries.jsonl"
    else:  # ../shared/benchmarks/scifact's layout: id/abstract, queries_<split>.jsonl, qrels_<split>.tsv
        corpus = [{"id": d, "title": t, "abstract": x} for d, (t, x) in DOCS.items()]
        queries = [{"id": q, "question": t} for q, t in QUERIES.items()]
        qrels, qname = folder / "qrels_test.tsv", "queries_test.jsonl"
    (folder / "corpus.jsonl").write_text("".join(json.dumps(r) + "\n" for r in corpus), encoding="utf-8")
    (folder / qname).write_text("".join(json.dumps(r) + "\n" for r in queries), encoding="utf-8")
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td3\t1\nq2\td2\t2\nq2\td4\t0\n", encoding="utf-8")
    return folder


@pytest.mark.parametrize("standard", [True, False])
def test_load_beir_layouts(tmp_path: Path, standard: bool) -> None:
    beir = load_beir(_beir(tmp_path / "b", standard=standard), "test")
    assert beir.queries == {"q1": QUERIES["q1"], "q2": QUERIES["q2"]}  # q3 has no judgement
    assert beir.qrels == {"q1": {"d3": 1}, "q2": {"d2": 2, "d4": 0}}


def test_load_beir_errors_name_the_file(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "b")
    with pytest.raises(InputError, match="qrels for split 'train'"):
        load_beir(folder, "train")
    (folder / "qrels" / "test.tsv").write_text("q1\td3\tyes\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"test\.tsv:1: expected query-id, corpus-id, integer score"):
        load_beir(folder, "test")


def test_graded_ndcg_and_scores() -> None:
    grades = {"a": 2, "b": 1, "z": 0}
    assert ndcg_graded(["a", "b"], grades) == pytest.approx(1.0)
    swapped = (1 / 1 + 2 / math.log2(3)) / (2 / 1 + 1 / math.log2(3))
    assert ndcg_graded(["b", "a"], grades) == pytest.approx(swapped)
    s = score_query(["x", "z", "b"], grades)
    assert s["mrr_at_10"] == pytest.approx(1 / 3) and s["recall_at_10"] == 0.5 and s["ndcg_at_10"] < 0.5


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    code = "import sys; from assistant.cli import main; main(sys.argv[1:])"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ))


def test_eval_beir_cli_ingests_once_and_scores_each_mode(tmp_path: Path) -> None:
    folder = _beir(tmp_path / "b", standard=False)
    out = tmp_path / "r.json"
    md = tmp_path / "r.md"
    res = _cli("eval", "--beir", str(folder), "--split", "test", "--json", str(out), "--md", str(md))
    assert res.returncode == 0, res.stderr
    assert "ingesting" in res.stderr
    doc = json.loads(out.read_text())
    assert set(doc["modes"]) == {"hybrid", "dense", "bm25"} and doc["queries"] == 2
    assert doc["modes"]["bm25"]["recall_at_10"] == 1.0  # four papers, so every relevant one is in the top 10
    assert doc["per_query"]["bm25"]["q1"]["ndcg_at_10"] == 1.0
    assert "| hybrid |" in md.read_text()
    again = _cli("eval", "--beir", str(folder), "--split", "test", "--compare", "bm25")
    assert again.returncode == 0 and "ingesting" not in again.stderr and "| bm25 |" in again.stdout


def test_eval_beir_bad_input_is_one_line(tmp_path: Path) -> None:
    res = _cli("eval")
    assert res.returncode == 2 and "--questions FILE or --beir DIR" in res.stderr
    res = _cli("eval", "--beir", str(_beir(tmp_path / "b")), "--split", "dev")
    assert res.returncode == 2 and "Traceback" not in res.stderr and "qrels for split 'dev'" in res.stderr


def test_scifact_train_split_loads() -> None:
    folder = SHARED / "benchmarks" / "scifact"
    if not (folder / "qrels_train.tsv").is_file():
        pytest.skip(f"{folder} is absent: the SciFact train split lives in ../shared")
    beir = load_beir(folder, "train")
    assert len(beir.queries) == 809 and sum(len(d) for d in beir.qrels.values()) == 919
