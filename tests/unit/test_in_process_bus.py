"""The in-process bus forgets a discussion once its last subscriber leaves (a long-lived server sees many)."""

from __future__ import annotations

from backend.events.bus import InProcessBus
from backend.events.schema import TokenDelta


def _delta(did: int) -> TokenDelta:
    return TokenDelta(discussion_id=did, start_seq=1, participant_id=1, offset=0, text="hi")


async def test_closed_subscriptions_leave_nothing_behind() -> None:
    bus = InProcessBus()
    for did in range(1, 1001):
        a = await bus.subscribe(did)
        b = await bus.subscribe(did, text=False)
        await bus.publish(_delta(did))
        assert bus.subscriber_count(did) == 2
        await a.close()
        assert bus.subscriber_count(did) == 1
        await b.close()
        await b.close()  # twice: harmless
        assert bus.subscriber_count(did) == 0
    assert bus._subs == {}


async def test_a_subscriber_still_gets_events_after_another_leaves() -> None:
    bus = InProcessBus()
    stays, leaves = await bus.subscribe(7), await bus.subscribe(7)
    await leaves.close()
    await bus.publish(_delta(7))
    assert stays.queue.get_nowait() == _delta(7)
