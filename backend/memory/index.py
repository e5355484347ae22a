"""The hot in-process vector index: unit float32 question vectors grouped by exact context key, searched by brute force.

Contexts are filtered exactly, so a search only ever scans the rows of one context key: one matrix per key, grown in
chunks (amortised O(1) per add, never re-stacked), a removal moves the key's last row into the hole. Cosine is a dot
product of unit vectors; the top k come from argpartition.

Why brute force and not a library (bench/memory_cache.py --compare-libraries, this 2-core machine, 384 dims, one
query, k=5, all entries under one context key, the worst case):
    entries    numpy (exact)    faiss-cpu IndexFlatIP (exact)    usearch HNSW (approximate)
    1,000      0.03 ms          0.05 ms                          0.04 ms
    100,000    5.3 ms           6.6 ms                           0.10 ms (recall@5 0.98)
Exact numpy search is already within the 50 ms hit-path budget at 100,000 entries (the embedding of the asked
question costs ~6 ms and dominates at real sizes), faiss's exact index is no faster, and an HNSW index trades recall
(a repeat that is not found is a paid deliberation) and a dependency for time we do not need. Numbers from a run on
this machine; see the bench for how they were measured.
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
