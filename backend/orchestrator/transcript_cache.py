"""The run's copy of the transcript, read incrementally: only messages completed since the last read cross from the
database, and each speaker's attributed entries are built once and extended, so a long discussion stays cheap."""

from __future__ import annotations

from sqlalchemy import Connection

from backend.db import get_engine
from backend.orchestrator import turn_log
from backend.providers.base import TranscriptEntry
from backend.providers.context_budget import MESSAGE_OVERHEAD, estimate_tokens

# A transcript row: (seq, author, content, kind, participant id).
Row = tuple[int, str, str, str, int | None]


class TranscriptCache:
    """Completed messages of one discussion, in order, with an estimate of their tokens (for the check before each
    call)."""

    def __init__(self, discussion_id: int) -> None:
        self.discussion_id = discussion_id
        self.rows: list[Row] = []
        self.seq = 0  # the seq of the last row read
        self.tokens = 0  # estimated
        self._entries: dict[int | None, list[TranscriptEntry]] = {}  # per speaker, see `entries`

    def read_new(self, c: Connection) -> None:
        """Extend the copy with messages completed since the last read, in the caller's transaction."""
        rows = turn_log.completed_after(c, self.discussion_id, self.seq)
        if rows:
            self.rows.extend(rows)
            self.seq = rows[-1][0]
            self.tokens += sum(
                estimate_tokens(author) + estimate_tokens(content) + MESSAGE_OVERHEAD
                for _seq, author, content, _kind, _pid in rows
            )

    def refresh(self) -> None:
        """Read what is new in a transaction of its own (runs in the database lane)."""
        with get_engine().begin() as c:
            self.read_new(c)

    def mark(self) -> tuple[int, int, int]:
        """Where the copy stands, to `forget_since` when the transaction that read further rolls back."""
        return len(self.rows), self.seq, self.tokens

    def forget_since(self, mark: tuple[int, int, int]) -> None:
        del self.rows[mark[0] :]
        self.seq, self.tokens = mark[1], mark[2]

    def entries(self, rows: list[Row] | None = None, *, speaker_id: int | None = None) -> list[TranscriptEntry]:
        """The transcript read so far (or `rows` of it) as attributed entries; `speaker_id`'s own turns are marked.

        The transcript only grows, so each speaker's entries are built once and extended (a long discussion would
        otherwise rebuild hundreds of them for every turn).
        """
        if rows is not None:
            return [_entry(row, speaker_id) for row in rows]
        built = self._entries.setdefault(speaker_id, [])
        built.extend(_entry(row, speaker_id) for row in self.rows[len(built) :])
        return list(built)


def _entry(row: Row, speaker_id: int | None) -> TranscriptEntry:
    _seq, author, content, kind, pid = row
    return TranscriptEntry(author=author, content=content, author_kind=kind, is_self=pid == speaker_id)  # type: ignore[arg-type]
