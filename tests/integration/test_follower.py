"""A viewer's follower: replay then live, no gap, duplicate or reordering; deltas coalesced and placed once."""

from __future__ import annotations

import asyncio
from itertools import pairwise

from backend.db import session_scope
from backend.events import bus as bus_module
from backend.events.follower import Batch, Follower, LiveText
from backend.events.log import append_event
from backend.events.schema import HumanMessagePosted, TokenDelta, TurnCompleted, TurnStarted
from backend.models import Discussion


def _discussion() -> int:
    with session_scope() as s:
        d = Discussion(topic="t")
        s.add(d)
        s.flush()
        return d.id  # type: ignore[return-value]


def _persist(event):
    with session_scope() as s:
        return append_event(s, event)


def _turn_started(did: int) -> TurnStarted:
    """A persisted TurnStarted for agent 1 (participant id 1, "A"), round 1."""
    return _persist(TurnStarted(discussion_id=did, message_id=1, participant_id=1, author_name="A", round=1))


def _post(did: int, text: str) -> HumanMessagePosted:
    return _persist(HumanMessagePosted(discussion_id=did, message_id=0, author_name="Ann", content=text))


async def _next(it, timeout: float = 2.0) -> Batch:  # noqa: ASYNC109
    return await asyncio.wait_for(it.__anext__(), timeout)


async def _until(it, predicate, timeout: float = 3.0) -> list[Batch]:  # noqa: ASYNC109
    got: list[Batch] = []
    async with asyncio.timeout(timeout):
        while not predicate(got):
            got.append(await it.__anext__())
    return got


def _contents(batches: list[Batch]) -> list[str]:
    return [e.content for b in batches for e in b.events if isinstance(e, HumanMessagePosted)]


async def test_replays_the_log_then_follows_live_events_in_order(sqlite_db, bus):
    did = _discussion()
    for i in range(3):
        _post(did, f"old{i}")
    async with Follower(did, after_seq=0, bus=bus) as follower:
        it = follower.batches(idle=0.2)
        first = await _next(it)
        assert _contents([first]) == ["old0", "old1", "old2"]
        for i in range(3):
            await bus.publish(_post(did, f"new{i}"))
        batches = await _until(it, lambda got: len(_contents(got)) >= 3)
        assert _contents(batches) == ["new0", "new1", "new2"]
        assert follower.last_seq == 6


async def test_reconnect_resumes_after_the_last_seen_seq_without_duplicates(sqlite_db, bus):
    did = _discussion()
    for i in range(4):
        _post(did, f"m{i}")
    async with Follower(did, after_seq=2, bus=bus) as follower:
        first = await _next(follower.batches(idle=0.2))
    assert _contents([first]) == ["m2", "m3"]


async def test_an_event_seen_both_in_the_log_and_on_the_bus_is_applied_once(sqlite_db, bus):
    did = _discussion()
    event = _post(did, "both")  # persisted before the viewer subscribes, published after
    async with Follower(did, after_seq=0, bus=bus) as follower:
        it = follower.batches(idle=0.2)
        await bus.publish(event)
        await bus.publish(_post(did, "after"))
        batches = await _until(it, lambda got: "after" in _contents(got))
    assert _contents(batches) == ["both", "after"]


async def test_a_gap_on_the_bus_is_filled_from_the_log(sqlite_db, bus):
    did = _discussion()
    async with Follower(did, after_seq=0, bus=bus) as follower:
        it = follower.batches(idle=0.2)
        _post(did, "never published")  # e.g. lost between workers
        await bus.publish(_post(did, "published"))
        batches = await _until(it, lambda got: "published" in _contents(got))
    assert _contents(batches) == ["never published", "published"]


async def test_deltas_are_coalesced_and_each_character_is_sent_once(sqlite_db, bus):
    did = _discussion()
    started = _turn_started(did)
    async with Follower(did, after_seq=0, bus=bus, min_interval=0.05, max_wait=0.05) as follower:
        it = follower.batches(idle=0.2)
        await _next(it)  # the TurnStarted
        text = "".join(f"w{i} " for i in range(40))
        offset = 0
        for i in range(40):
            piece = f"w{i} "
            await bus.publish(
                TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=offset, text=piece)
            )
            offset += len(piece)
        # A duplicate delivery of an old piece adds nothing.
        await bus.publish(TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=0, text="w0 "))
        batches = await _until(it, lambda got: sum(len(t) for b in got for _, t in b.deltas.values()) >= len(text))
        deltas = [b.deltas[started.seq] for b in batches if started.seq in b.deltas]
        assert len(deltas) < 40  # coalesced, not one flush per token
        rebuilt = ""
        for start, piece in deltas:
            assert start == len(rebuilt)  # contiguous: the page appends at exactly this offset
            rebuilt += piece
        assert rebuilt == text


async def test_a_viewer_joining_mid_stream_gets_the_text_so_far_whole(sqlite_db, bus):
    did = _discussion()
    started = _turn_started(did)

    def live(_did: int) -> list[LiveText]:
        return [LiveText(started.seq, 1, "Postgres is ")]

    async with Follower(did, after_seq=0, bus=bus, live_source=live) as follower:
        it = follower.batches(idle=0.2)
        first = await _next(it)
        assert first.deltas[started.seq] == (0, "Postgres is ")
        await bus.publish(
            TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=12, text="fine")
        )
        nxt = await _next(it)
        assert nxt.deltas[started.seq] == (12, "fine")


async def test_missed_deltas_resend_the_turn_whole(sqlite_db, bus):
    did = _discussion()
    started = _turn_started(did)
    live_text = {"text": ""}

    def live(_did: int) -> list[LiveText]:
        return [LiveText(started.seq, 1, live_text["text"])]

    async with Follower(did, after_seq=0, bus=bus, live_source=live) as follower:
        it = follower.batches(idle=0.2)
        await _next(it)
        live_text["text"] = "abcdefgh"
        await bus.publish(TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=4, text="efgh"))
        batch = await _next(it)
        assert batch.deltas[started.seq] == (0, "abcdefgh")


async def test_a_finished_turn_drops_its_pending_deltas(sqlite_db, bus):
    did = _discussion()
    started = _turn_started(did)
    async with Follower(did, after_seq=0, bus=bus, min_interval=0.5, max_wait=0.5) as follower:
        it = follower.batches(idle=0.2)
        await _next(it)
        await bus.publish(TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=0, text="hi"))
        done = _persist(
            TurnCompleted(discussion_id=did, message_id=1, participant_id=1, start_seq=started.seq, content="hi")
        )
        await bus.publish(done)
        batches = await _until(it, lambda got: any(isinstance(e, TurnCompleted) for b in got for e in b.events))
        assert started.seq not in batches[-1].deltas


async def test_a_lagging_viewer_recovers_from_the_log(sqlite_db, bus, monkeypatch):
    monkeypatch.setattr(bus_module, "QUEUE_LIMIT", 5)
    did = _discussion()
    async with Follower(did, after_seq=0, bus=bus) as follower:
        it = follower.batches(idle=0.2)
        # Publish faster than the follower reads: its bus queue overflows and it must re-read the log.
        for i in range(30):
            await bus.publish(_post(did, f"m{i}"))
        batches = await _until(it, lambda got: len(_contents(got)) >= 30, timeout=5)
    assert _contents(batches) == [f"m{i}" for i in range(30)]


async def test_a_turns_frames_are_paced_and_its_first_text_goes_at_once(sqlite_db, bus):
    """The first text of a turn is not held back; later frames are never closer than `min_interval` (two frames
    arriving together are merged by the browser, losing text) and carry at least a few words each."""
    did = _discussion()
    started = _turn_started(did)
    async with Follower(did, after_seq=0, bus=bus, min_interval=0.15, max_wait=0.3, min_flush_chars=40) as follower:
        it = follower.batches(idle=0.2)
        await _next(it)  # the TurnStarted
        pieces = [f"w{i} " for i in range(60)]

        async def stream() -> None:
            offset = 0
            for piece in pieces:
                await bus.publish(
                    TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=offset, text=piece)
                )
                offset += len(piece)
                await asyncio.sleep(0.01)

        loop = asyncio.get_running_loop()
        sent_at = loop.time()
        producer = asyncio.create_task(stream())
        frames: list[tuple[float, int, str]] = []
        async with asyncio.timeout(10):
            while sum(len(t) for _, _, t in frames) < len("".join(pieces)):
                batch = await it.__anext__()
                if started.seq in batch.deltas:
                    frames.append((loop.time(), *batch.deltas[started.seq]))
        await producer
    assert frames[0][2] == "w0 " and frames[0][0] - sent_at < 0.15  # not held for the pacing
    gaps = [b[0] - a[0] for a, b in pairwise(frames)]
    assert min(gaps) >= 0.15 - 0.005, gaps
    assert "".join(t for _, _, t in frames) == "".join(pieces)
    assert len(frames) < 15  # ~0.7 s of tokens every 10 ms: a handful of frames, not 60


async def test_a_finished_turn_says_how_much_text_the_page_was_sent(sqlite_db, bus):
    """The finished message need not repeat what streamed (the page takes it from the stream, and its last
    frame from LiveState); text still waiting when the turn finished is dropped: the message carries it."""
    did = _discussion()
    started = _turn_started(did)
    async with Follower(did, after_seq=0, bus=bus, min_interval=0.3, max_wait=5, min_flush_chars=100) as follower:
        it = follower.batches(idle=0.2)
        await _next(it)
        first = TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=0, text="Postgres ")
        await bus.publish(first)
        await _until(it, lambda got: any(started.seq in b.deltas for b in got))  # a turn's first text goes at once
        await bus.publish(  # this one waits for more text, or for 5 s
            TokenDelta(discussion_id=did, start_seq=started.seq, participant_id=1, offset=9, text="for Apollo")
        )
        done = _persist(
            TurnCompleted(
                discussion_id=did, message_id=1, participant_id=1, start_seq=started.seq, content="Postgres for Apollo"
            )
        )
        await bus.publish(done)
        batches = await _until(it, lambda got: any(isinstance(e, TurnCompleted) for b in got for e in b.events))
    assert batches[-1].streamed == {started.seq: len("Postgres ")}
    assert started.seq not in batches[-1].deltas


async def test_a_page_that_lost_text_is_sent_the_rest_from_what_it_holds(sqlite_db, bus):
    did = _discussion()
    started = _turn_started(did)

    def live(_did: int) -> list[LiveText]:
        return [LiveText(started.seq, 1, "Postgres for Apollo, with backups")]

    async with Follower(did, after_seq=0, bus=bus, live_source=live) as follower:
        it = follower.batches(idle=0.2)
        assert (await _next(it)).deltas[started.seq] == (0, "Postgres for Apollo, with backups")
        follower.resync(started.seq, have=len("Postgres"))  # the page's StreamText holds only this much
        batch = await _until(it, lambda got: any(started.seq in b.deltas for b in got))
        assert batch[-1].deltas[started.seq] == (8, " for Apollo, with backups")
        follower.resync(started.seq, have=10_000)  # more than there is: nothing is resent past the end
        batch = await _until(it, lambda got: any(started.seq in b.deltas for b in got))
        assert batch[-1].deltas[started.seq] == (len("Postgres for Apollo, with backups"), "")
