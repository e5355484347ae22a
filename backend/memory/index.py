"""The hot in-process vector index: unit float32 question vectors grouped by exact context key, searched by brute force.

Contexts are filtered exactly, so a search only ever scans the rows of one context key: one matrix per key, grown in
chunks (amortised O(1) per add, never re-stacked), a removal moves the key's last row into the hole. Cosine is a dot
product of unit vectors; the top k come from argpartition.

Why brute force and not a library (bench/memory_cache.py --compare-libraries on this 2-core machine; 384 dims, one
query at a time, k=5, every entry under one context key, the worst case; queries at cosine ~0.85 from a stored row;
"nearest" is how often the true nearest entry came first):
    entries   library                           p50       p95    nearest   build
    1,000     numpy (this index, exact)       0.04 ms   0.04 ms   1.000    0.01 s
    1,000     faiss-cpu IndexFlatIP (exact)   0.03 ms   0.04 ms   1.000    0.00 s
    1,000     usearch HNSW (approximate)      0.12 ms   0.18 ms   0.997    0.05 s
    100,000   numpy (this index, exact)       6.3 ms    15.9 ms   1.000    1.4 s
    100,000   faiss-cpu IndexFlatIP, 2 thr.   18.1 ms   36.0 ms   1.000    0.1 s
    100,000   faiss-cpu IndexFlatIP, 1 thr.   6.4 ms    11.7 ms   1.000    0.1 s
    100,000   usearch HNSW (defaults)         1.6 ms    2.1 ms    0.773    240 s
faiss's exact search is numpy's (both are one BLAS matrix-vector product); usearch is faster only by giving up the
nearest entry one time in four at 100,000 random vectors (a repeat not found is a paid deliberation) after a
four-minute build. The exact search is within budget: the hit path (embedding + search + guard) measured p50 17 ms,
p95 21 ms with 100,000 entries in one key, with torch on one thread (see the bench). So no dependency is added.

One caution for the process around it: the search runs on OpenBLAS threads that spin for a while after each call;
on 2 cores they take the CPU from the next embedding when torch uses 2 threads too (hit path p95 115 ms at 100,000
entries), so the embedder should run torch on one thread (or BLAS on one).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

DIMENSIONS = 384
_CHUNK = 256  # rows a key's matrix grows by, at least; it doubles beyond that


class _Block:
    """The rows of one context key."""

    __slots__ = ("ids", "n", "vectors")

    def __init__(self, dims: int) -> None:
        self.vectors = np.empty((_CHUNK, dims), dtype=np.float32)
        self.ids = np.empty(_CHUNK, dtype=np.int64)
        self.n = 0

    def append(self, entry_id: int, vector: np.ndarray) -> int:
        if self.n == len(self.ids):
            grow = max(_CHUNK, len(self.ids))
            self.vectors = np.concatenate([self.vectors, np.empty((grow, self.vectors.shape[1]), np.float32)])
            self.ids = np.concatenate([self.ids, np.empty(grow, np.int64)])
        row = self.n
        self.vectors[row] = vector
        self.ids[row] = entry_id
        self.n += 1
        return row

    def remove(self, row: int) -> int | None:
        """Drop a row by moving the last one into it; the id that moved (to update its row), if any."""
        last = self.n - 1
        moved = None
        if row != last:
            self.vectors[row] = self.vectors[last]
            self.ids[row] = self.ids[last]
            moved = int(self.ids[row])
        self.n = last
        return moved

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self.vectors[: self.n] @ query


def _unit(vector: Iterable[float] | np.ndarray, dims: int) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32).reshape(-1)
    if v.shape[0] != dims:
        raise ValueError(f"a vector has {dims} dimensions, not {v.shape[0]}")
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValueError("a zero or non-finite vector cannot be searched by cosine")
    return v / norm


def _top(scores: np.ndarray, ids: np.ndarray, k: int) -> list[tuple[int, float]]:
    if k <= 0 or len(scores) == 0:
        return []
    if len(scores) > k:
        part = np.argpartition(-scores, k - 1)[:k]
    else:
        part = np.arange(len(scores))
    order = part[np.argsort(-scores[part], kind="stable")]
    return [(int(ids[i]), float(scores[i])) for i in order]


class VectorIndex:
    """Entry vectors by exact context key; thread-safe (the web app searches from worker threads)."""

    def __init__(self, dims: int = DIMENSIONS) -> None:
        self.dims = dims
        self._blocks: dict[str, _Block] = {}
        self._where: dict[int, tuple[str, int]] = {}  # entry id -> (context key, row)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, entry_id: int) -> bool:
        return entry_id in self._where

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._blocks)

    def add(self, entry_id: int, context_key: str, vector) -> None:
        """Add (or replace) one entry's vector under its context key."""
        v = _unit(vector, self.dims)
        with self._lock:
            if entry_id in self._where:
                self._remove_locked(entry_id)
            block = self._blocks.get(context_key)
            if block is None:
                block = self._blocks[context_key] = _Block(self.dims)
            self._where[entry_id] = (context_key, block.append(entry_id, v))

    def remove(self, entry_id: int) -> bool:
        """Forget an entry; False when it was not there."""
        with self._lock:
            if entry_id not in self._where:
                return False
            self._remove_locked(entry_id)
            return True

    def _remove_locked(self, entry_id: int) -> None:
        key, row = self._where.pop(entry_id)
        block = self._blocks[key]
        moved = block.remove(row)
        if moved is not None:
            self._where[moved] = (key, row)
        if block.n == 0:
            del self._blocks[key]

    def clear(self) -> None:
        with self._lock:
            self._blocks.clear()
            self._where.clear()

    def search(self, context_key: str, vector, k: int = 5) -> list[tuple[int, float]]:
        """The k nearest entries of one context key, best first: [(entry id, cosine)]."""
        q = _unit(vector, self.dims)
        with self._lock:
            block = self._blocks.get(context_key)
            if block is None:
                return []
            return _top(block.scores(q), block.ids[: block.n], k)

    def search_any(self, vector, k: int = 5, exclude_key: str | None = None) -> list[tuple[int, float]]:
        """The k nearest entries across every context key but `exclude_key` (for "related decisions")."""
        q = _unit(vector, self.dims)
        with self._lock:
            best: list[tuple[int, float]] = []
            for key, block in self._blocks.items():
                if key == exclude_key:
                    continue
                best.extend(_top(block.scores(q), block.ids[: block.n], k))
        best.sort(key=lambda pair: -pair[1])
        return best[:k]
