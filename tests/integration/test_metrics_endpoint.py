"""GET /metrics over HTTP, on the API app (`api_app()`) with a stand-in for Reflex mounted beneath, as in the app."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from backend import observability as obs
from backend.api import api_app, listed_routes
from backend.providers import registry
from backend.providers.scripted import ScriptedProvider


@pytest.fixture
def client():
    app = api_app()

    async def fallback(scope, receive, send):  # stands in for Reflex, mounted at "" beneath our routes
        await PlainTextResponse("reflex", status_code=200)(scope, receive, send)

    app.mount("", fallback)
    # Calls count under a provider plugged in by code (a name only a user typed would be labelled "other").
    registry.register_provider("endpoint-test", ScriptedProvider(["unused"]))
    with TestClient(app, client=("127.0.0.1", 50000)) as c:  # a scraper on this machine: no token needed
        yield c
    registry.unregister_provider("endpoint-test")


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_metrics_serves_prometheus_text_that_moves_with_the_calls(client):
    obs.record_call(
        "endpoint-test", "m1", status="ok", latency_s=0.8, first_token_s=0.1, input_tokens=50, output_tokens=7
    )
    before = client.get("/metrics")
    assert before.status_code == 200
    assert before.headers["content-type"].startswith("text/plain")
    assert "version=0.0.4" in before.headers["content-type"]
    assert before.headers["cache-control"] == "no-store"
    key = ("maestro_model_calls_total", (("model", "m1"), ("provider", "endpoint-test"), ("status", "ok")))
    assert _samples(before.text)[key] >= 1

    obs.record_call("endpoint-test", "m1", status="ok", latency_s=0.2)
    with obs.viewer_active():
        after = _samples(client.get("/metrics").text)
        viewers_during = after[("maestro_connected_viewers", ())]
    assert after[key] == _samples(before.text)[key] + 1
    assert viewers_during == _samples(client.get("/metrics").text)[("maestro_connected_viewers", ())] + 1
    tokens = ("maestro_tokens_total", (("direction", "input"), ("provider", "endpoint-test")))
    assert after[tokens] >= 50


def test_metrics_answers_openmetrics_when_the_scraper_asks(client):
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.rstrip().endswith("# EOF")


def test_only_get_and_head_are_ours_everything_else_falls_through_to_the_app_beneath(client):
    assert client.head("/metrics").status_code == 200
    assert client.post("/metrics").text == "reflex"  # Starlette prefers the mount's full match
    assert client.get("/").text == "reflex"
    assert client.get("/room/1").text == "reflex"


def test_api_routes_stay_off_the_paths_reflex_serves():
    paths = [r.path for r in listed_routes(api_app()) if isinstance(r, Route)]
    assert {"/metrics", "/api/decisions/{decision_id:int}.{fmt:str}", "/api/openapi.json", "/api/docs"} <= set(paths)
    assert {"/api/session", "/api/discussions", "/api/discussions/{discussion_id:int}/events"} <= set(paths)
    # Reflex's own backend paths (/_event, /_upload, /ping, /_health) and every page fall through to the app.
    assert all(p == "/metrics" or p.startswith(("/api/", "/auth/", "/export/")) for p in paths)
