"""The room's event-to-view projection (maestro_ui/projection/room.py): plain data, no browser, no Reflex.

One test per event type the room shows, and the rule the follower relies on: a log replayed at once gives the same
view as the same events applied one batch at a time, and an event applied twice counts once."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta

from backend.events.schema import (
    CallRecorded,
    ContextSummarised,
    DecisionSignedOff,
    DiscussionCreated,
    DiscussionFinished,
    DiscussionPaused,
    HumanInputAnswered,
    HumanInputRequested,
    HumanMessagePosted,
    MemberChanged,
    PollOpened,
    RunStarted,
    StepReport,
    TurnCompleted,
    TurnFailed,
    TurnRetryRequested,
    TurnStarted,
    TurnStatus,
)
from backend.models.base import utcnow
from maestro_ui.projection.room import RoomView, agent_row, human_row, presence, project

NOW = utcnow()
D = 7  # the discussion
ME, OLIVE = 10, 11  # people
ARCH, SEC = 1, 2  # agents


def room(**fields) -> RoomView:
    """A room as it is loaded: two agents, me (a decision maker who owns it) and Olive (an observer)."""
    view = RoomView(
        me=ME,
        is_owner=True,
        status="draft",
        rounds=2,
        my_role="decision_maker",
        agents=[agent_row(ARCH, "Architect", "offline", "smollm2"), agent_row(SEC, "Security", "openai", "gpt-4o")],
        humans=[
            human_row(ME, "Sam", "sam", "decision_maker", owner=True, online=True),
            human_row(OLIVE, "Olive", "olive", "observer", owner=False, online=False),
        ],
    )
    for name, value in fields.items():
        setattr(view, name, value)
    return view


def started(seq: int, agent: int = ARCH, name: str = "Architect", **kw) -> TurnStarted:
    return TurnStarted(
        discussion_id=D, seq=seq, at=NOW, message_id=100 + seq, participant_id=agent, author_name=name, round=1, **kw
    )


def completed(seq: int, start: int, agent: int = ARCH, **kw) -> TurnCompleted:
    fields = dict(content="Use PostgreSQL.", input_tokens=100, output_tokens=20, cost_usd=0.002, latency_ms=1500)
    return TurnCompleted(
        discussion_id=D, seq=seq, message_id=100 + start, participant_id=agent, start_seq=start, **(fields | kw)
    )


def agent(view: RoomView, participant_id: int) -> dict:
    return next(a for a in view.agents if a["id"] == participant_id)


def test_projection_never_imports_reflex():
    code = "import sys, maestro_ui.projection.room, maestro_ui.projection.deliberation; print('reflex' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_projection_leaves_the_view_it_was_given_as_it_was():
    before = room()
    kept = repr(before)
    project(before, [RunStarted(discussion_id=D, seq=1), started(2)], now=NOW)
    assert repr(before) == kept


def test_created_sets_the_rounds_and_run_started_queues_the_agents():
    view = project(room(rounds=0), [DiscussionCreated(discussion_id=D, seq=1, topic="t", rounds=3, protocol="x")]).view
    assert view.rounds == 3
    view = project(view, [RunStarted(discussion_id=D, seq=2)]).view
    assert view.status == "running" and view.pause_reason == ""
    assert [a["status"] for a in view.agents] == ["queued", "queued"]


def test_turn_started_opens_a_stream_and_counts_the_time_it_has_run():
    event = started(5, label="for")
    event.at = NOW - timedelta(seconds=12)
    view = project(room(), [event], now=NOW).view
    assert view.streams == [
        {
            "key": "t5",
            "author": "Architect",
            "provider_label": "Offline",
            "model": "smollm2",
            "round": 1,
            "label": "for",
        }
    ]
    row = agent(view, ARCH)
    assert (row["status"], row["elapsed"], row["turn"]) == ("thinking", 12, 5)


def test_text_arriving_makes_a_thinking_agent_streaming_and_a_late_thinking_status_does_not_undo_it():
    view = project(room(), [started(5)], streaming=[5], now=NOW).view
    assert agent(view, ARCH)["status"] == "streaming"
    status = TurnStatus(discussion_id=D, seq=6, start_seq=5, participant_id=ARCH, status="thinking")
    assert agent(project(view, [status]).view, ARCH)["status"] == "streaming"
    slow = TurnStatus(discussion_id=D, seq=6, start_seq=5, participant_id=ARCH, status="slow", detail="30 s")
    row = agent(project(view, [slow]).view, ARCH)
    assert (row["status"], row["detail"]) == ("slow", "30 s")


def test_turn_completed_builds_the_message_row_and_counts_tokens_and_cost():
    out = project(room(), [started(5), completed(6, 5)], now=NOW)
    row = out.view.rows[105]
    assert (row["author"], row["kind"], row["status"], row["content"]) == (
        "Architect",
        "agent",
        "complete",
        "Use PostgreSQL.",
    )
    assert (row["provider_label"], row["model"], row["round"]) == ("Offline", "smollm2", 1)
    assert row["meta"] == "100 in / 20 out tokens · 1.5s · $0.0020"
    assert out.sent == {105: row}
    assert out.live == [("finish", "t5")]
    assert out.view.streams == []
    a = agent(out.view, ARCH)
    assert (a["status"], a["tokens"], a["cost"], a["latency"]) == ("done", 120, "$0.0020", "1.5s")
    assert (out.view.total_tokens, out.view.total_cost) == (120, "$0.0020")


def test_a_reply_cut_at_the_token_cap_is_marked_after_its_text():
    cut = completed(6, 5, content="Use PostgreSQL because", output_tokens=300, finish_reason="length")
    out = project(room(), [started(5), cut], streamed={5: 4}, now=NOW)
    row = out.view.rows[105]
    assert row["content"] == "Use PostgreSQL because"  # the stored text is left as the model wrote it
    assert row["cut"] == "… (cut off at the 300-token reply limit)"
    assert out.sent[105]["cut"] == row["cut"]  # also on the row a watching tab gets
    guessed = completed(6, 5, output_tokens=300, tokens_estimated=True, finish_reason="length")
    assert project(room(), [started(5), guessed], now=NOW).view.rows[105]["cut"].startswith("… (cut off at the ≈300")
    assert project(room(), [started(5), completed(6, 5)], now=NOW).view.rows[105]["cut"] == ""


def test_a_watched_stream_is_not_sent_again_with_its_finished_message():
    out = project(room(), [started(5), completed(6, 5, content="Use PostgreSQL.")], streamed={5: 4}, now=NOW)
    assert out.view.rows[105]["content"] == "Use PostgreSQL."  # the view keeps it whole
    sent = out.sent[105]
    assert (sent["content"], sent["stream"], sent["skip"]) == ("PostgreSQL.", "t5", 4)
    quiet = project(room(), [started(5), completed(6, 5)], streamed={5: 4}, tokens_shown=False, now=NOW)
    assert quiet.sent[105]["content"] == "Use PostgreSQL." and quiet.sent[105]["skip"] == 0


def test_turn_failed_shows_the_error_and_what_it_cost_before_it_broke():
    failed = TurnFailed(
        discussion_id=D,
        seq=6,
        message_id=105,
        participant_id=ARCH,
        start_seq=5,
        error_kind="timeout",
        error_message="the model did not answer",
        partial_content="Use",
        input_tokens=50,
        output_tokens=3,
        cost_usd=0.001,
    )
    view = project(room(), [started(5), failed], now=NOW).view
    row = view.rows[105]
    assert (row["status"], row["content"], row["error"]) == ("failed", "Use", "timeout: the model did not answer")
    assert row["meta"] == "≈50 in / ≈3 out tokens (estimated: the call broke) · $0.0010"
    a = agent(view, ARCH)
    assert (a["status"], a["error"], a["tokens"]) == ("failed", "the model did not answer", 53)
    retry = TurnRetryRequested(discussion_id=D, seq=7, message_id=105, participant_id=ARCH)
    out = project(view, [retry])
    assert out.view.rows[105]["status"] == "queued" and out.sent[105]["status"] == "queued"
    assert (agent(out.view, ARCH)["status"], agent(out.view, ARCH)["error"]) == ("queued", "")


def test_calls_outside_turns_count_toward_the_agent_and_the_room():
    call = CallRecorded(discussion_id=D, seq=3, participant_id=SEC, purpose="ballot", input_tokens=7, cost_usd=2.5)
    view = project(room(), [call]).view
    assert (agent(view, SEC)["tokens"], agent(view, SEC)["cost"]) == (7, "$2.50")
    assert (view.total_tokens, view.total_cost) == (7, "$2.50")


def test_step_reports_and_summaries_are_rows_keyed_by_their_seq():
    report = StepReport(
        discussion_id=D,
        seq=8,
        step="opening",
        succeeded=["Architect"],
        failed=[{"participant": "Security", "error": "x"}],
    )
    summary = ContextSummarised(
        discussion_id=D,
        seq=9,
        participant_id=ARCH,
        author_name="Architect",
        summary="So far…",
        covered_through_seq=4,
        covered=3,
    )
    view = project(room(), [report, summary]).view
    assert view.rows[-8]["kind"] == "report" and view.rows[-8]["meta"] == "1 of 2 agents answered"
    assert view.rows[-8]["content"] == "- **Security**: x"
    assert view.rows[-9]["kind"] == "summary" and view.rows[-9]["content"] == "So far…"
    clean = StepReport(discussion_id=D, seq=10, step="opening", succeeded=["Architect"], failed=[])
    assert -10 not in project(view, [clean]).view.rows


def test_a_posted_message_is_a_human_row():
    out = project(room(), [HumanMessagePosted(discussion_id=D, seq=4, message_id=50, author_name="Sam", content="Hi")])
    row = out.view.rows[50]
    assert (row["kind"], row["author"], row["content"], row["status"]) == ("human", "Sam", "Hi", "complete")


def test_member_changed_adds_a_person_and_my_new_role_changes_what_i_may_do():
    joined = MemberChanged(discussion_id=D, seq=3, participant_id=12, name="Ann", username="ann", role="contributor")
    view = project(room(), [joined]).view
    assert view.humans[-1]["role_label"] == "Contributor" and not view.humans[-1]["online"]
    ask = HumanInputRequested(
        discussion_id=D,
        seq=4,
        prompt_id=1,
        kind="choice",
        prompt="Which?",
        target_roles=["decision_maker"],
        deadline_at=NOW,
    )
    view = project(view, [ask]).view
    assert view.prompts[0]["mine"]
    demoted = MemberChanged(discussion_id=D, seq=5, participant_id=ME, name="Sam", username="sam", role="observer")
    view = project(view, [demoted]).view
    assert (view.my_role, view.my_role_label, view.can_message, view.can_vote) == ("observer", "Observer", False, False)
    assert not view.prompts[0]["mine"]


def test_a_prompt_asked_then_answered_shows_the_answer_in_the_transcript():
    ask = HumanInputRequested(
        discussion_id=D, seq=4, prompt_id=1, kind="choice", prompt="Which?", target_users=["olive"], deadline_at=NOW
    )
    view = project(room(), [ask]).view
    prompt = view.prompts[0]
    assert (prompt["status"], prompt["mine"], prompt["deadline"]) == ("open", False, NOW.isoformat())
    answered = HumanInputAnswered(discussion_id=D, seq=5, prompt_id=1, answer="A", answered_by="Olive")
    view = project(view, [answered]).view
    assert (view.prompts[0]["status"], view.prompts[0]["answer"]) == ("answered", "A")
    assert view.rows[-5]["meta"] == "answered “Which?”" and view.rows[-5]["author"] == "Olive"
    expired = HumanInputAnswered(discussion_id=D, seq=5, prompt_id=1, answer="B", answered_by="", defaulted=True)
    view = project(project(room(), [ask]).view, [expired]).view
    assert view.prompts[0]["status"] == "expired" and view.rows[-5]["author"] == "Maestro"


def test_deliberation_events_go_to_the_panel_and_a_sign_off_moves_the_room_on():
    poll = PollOpened(discussion_id=D, seq=3, poll_id=1, question="?", rule="plurality", options=[], deadline_at=NOW)
    more = DecisionSignedOff(
        discussion_id=D, seq=4, decision_id=1, outcome="more_discussion", actor_name="Sam", extra_rounds=2
    )
    out = project(room(status="awaiting_approval"), [poll, more])
    assert out.deliberation == [poll, more]
    assert (out.view.status, out.view.rounds) == ("running", 4)
    approved = DecisionSignedOff(discussion_id=D, seq=5, decision_id=1, outcome="approved", actor_name="Sam")
    assert project(out.view, [approved]).view.status == "completed"


def test_paused_and_finished_end_the_streams_and_idle_the_busy_agents():
    view = project(room(), [RunStarted(discussion_id=D, seq=1), started(2)], now=NOW).view
    out = project(view, [DiscussionPaused(discussion_id=D, seq=3, reason="Budget reached.")])
    assert (out.view.status, out.view.pause_reason, out.view.streams, out.live) == (
        "paused",
        "Budget reached.",
        [],
        [("clear", "")],
    )
    out = project(view, [DiscussionFinished(discussion_id=D, seq=3, status="completed")])
    assert out.view.status == "completed" and out.live == [("clear", "")]
    assert [a["status"] for a in out.view.agents] == ["idle", "idle"]


def _log() -> list:
    ask = HumanInputRequested(
        discussion_id=D,
        seq=3,
        prompt_id=1,
        kind="choice",
        prompt="Which?",
        target_roles=["decision_maker"],
        deadline_at=NOW,
    )
    return [
        DiscussionCreated(discussion_id=D, seq=1, topic="t", rounds=2, protocol="round_robin"),
        RunStarted(discussion_id=D, seq=2),
        ask,
        started(4),
        completed(5, 4),
        started(6, SEC, "Security"),
        TurnFailed(
            discussion_id=D, seq=7, message_id=106, participant_id=SEC, start_seq=6, error_kind="x", error_message="y"
        ),
        HumanMessagePosted(discussion_id=D, seq=8, message_id=50, author_name="Sam", content="Hi"),
        HumanInputAnswered(discussion_id=D, seq=9, prompt_id=1, answer="A", answered_by="Sam"),
        CallRecorded(discussion_id=D, seq=10, participant_id=ARCH, purpose="consensus", input_tokens=5, cost_usd=0.1),
        MemberChanged(discussion_id=D, seq=11, participant_id=12, name="Ann", username="ann", role="contributor"),
        DiscussionFinished(discussion_id=D, seq=12, status="completed"),
    ]


def test_a_replayed_log_equals_the_same_events_applied_live_and_an_event_applies_once():
    log = _log()
    replayed = project(room(), log, now=NOW).view
    live = room()
    for event in log:
        live = project(live, [event], now=NOW).view
    assert replayed == live
    # A reconnect's replay overlapping what was applied live: nothing counts twice.
    assert project(live, log[-4:], now=NOW).view == live
    assert replayed.total_tokens == 125 and len(replayed.rows) == 4


def test_presence_marks_who_is_online_and_typing_and_keeps_unchanged_rows():
    humans = room().humans
    out = presence(humans, me=ME, seen={OLIVE: 100.0}, typing={OLIVE}, now=103.0, online_for=5.0)
    assert out[0] is humans[0]
    assert (out[1]["online"], out[1]["typing"]) == (True, True)
    gone = presence(out, me=ME, seen={OLIVE: 100.0}, typing=set(), now=200.0, online_for=5.0)
    assert (gone[1]["online"], gone[1]["typing"]) == (False, False)
