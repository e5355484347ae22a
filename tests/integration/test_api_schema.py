"""The API against its own schema: schemathesis sends generated requests to every operation /api/openapi.json
describes (a real uvicorn server, a real database, a signed-in person) and checks that no answer is a 5xx and that
every answer is one the schema documents, in status, content type and body.

Half of the requests to a discussion's routes go to one the person owns (with a scripted agent), so the actions
are reached, not only refused. The live event stream is left out: it stays open by design.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from backend.providers import registry
from backend.providers.scripted import ScriptedProvider
from tests.api_server import login, serve_api

# The same examples every run (derandomized), so CI is repeatable; MAESTRO_SCHEMA_EXAMPLES=300 explores further.
EXAMPLES_PER_OPERATION = int(os.environ.get("MAESTRO_SCHEMA_EXAMPLES", "25"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture
def served(sqlite_db) -> Iterator[tuple[str, dict[str, str], int]]:
    """The API on uvicorn, a signed-in person's bearer header, and a discussion they own."""
    registry.register_provider("scripted", ScriptedProvider(["Fine."]))
    with serve_api() as url, httpx.Client(base_url=url, timeout=10) as client:
        auth = login(client, "alex")
        body = {"topic": "Choose a database for Apollo", "agents": [{"persona": "architect", "provider": "scripted"}]}
        created = client.post("/api/discussions", json=body, headers=auth)
        assert created.status_code == 201, created.text
        yield url, auth, created.json()["id"]
    registry.unregister_provider("scripted")


@pytest.fixture
def api_schema(served):
    url, _, _ = served
    return schemathesis.openapi.from_url(f"{url}/api/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema").exclude(path_regex=r"/events$")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    derandomize=os.environ.get("MAESTRO_SCHEMA_EXAMPLES") is None,
    deadline=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure is reported as found
    suppress_health_check=list(HealthCheck),
)
def test_every_answer_is_one_the_schema_documents_and_none_is_a_server_error(case, served):
    url, auth, own = served
    chosen = (case.path_parameters or {}).get("discussion_id")
    if isinstance(chosen, int) and chosen % 2 == 0:
        case.path_parameters["discussion_id"] = own
    logging_out = case.method.upper() == "DELETE" and case.path == "/api/session"
    case.call_and_validate(base_url=url, headers={} if logging_out else auth, checks=CHECKS)


def test_the_docs_page_loads_swagger_ui_from_this_server_only():
    """The Content-Security-Policy allows only 'self' and an install may be offline: no CDN."""
    from starlette.testclient import TestClient

    from backend.api import api_app

    with TestClient(api_app()) as client:
        page = client.get("/api/docs")
        assert page.status_code == 200 and "/api/openapi.json" in page.text
        assert "http://" not in page.text and "https://" not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon.png"):
            assert client.get(f"/api/docs/assets/{asset}").status_code == 200, asset
        assert client.get("/api/docs/assets/..%2F__init__.py").status_code == 404
        schema = client.get("/api/openapi.json").json()
    assert "/api/discussions/{discussion_id}/run" in schema["paths"]
    assert not any(path.startswith(("/metrics", "/auth/", "/export/")) for path in schema["paths"])
