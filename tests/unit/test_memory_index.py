"""The hot vector index answers like a brute-force scan of one context key, keeps keys apart, forgets what is removed,
and stays consistent when worker threads add, remove and search at once."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from backend.memory.index import DIMENSIONS, VectorIndex


def _units(n: int, seed: int = 0) -> np.ndarray:
    m = np.random.default_rng(seed).standard_normal((n, DIMENSIONS)).astype(np.float32)
    return m / np.linalg.norm(m, axis=1, keepdims=True)


def test_search_returns_the_nearest_entries_of_the_key_best_first_with_their_cosine():
    vectors = _units(600)  # more than one chunk: the matrix grows
    index = VectorIndex()
    for i, v in enumerate(vectors):
        index.add(i, "ctx", v)
    assert len(index) == 600
    query = vectors[17] + 0.1 * _units(1, seed=5)[0]
    found = index.search("ctx", query, k=5)
    q = query / np.linalg.norm(query)
    expected = np.argsort(-(vectors @ q))[:5]
    assert [i for i, _ in found] == expected.tolist()
    assert found[0][0] == 17
    assert [s for _, s in found] == sorted((s for _, s in found), reverse=True)
    assert found[0][1] == pytest.approx(float(vectors[17] @ q), abs=1e-5)
    assert index.search("ctx", vectors[3], k=1) == [(3, pytest.approx(1.0, abs=1e-5))]


def test_a_search_sees_only_its_own_context_key():
    a, b = _units(2, seed=1)
    index = VectorIndex()
    index.add(1, "python/high", a)
    index.add(2, "go/enterprise", a)  # the same question in another context
    index.add(3, "go/enterprise", b)
    assert [i for i, _ in index.search("python/high", a, k=5)] == [1]
    assert [i for i, _ in index.search("go/enterprise", a, k=5)] == [2, 3]
    assert index.search("nobody", a) == []
    assert sorted(index.keys()) == ["go/enterprise", "python/high"]


def test_search_any_spans_every_key_but_the_one_excluded():
    vectors = _units(6, seed=2)
    index = VectorIndex()
    for i, v in enumerate(vectors):
        index.add(i, f"key{i % 3}", v)
    found = index.search_any(vectors[4], k=3)
    assert found[0] == (4, pytest.approx(1.0, abs=1e-5)) and len(found) == 3
    assert {i for i, _ in index.search_any(vectors[4], k=6, exclude_key="key1")} == {0, 2, 3, 5}
    assert index.search_any(vectors[0], k=0) == []


def test_remove_forgets_an_entry_and_the_row_moved_into_its_place_stays_findable():
    vectors = _units(5, seed=3)
    index = VectorIndex()
    for i, v in enumerate(vectors):
        index.add(10 + i, "ctx", v)
    assert index.remove(11) is True
    assert index.remove(11) is False
    assert 11 not in index and len(index) == 4
    assert 11 not in [i for i, _ in index.search("ctx", vectors[1], k=5)]
    for i in (0, 2, 3, 4):  # 14 moved into 11's row
        assert index.search("ctx", vectors[i], k=1)[0][0] == 10 + i
    for i in (10, 12, 13, 14):
        index.remove(i)
    assert len(index) == 0 and index.keys() == []  # an empty key is dropped
    index.add(99, "ctx", vectors[0])
    assert index.search("ctx", vectors[0], k=1)[0][0] == 99


def test_adding_an_id_again_replaces_its_vector_and_key():
    a, b = _units(2, seed=4)
    index = VectorIndex()
    index.add(1, "old", a)
    index.add(1, "new", b)
    assert len(index) == 1
    assert index.search("old", a) == []
    assert index.search("new", b, k=1)[0] == (1, pytest.approx(1.0, abs=1e-5))


def test_vectors_are_made_unit_and_bad_ones_refused():
    index = VectorIndex()
    v = _units(1, seed=6)[0]
    index.add(1, "ctx", 3.0 * v)  # not unit: normalised
    assert index.search("ctx", v, k=1)[0][1] == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="dimensions"):
        index.add(2, "ctx", np.ones(10, dtype=np.float32))
    with pytest.raises(ValueError, match="zero"):
        index.add(2, "ctx", np.zeros(DIMENSIONS, dtype=np.float32))
    with pytest.raises(ValueError):
        index.search("ctx", np.full(DIMENSIONS, np.nan, dtype=np.float32))
    assert len(index) == 1
    assert index.search("ctx", v, k=10) == index.search("ctx", v, k=1)  # k above the count


def test_threads_adding_removing_and_searching_at_once_leave_a_consistent_index():
    vectors = _units(2000, seed=7)
    index = VectorIndex()
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def writer(offset: int) -> None:
        start.wait()
        for i in range(offset, 2000, 4):
            index.add(i, f"k{i % 3}", vectors[i])
            if i % 5 == 0:
                index.remove(i)

    def reader() -> None:
        start.wait()
        for n in range(300):
            for entry_id, score in index.search(f"k{n % 3}", vectors[n], k=5):
                if not -1.001 <= score <= 1.001 or not 0 <= entry_id < 2000:
                    errors.append(AssertionError((entry_id, score)))
            index.search_any(vectors[n], k=5)

    def guarded(fn, *args) -> None:
        try:
            fn(*args)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=guarded, args=(writer, o)) for o in range(4)]
    threads += [threading.Thread(target=guarded, args=(reader,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
    kept = [i for i in range(2000) if i % 5 != 0]
    assert len(index) == len(kept)
    for i in kept[::37]:
        assert index.search(f"k{i % 3}", vectors[i], k=1)[0] == (i, pytest.approx(1.0, abs=1e-5))
    for i in range(0, 2000, 5):
        assert i not in index
