"""How closely an index's papers sit with their nearest neighbours: the scale on which a retrieved
paper's similarity to the other leading candidates is read.

A paper's vector is the mean of its chunk vectors (as in :mod:`assistant.evidence`). Its *cohesion*
is its cosine to the centroid of its :data:`NEIGHBOURS` nearest other papers; the index's cohesion
is the median over an evenly spaced sample of papers. On the seed corpus (414 papers on a few
related topics) it is ~0.80; over a handful of unrelated abstracts it is ~0.3. Features that
compare a candidate with the other candidates subtract it, so that they mean the same on a small
index of unrelated papers as on a large topical one.
"""

from __future__ import annotations

import contextlib
import json
import math
import sqlite3
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from assistant.index import Index

NEIGHBOURS = 3  # as many as the leading candidates a paper's prf_sim is measured against
SAMPLE = 256  # papers whose cohesion is measured (evenly spaced over the paper ids)
POOL = 20000  # neighbours are sought among at most this many papers (evenly spaced), bounding the cost
META = "cohesion"  # registry meta key: {"generation": ..., "value": ...}
_BATCH = 500


def paper_vectors(index: Index, ids: list[str]) -> np.ndarray:
    """The unit mean chunk vector of each of ``ids`` that has stored chunk vectors (rows in order)."""
    out = []
    for start in range(0, len(ids), _BATCH):
        rows = index.registry.chunk_vectors_of(ids[start : start + _BATCH])
        for pid in ids[start : start + _BATCH]:
            vecs = [v for _, v in rows.get(pid, []) if v is not None]
            if vecs:
                mean = np.mean(vecs, axis=0)
                norm = float(np.linalg.norm(mean))
                if norm:
                    out.append(mean / norm)
    return np.array(out, dtype=np.float32)


def neighbour_cohesion(vectors: np.ndarray, neighbours: int = NEIGHBOURS, sample: int = SAMPLE) -> float:
    """Median, over an evenly spaced sample of the rows of ``vectors`` (unit vectors), of a row's
    cosine to the centroid of its ``neighbours`` nearest other rows (fewer when there are not that
    many); NaN for fewer than two rows."""
    n = len(vectors)
    if n < 2:
        return math.nan
    k = min(neighbours, n - 1)
    picked = np.unique(np.linspace(0, n - 1, min(sample, n)).round().astype(int))
    sims = vectors[picked] @ vectors.T
    sims[np.arange(len(picked)), picked] = -np.inf  # not its own neighbour
    nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
    centroids = vectors[nearest].mean(axis=1)
    norms = np.linalg.norm(centroids, axis=1)
    norms[norms == 0] = 1.0
    own = np.einsum("ij,ij->i", vectors[picked], centroids) / norms
    return float(np.median(own))


def index_cohesion(index: Index) -> float:
    """The index's cohesion (see module docstring), kept in the registry per generation: measured
    once after each ingest (~0.1 s for 5,000 papers), then one meta read per question."""
    gen = index.registry.generation()
    kept = index.__dict__.get("_cohesion")
    if kept is not None and kept[0] == gen:
        return float(kept[1])
    stored = index.registry.get_meta(META)
    value: float | None = None
    if stored is not None:
        found = _parse(stored)
        if found is not None and found[0] == gen:
            value = found[1]
    if value is None:
        ids = index.registry.paper_ids()
        if len(ids) > POOL:
            ids = [ids[i] for i in np.linspace(0, len(ids) - 1, POOL).round().astype(int)]
        value = neighbour_cohesion(paper_vectors(index, ids))
        with contextlib.suppress(sqlite3.Error):  # a read-only index: measured again by the next process
            index.registry.set_meta(META, {"generation": gen, "value": None if math.isnan(value) else value})
    index.__dict__["_cohesion"] = (gen, value)
    return value


def _parse(stored: str) -> tuple[int, float] | None:
    try:
        row = json.loads(stored)
        value = row["value"]
        return int(row["generation"]), math.nan if value is None else float(value)
    except (ValueError, KeyError, TypeError):
        return None
