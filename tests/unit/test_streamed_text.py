"""Streamed text leaves the engine once per event-loop turn: pieces that arrive together are one TokenDelta, and
nothing waits for a later piece or comes after the turn's outcome."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from backend.events.bus import InProcessBus
from backend.events.schema import TokenDelta, TurnCompleted
from backend.orchestrator.streamed_text import StreamedText


@dataclass
class Live:
    text: str = ""


def _drain(sub) -> list:
    out = []
    while not sub.queue.empty():
        out.append(sub.queue.get_nowait())
    return out


async def test_pieces_that_arrive_together_are_one_delta_and_later_ones_follow_at_their_offset() -> None:
    bus, live = InProcessBus(), Live()
    sub = await bus.subscribe(1)
    text = StreamedText(bus, live, 1, start_seq=5, participant_id=2)
    for piece in ("Postgres ", "for ", "Apollo"):
        await text.add(piece)
    assert _drain(sub) == []  # nothing yet: the engine has not yielded to the loop
    await asyncio.sleep(0)  # the engine waits for the network: the flush runs
    [first] = _drain(sub)
    assert (first.offset, first.text, first.start_seq, first.participant_id) == (0, "Postgres for Apollo", 5, 2)
    await text.add(", now.")
    await asyncio.sleep(0)
    [second] = _drain(sub)
    assert (second.offset, second.text) == (len("Postgres for Apollo"), ", now.")
    assert live.text == "Postgres for Apollo, now."


async def test_flush_sends_the_rest_at_once_and_the_scheduled_flush_sends_nothing_twice() -> None:
    bus, live = InProcessBus(), Live()
    sub = await bus.subscribe(1)
    text = StreamedText(bus, live, 1, start_seq=5, participant_id=2)
    await text.add("a ")
    await text.add("b")
    text.flush()  # the turn ends: its text must precede the outcome
    await bus.publish(TurnCompleted(discussion_id=1, message_id=1, participant_id=2, start_seq=5, content="a b"))
    await asyncio.sleep(0)
    events = _drain(sub)
    assert [type(e) for e in events] == [TokenDelta, TurnCompleted]
    assert events[0].text == "a b"


async def test_a_bus_that_must_await_gets_every_piece_as_it_comes() -> None:
    sent: list[TokenDelta] = []

    class AwaitingBus:  # a bus without publish_nowait
        async def publish(self, event) -> None:
            sent.append(event)

    live = Live()
    text = StreamedText(AwaitingBus(), live, 1, start_seq=5, participant_id=2)  # type: ignore[arg-type]
    await text.add("a ")
    await text.add("b")
    text.flush()
    assert [(d.offset, d.text) for d in sent] == [(0, "a "), (2, "b")]
