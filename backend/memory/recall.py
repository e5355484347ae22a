"""Looking a question up in memory: the hot tier (this process's vector index) over the cold tier (the database).

The hot tier holds the vectors of entries, synced from the database by id (an entry another worker remembered is
seen on the next lookup). It is only a shortlist: a candidate is served after its row was re-read from the database
(still live, not expired, and the asker can open its source discussion), its context key is equal, and the guard
found nothing an embedding blurs (backend/memory/match.py). The embedding runs in the caller's thread: call this
off the event loop.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from sqlmodel import Session, col, select

from backend import observability
from backend.config import get_settings
from backend.db import session_scope
from backend.memory import embedder, match
from backend.memory.context import DiscussionContext
from backend.memory.index import VectorIndex
from backend.memory.results import Recall, Remembered
from backend.models import MemoryEntry, Participant
from backend.models.base import as_utc, utcnow

SHORTLIST = 8
RELATED = 5


_index = VectorIndex()
_sync_lock = threading.Lock()
_watermark = 0  # the highest entry id this process has indexed


def _as_vector(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype=np.float32)


def sync() -> None:
    """Bring entries remembered since the last sync into the hot tier, embedding any that have no vector yet."""
    global _watermark
    with _sync_lock:
        with session_scope() as s:
            rows = s.exec(
                select(
                    MemoryEntry.id,
                    MemoryEntry.context_key,
                    MemoryEntry.question,
                    MemoryEntry.vector,
                    MemoryEntry.vector_version,
                )
                .where(col(MemoryEntry.id) > _watermark, col(MemoryEntry.invalidated_at).is_(None))
                .order_by(col(MemoryEntry.id))
            ).all()
        if not rows:
            return
        current = match.QUESTION_TEXT_VERSION
        missing = [r for r in rows if r.vector is None or r.vector_version != current]
        vectors: dict[int, np.ndarray] = {
            r.id: _as_vector(r.vector) for r in rows if r.vector is not None and r.vector_version == current
        }
        if missing:
            computed = embedder.embed([match.question_text(r.question) for r in missing])
            if computed is None:
                return  # memory unavailable: the caller says so
            with session_scope() as s:
                for row, vector in zip(missing, computed, strict=True):
                    vectors[row.id] = vector
                    entry = s.get(MemoryEntry, row.id)
                    if entry is not None:
                        entry.vector = vector.astype(np.float32).tobytes()
                        entry.vector_version = current
                        s.add(entry)
        for row in rows:
            _index.add(row.id, row.context_key, vectors[row.id])
        _watermark = max(_watermark, rows[-1].id)


def _live(s: Session, ids: list[int], user_id: int | None) -> dict[int, MemoryEntry]:
    """The candidates that may still be served to this person, re-read from the cold tier."""
    if not ids:
        return {}
    query = select(MemoryEntry).where(
        col(MemoryEntry.id).in_(ids),
        col(MemoryEntry.invalidated_at).is_(None),
        col(MemoryEntry.expires_at) > utcnow(),
    )
    if user_id is not None:  # members only: nobody is shown a result from a discussion they could not open
        mine = select(Participant.discussion_id).where(Participant.user_id == user_id)
        query = query.where(col(MemoryEntry.discussion_id).in_(mine))
    rows = {e.id: e for e in s.exec(query).all() if e.id is not None}
    unseen = set(ids) - set(rows)
    if unseen and user_id is not None:  # not this person's, or not live for anyone: only the latter are dropped
        unseen -= set(
            s.exec(
                select(MemoryEntry.id).where(
                    col(MemoryEntry.id).in_(unseen),
                    col(MemoryEntry.invalidated_at).is_(None),
                    col(MemoryEntry.expires_at) > utcnow(),
                )
            ).all()
        )
    for gone in unseen:  # sent back, forgotten, expired: off the shortlist for good
        _index.remove(gone)
    return rows


def _shown(entry: MemoryEntry, verdict: match.Verdict) -> Remembered:
    assert entry.id is not None
    return Remembered(
        entry_id=entry.id,
        discussion_id=entry.discussion_id,
        question=entry.question,
        context=entry.context,
        outcome=entry.outcome,
        kind=entry.kind,
        decided_by=entry.decided_by,
        decided_at=as_utc(entry.decided_at),
        similarity=round(verdict.similarity, 4),
        saves_usd=entry.cost_usd,
        saves_tokens=entry.tokens,
        saves_seconds=entry.model_seconds,
        reasons=verdict.reasons,
    )


def recall(
    question: str, context: DiscussionContext, *, user_id: int | None, related: bool = True, exclude: int | None = None
) -> Recall:
    """Look the question up (blocking: the embedding and the database). Never raises for memory being down."""
    started = time.perf_counter()
    if not get_settings().memory_enabled:
        return Recall(unavailable="Memory is switched off on this server (MAESTRO_MEMORY=off).")
    vectors = embedder.embed([match.question_text(question)])
    if vectors is None:
        return Recall(unavailable=f"Memory is unavailable: {embedder.unavailable() or 'the model did not load'}.")
    sync()
    vector = vectors[0]
    key = context.key()
    same = _index.search(key, vector, k=SHORTLIST)
    others = _index.search_any(vector, k=SHORTLIST * 2) if related else []
    with session_scope() as s:
        rows = _live(s, list({i for i, _ in same} | {i for i, _ in others}), user_id)
    hit: Remembered | None = None
    refused: list[Remembered] = []
    near: dict[int, Remembered] = {}
    for entry_id, similarity in same:
        entry = rows.get(entry_id)
        if entry is None or entry.discussion_id == exclude or entry.context_key != key:
            continue
        verdict = match.judge(question, entry.question, similarity)
        if verdict.kind == "hit" and hit is None:
            hit = _shown(entry, verdict)
        elif verdict.kind == "near_miss":
            refused.append(_shown(entry, verdict))
    for entry_id, similarity in others:
        entry = rows.get(entry_id)
        if entry is None or entry.discussion_id == exclude or (hit and entry_id == hit.entry_id):
            continue
        if similarity >= match.RELATED_THRESHOLD:
            verdict = match.judge(question, entry.question, similarity)
            near.setdefault(entry.discussion_id, _shown(entry, verdict))
    observability.record_memory_lookup(hit=hit is not None, refused=len(refused))
    return Recall(
        hit=hit,
        related=sorted(near.values(), key=lambda r: -r.similarity)[:RELATED],
        refused=refused,
        seconds=time.perf_counter() - started,
    )


def reset_for_tests() -> None:
    global _watermark, _index
    with _sync_lock:
        _index = VectorIndex()
        _watermark = 0
