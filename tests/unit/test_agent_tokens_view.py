"""The agent sidebar's tokens (issue 15): an estimate of the output while a turn streams, never "0 tokens", and
the reported figures as "in · out" once it ends, "≈" on each whenever they are estimates."""

from __future__ import annotations

from backend.events.schema import CallRecorded, DiscussionPaused, TurnCompleted, TurnFailed, TurnStarted
from backend.models.base import utcnow
from maestro_ui.projection.room import RoomView, agent_row, agent_tokens_label, project

NOW = utcnow()
D, ARCH = 7, 1


def room() -> RoomView:
    return RoomView(status="running", agents=[agent_row(ARCH, "Architect", "offline", "smollm2")])


def started(seq: int) -> TurnStarted:
    return TurnStarted(
        discussion_id=D, seq=seq, message_id=100 + seq, participant_id=ARCH, author_name="Architect", round=1, at=NOW
    )


def completed(seq: int, start: int, **kw) -> TurnCompleted:
    fields = {"input_tokens": 1204, "output_tokens": 240, "cost_usd": 0.002, "latency_ms": 1500} | kw
    return TurnCompleted(
        discussion_id=D, seq=seq, message_id=100 + start, participant_id=ARCH, start_seq=start, content="x", **fields
    )


def label(view: RoomView) -> str:
    return view.agents[0]["tokens_label"]


def test_the_label_reads_in_and_out_and_marks_estimates() -> None:
    assert agent_tokens_label(0, 0) == "0 tokens"
    assert agent_tokens_label(1204, 240) == "1,204 in · 240 out"
    assert agent_tokens_label(1204, 240, estimated=True) == "≈1,204 in · ≈240 out"
    assert agent_tokens_label(0, 0, streamed_chars=480) == "writing…"
    assert agent_tokens_label(1204, 240, streamed_chars=3) == "1,204 in · 240 out · writing…"
    assert agent_tokens_label(10, 5, streamed_chars=40) == "10 in · 5 out · writing…"


def test_a_streaming_agent_shows_an_estimate_of_its_output_not_zero() -> None:
    view = project(room(), [started(5)], now=NOW).view
    assert label(view) == "0 tokens"  # thinking: nothing written yet
    view = project(view, [], streaming={5: (0, "x" * 200)}, now=NOW).view
    assert (view.agents[0]["status"], label(view)) == ("streaming", "writing…")
    row = dict(view.agents[0])
    view = project(view, [], streaming={5: (200, "y" * 280)}, now=NOW).view  # a later delta: the row is unchanged
    assert view.agents[0] == row  # so it is not re-sent to every viewer with every batch of text
    assert view.agents[0]["tokens"] == 0  # the estimate is shown, never counted toward budgets or totals
    assert view.total_tokens == 0


def test_a_finished_turn_shows_the_reported_figures() -> None:
    view = project(room(), [started(5)], streaming={5: (0, "x" * 400)}, now=NOW).view
    view = project(view, [completed(6, 5)], now=NOW).view
    assert label(view) == "1,204 in · 240 out"
    assert view.agents[0]["tokens"] == 1444


def test_estimated_usage_is_marked_and_stays_marked_over_later_turns() -> None:
    view = project(room(), [started(5), completed(6, 5, tokens_estimated=True)], now=NOW).view
    assert label(view) == "≈1,204 in · ≈240 out"
    view = project(view, [started(7)], streaming={7: (0, "x" * 40)}, now=NOW).view
    assert label(view) == "≈1,204 in · ≈240 out · writing…"
    view = project(view, [completed(8, 7, input_tokens=1000, output_tokens=60)], now=NOW).view
    assert label(view) == "≈2,204 in · ≈300 out"


def test_a_broken_call_and_other_calls_count_with_their_flags() -> None:
    failed = TurnFailed(
        discussion_id=D,
        seq=6,
        message_id=105,
        participant_id=ARCH,
        start_seq=5,
        error_kind="timeout",
        error_message="no answer",
        input_tokens=50,
        output_tokens=3,
    )
    view = project(room(), [started(5), failed], now=NOW).view
    assert label(view) == "≈50 in · ≈3 out"
    call = CallRecorded(discussion_id=D, seq=7, participant_id=ARCH, purpose="ballot", input_tokens=7, output_tokens=1)
    clean = project(room(), [call]).view
    assert label(clean) == "7 in · 1 out"


def test_text_that_arrives_after_the_turn_ended_or_a_pause_does_not_bring_the_estimate_back() -> None:
    view = project(room(), [started(5), completed(6, 5)], streaming={5: (0, "x" * 400)}, now=NOW).view
    assert label(view) == "1,204 in · 240 out"
    view = project(room(), [started(5)], streaming={5: (0, "x" * 400)}, now=NOW).view
    paused = project(view, [DiscussionPaused(discussion_id=D, seq=6, reason="budget")], now=NOW).view
    assert label(paused) == "0 tokens"
