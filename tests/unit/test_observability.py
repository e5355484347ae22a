"""Metrics move as the engine, runner and follower report; logs are JSON and carry the discussion id."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import socket
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from backend import observability as obs
from backend.observability import REGISTRY
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider

TEST_PROVIDERS = ("test-ok", "test-failed", "test-bounds", "test-render", "test-serve")


@pytest.fixture(autouse=True)
def _test_providers():
    """Each test counts under its own provider, plugged in by code as a test provider is: such providers keep
    their names and model names as labels (a name only a user typed would count as "other")."""
    for name in TEST_PROVIDERS:
        registry.register_provider(name, ScriptedProvider(["unused"]))
    yield
    for name in TEST_PROVIDERS:
        registry.unregister_provider(name)


def value(name: str, **labels: str) -> float:
    """A sample's current value (0 when the label set has not been used yet)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0


# --- metrics -------------------------------------------------------------------------------------------------


def test_a_successful_call_counts_its_call_latency_first_token_tokens_and_cost():
    p = "test-ok"
    obs.record_call(
        p,
        "model-a",
        status="ok",
        latency_s=1.5,
        first_token_s=0.2,
        input_tokens=120,
        output_tokens=30,
        cached_tokens=100,
        cost_usd=0.0125,
    )
    obs.record_call(p, "model-a", status="ok", latency_s=0.5, first_token_s=0.1, input_tokens=10, output_tokens=5)

    assert value("maestro_model_calls_total", provider=p, model="model-a", status="ok") == 2
    assert value("maestro_model_calls_total", provider=p, model="model-a", status="failed") == 0
    assert value("maestro_model_latency_seconds_count", provider=p) == 2
    assert value("maestro_model_latency_seconds_sum", provider=p) == pytest.approx(2.0)
    assert value("maestro_model_latency_seconds_bucket", provider=p, le="1.0") == 1
    assert value("maestro_time_to_first_token_seconds_count", provider=p) == 2
    assert value("maestro_time_to_first_token_seconds_sum", provider=p) == pytest.approx(0.3)
    assert value("maestro_tokens_total", provider=p, direction="input") == 130
    assert value("maestro_tokens_total", provider=p, direction="output") == 35
    assert value("maestro_tokens_total", provider=p, direction="cached") == 100
    assert value("maestro_cost_usd_total", provider=p) == pytest.approx(0.0125)
    assert value("maestro_model_errors_total", provider=p, kind="timeout") == 0


def test_a_failed_call_counts_as_an_error_of_its_kind():
    p = "test-failed"
    obs.record_call(p, "m", status="failed", error_kind="rate_limited", latency_s=0.3)
    obs.record_call(p, "m", status="failed", error_kind="rate_limited", latency_s=0.1, first_token_s=0.05)
    obs.record_call(p, "m", status="failed", error_kind=None, latency_s=0.1)

    assert value("maestro_model_calls_total", provider=p, model="m", status="failed") == 3
    assert value("maestro_model_errors_total", provider=p, kind="rate_limited") == 2
    assert value("maestro_model_errors_total", provider=p, kind="unknown") == 1
    assert value("maestro_model_latency_seconds_count", provider=p) == 3
    # Only the call that streamed something has a first-token time.
    assert value("maestro_time_to_first_token_seconds_count", provider=p) == 1


def test_bad_input_is_bounded_and_a_bad_status_is_refused():
    p = "test-bounds"
    obs.record_call(p, "x" * 500, status="ok", latency_s=-1, input_tokens=-5, cost_usd=-1.0)
    assert value("maestro_model_calls_total", provider=p, model="x" * obs.MAX_LABEL_CHARS, status="ok") == 1
    assert value("maestro_model_latency_seconds_sum", provider=p) == 0
    assert value("maestro_tokens_total", provider=p, direction="input") == 0
    assert value("maestro_cost_usd_total", provider=p) == 0
    obs.record_call("", "", status="ok", latency_s=0.1)
    assert value("maestro_model_calls_total", provider="unknown", model="unknown", status="ok") >= 1
    with pytest.raises(ValueError):
        obs.record_call(p, "m", status="success", latency_s=0.1)  # type: ignore[arg-type]


def test_gauges_follow_discussions_and_viewers_with_calls_and_context_managers():
    d0, v0 = value("maestro_active_discussions"), value("maestro_connected_viewers")
    obs.discussion_started()
    obs.discussion_started()
    assert value("maestro_active_discussions") == d0 + 2
    obs.discussion_stopped()
    assert value("maestro_active_discussions") == d0 + 1
    obs.discussion_stopped()

    obs.viewer_connected()
    assert value("maestro_connected_viewers") == v0 + 1
    obs.viewer_disconnected()

    with obs.discussion_active(), obs.viewer_active(), obs.viewer_active():
        assert value("maestro_active_discussions") == d0 + 1
        assert value("maestro_connected_viewers") == v0 + 2
    with pytest.raises(RuntimeError), obs.discussion_active():
        raise RuntimeError("an engine crash still stops the count")
    assert value("maestro_active_discussions") == d0
    assert value("maestro_connected_viewers") == v0


async def test_the_context_managers_count_while_a_task_runs_and_after_it_is_cancelled():
    d0 = value("maestro_active_discussions")
    running = asyncio.Event()

    async def engine() -> None:
        with obs.discussion_active():
            running.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(engine())
    await running.wait()
    assert value("maestro_active_discussions") == d0 + 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert value("maestro_active_discussions") == d0


def test_render_is_prometheus_text_with_every_metric():
    obs.record_call("test-render", "m", status="failed", error_kind="server", latency_s=2, first_token_s=1)
    body, content_type = obs.render()
    assert content_type.startswith("text/plain") and "version=0.0.4" in content_type
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert {
        "maestro_model_calls",
        "maestro_model_errors",
        "maestro_model_latency_seconds",
        "maestro_time_to_first_token_seconds",
        "maestro_tokens",
        "maestro_cost_usd",
        "maestro_active_discussions",
        "maestro_connected_viewers",
    } <= set(families)
    assert families["maestro_model_calls"].type == "counter"
    assert families["maestro_model_latency_seconds"].type == "histogram"
    assert families["maestro_active_discussions"].type == "gauge"
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in families["maestro_model_errors"].samples}
    assert samples[("maestro_model_errors_total", (("kind", "server"), ("provider", "test-render")))] >= 1
    # Only Maestro's metrics: the dedicated registry has no process or platform collectors.
    assert not any(name.startswith(("process_", "python_")) for name in families)


def test_render_speaks_openmetrics_when_asked():
    body, content_type = obs.render("application/openmetrics-text; version=1.0.0")
    assert content_type.startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")


def test_serve_metrics_exposes_the_registry_on_its_own_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    obs.serve_metrics(port)
    obs.record_call("test-serve", "m", status="ok", latency_s=0.1)
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'maestro_model_calls_total{model="m",provider="test-serve",status="ok"} 1.0' in text


# --- logging -------------------------------------------------------------------------------------------------


@pytest.fixture
def log_lines():
    """configure_logging() writing into a buffer; returns a function giving the JSON objects logged so far."""
    root = logging.getLogger()
    old_level = root.level
    handler = obs.configure_logging(json=True, level=logging.DEBUG)
    buffer = io.StringIO()
    handler.setStream(buffer)
    yield lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]
    root.removeHandler(handler)
    root.setLevel(old_level)


def test_each_line_is_one_json_object_with_time_level_logger_message_and_extras(log_lines):
    logging.getLogger("maestro.test").info("turn done in %s ms", 12, extra={"participant": "Architect", "tokens": 40})
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("maestro.test").exception("it broke")

    first, second = log_lines()
    assert first["level"] == "INFO" and first["logger"] == "maestro.test"
    assert first["message"] == "turn done in 12 ms"
    assert first["participant"] == "Architect" and first["tokens"] == 40
    assert first["time"].endswith("+00:00") and "T" in first["time"]
    assert "discussion_id" not in first  # nothing bound here
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exception"]


def test_configure_logging_is_idempotent(log_lines):
    again = obs.configure_logging(json=True, level=logging.DEBUG)
    try:
        ours = [h for h in logging.getLogger().handlers if getattr(h, "_maestro", False)]
        assert ours == [again]
    finally:
        logging.getLogger().removeHandler(again)


async def test_the_discussion_id_reaches_lines_in_the_context_child_tasks_and_db_threads(log_lines):
    log = logging.getLogger("maestro.engine-test")

    async def child(name: str) -> None:
        await asyncio.sleep(0)
        log.info("child %s", name)

    async def engine(discussion_id: int) -> None:
        with obs.discussion_context(discussion_id):
            log.info("engine start")
            await asyncio.gather(child("a"), child("b"))
            await asyncio.create_task(child("task"))
            await asyncio.to_thread(log.info, "in the db thread")  # how run_db runs database steps
            # A heartbeat-like task created inside keeps the id even when it logs after the block has ended.
            late = asyncio.create_task(child("late"))
        await late
        log.info("engine after its block")

    async def bound_engine(discussion_id: int) -> None:
        obs.bind_discussion(discussion_id)  # for the rest of this task only
        log.info("bound start")
        await asyncio.create_task(child("bound"))

    log.info("before")
    await asyncio.gather(engine(7), engine(8), asyncio.create_task(bound_engine(9)))
    log.info("after")
    assert obs.current_discussion() is None  # bind_discussion in a task does not leak to its creator

    lines = log_lines()
    by_message: dict[str, set] = {}
    for line in lines:
        by_message.setdefault(line["message"], set()).add(line.get("discussion_id"))
    assert by_message["before"] == {None} and by_message["after"] == {None}
    assert by_message["engine start"] == {7, 8}
    assert by_message["child a"] == {7, 8} and by_message["child b"] == {7, 8}
    assert by_message["child task"] == {7, 8}
    assert by_message["in the db thread"] == {7, 8}
    assert by_message["child late"] == {7, 8}
    assert by_message["engine after its block"] == {None}
    assert by_message["bound start"] == {9} and by_message["child bound"] == {9}


def test_an_explicit_discussion_id_in_extra_wins_and_unbind_restores(log_lines):
    log = logging.getLogger("maestro.test")
    token = obs.bind_discussion(3)
    try:
        log.info("bound")
        log.info("explicit", extra={"discussion_id": 11})
    finally:
        obs.unbind_discussion(token)
    log.info("unbound")
    assert [line.get("discussion_id") for line in log_lines()] == [3, 11, None]


def test_text_mode_names_the_discussion():
    handler = obs.configure_logging(json=False, level=logging.INFO)
    buffer = io.StringIO()
    handler.setStream(buffer)
    try:
        with obs.discussion_context(5):
            logging.getLogger("maestro.test").info("hello")
        logging.getLogger("maestro.test").info("bye")
    finally:
        logging.getLogger().removeHandler(handler)
    first, second = buffer.getvalue().splitlines()
    assert first.endswith("INFO maestro.test [discussion 5]: hello")
    assert second.endswith("INFO maestro.test: bye")
