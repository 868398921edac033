"""The OpenAPI document a client generator can trust (security scheme, answer and error models,
``/hooks`` documented, no developer notes), the documentation pages on vendored assets, and the
stricter input checks the document promises."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import pytest

from tidings import Hub
from tidings.config import parse_config
from tidings.server import create_app

SQLITE_ONLY = pytest.mark.parametrize("db", ["sqlite"])
MESSAGES = "/api/v1/messages"
ERROR_REF = "#/components/schemas/ErrorBody"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    document: dict[str, Any] = create_app(Hub(parse_config({}))).openapi()
    return document


def operations(spec: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method.upper(), path, op) for path, ops in spec["paths"].items() for method, op in ops.items()]


def test_a_bearer_scheme_guards_every_api_route_and_nothing_else(spec: dict[str, Any]) -> None:
    schemes = spec["components"]["securitySchemes"]
    assert schemes == {"token": {"type": "http", "scheme": "bearer", "bearerFormat": "tidings API token",
                                 "description": schemes["token"]["description"]}}
    for method, path, op in operations(spec):
        if path.startswith("/api/"):
            assert op.get("security") == [{"token": []}], (method, path)
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"], (method, path)
        else:
            assert "security" not in op, (method, path)


def test_every_answer_has_a_schema_and_every_error_the_real_error_body(spec: dict[str, Any]) -> None:
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    error = spec["components"]["schemas"]["ErrorBody"]
    assert set(error["properties"]) == {"error", "detail"} and error["required"] == ["error", "detail"]
    for method, path, op in operations(spec):
        responses = op["responses"]
        assert any(s.startswith("2") for s in responses), (method, path)
        for status, response in responses.items():
            if status == "304":  # Not Modified has no body (the calendar feed's conditional GET)
                assert "content" not in response, (method, path)
                continue
            content = response["content"]
            if status[0] in "45":
                assert content == {"application/json": {"schema": {"$ref": ERROR_REF}}}, (method, path, status)
            else:
                schemas = [media["schema"] for media in content.values()]
                assert all(s not in ({}, None) for s in schemas), (method, path, status)
        if path.startswith("/api/"):
            assert {"400", "401"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if op.get("parameters") or "requestBody" in op:
            assert ("422" in responses) != path.startswith("/hooks/"), (method, path)
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(responses), (method, path)


def test_each_route_answers_the_statuses_it_can(spec: dict[str, Any]) -> None:
    paths = spec["paths"]
    assert "409" in paths["/api/v1/deliveries/{delivery_id}/retry"]["post"]["responses"]
    assert "409" in paths["/api/v1/events/{event_id}/replay"]["post"]["responses"]
    assert {"200", "202"} <= set(paths[MESSAGES]["post"]["responses"])
    assert "Idempotency-Replay" in paths[MESSAGES]["post"]["responses"]["200"]["headers"]
    assert "503" in paths["/readyz"]["get"]["responses"]
    assert set(paths["/metrics"]["get"]["responses"]["200"]["content"]) == {"text/plain"}


def test_the_webhook_endpoint_is_documented_as_it_behaves(spec: dict[str, Any]) -> None:
    op = spec["paths"]["/hooks/{integration}"]["post"]
    assert set(op["requestBody"]["content"]) == {"application/json", "application/x-www-form-urlencoded"}
    assert set(op["responses"]) == {"200", "400", "401", "404", "413", "415"}
    assert op["parameters"][0]["name"] == "integration" and op["parameters"][0]["in"] == "path"
    assert set(op["responses"]["200"]["content"]) == {"application/json", "text/plain"}
    assert "HookAccepted" in spec["components"]["schemas"]


def test_request_bodies_have_examples_that_the_schema_accepts(spec: dict[str, Any]) -> None:
    import jsonschema

    components = spec["components"]["schemas"]
    message = components["MessageIn"]
    for path, name in ((MESSAGES, "MessageIn"), ("/api/v1/preview", "MessageIn"), ("/api/v1/silences", "SilenceIn")):
        media = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        examples = [e["value"] for e in media.get("examples", {}).values()] + components[name].get("examples", [])
        assert examples, path
        for example in examples:
            jsonschema.validate(example, {**components[name], "components": spec["components"]})
    assert message["properties"]["labels"]["additionalProperties"]["anyOf"][0]["type"] == "string"
    assert {"type": "null"} not in message["properties"]["labels"]["additionalProperties"]["anyOf"]


def _texts(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k in ("description", "summary") and isinstance(v, str)] + [
            t for v in node.values() for t in _texts(v)
        ]
    if isinstance(node, list):
        return [t for v in node for t in _texts(v)]
    return []


def test_no_developer_notes_leak_into_the_document(spec: dict[str, Any]) -> None:
    texts = _texts(spec)
    assert len(texts) > 50
    for text in texts:
        assert not re.search(r"``|:(mod|class|func|meth):|Served by|framework|MessageError|Build it with", text), text
    for method, path, op in operations(spec):
        assert op.get("summary") and op.get("description"), (method, path)


class _Assets(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@SQLITE_ONLY
async def test_docs_and_redoc_load_only_assets_that_tidings_serves(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    for page in ("/docs", "/redoc"):
        r = await api.get(page, auth=False)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert not re.search(r"https?://", r.text), r.text  # no CDN, no Google fonts
        parser = _Assets()
        parser.feed(r.text)
        assert parser.urls, page
        for url in parser.urls:
            assert url.startswith("/static/"), url
            asset = await api.get(url, auth=False)
            assert asset.status_code == 200 and len(asset.content) > 500, url
            expected = {"js": "javascript", "css": "text/css", "png": "image/png"}[url.rsplit(".", 1)[1]]
            assert expected in asset.headers["content-type"], (url, asset.headers["content-type"])
    assert '"persistAuthorization": true' in (await api.get("/docs", auth=False)).text
    assert (await api.get("/static/NOTICE.txt", auth=False)).status_code == 200


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"labels": {"team": None}}, "labels.team: must be text, a number or a boolean, not null"),
        ({"fields": {"host": None}}, "fields.host: must be text, a number or a boolean, not null"),
        ({"fields": [["host", "db-1"], ["free", None]]}, "fields[1]: must be text, a number or a boolean, not null"),
    ],
)
async def test_null_label_and_field_values_are_refused_with_their_path(
    make_api: Any, payload: dict[str, Any], expected: str
) -> None:
    api = await make_api({"integrations": {"inbox": {"kind": "inbox"}}}, dispatch=False)
    for path in (MESSAGES, "/api/v1/preview"):
        r = await api.post(path, json={"title": "t", "to": ["inbox"], **payload})
        assert r.status_code == 422, (path, r.text)
        assert expected in r.json()["detail"], r.json()
    r = await api.post(MESSAGES, json={"title": "t", "to": ["inbox"], "labels": {"n": 3, "b": True}, "fields": {"x": 1.5}})
    assert r.status_code == 202, r.text


@SQLITE_ONLY
async def test_unknown_or_repeated_query_parameters_are_refused(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.get("/api/v1/deliveries", params={"statsu": "dead"})
    assert r.status_code == 422 and r.json()["detail"] == ["query.statsu: Unknown query parameter"], r.text
    r = await api.get("/api/v1/events?before=a&before=b")
    assert r.status_code == 422 and r.json()["detail"] == ["query.before: Give it once"], r.text
    r = await api.post("/api/v1/integrations/nope/test?x=1")
    assert r.status_code == 422, r.text
    r = await api.post(MESSAGES + "?priority=high", json={"title": "t"})  # the pure-ASGI route alike
    assert r.status_code == 422 and r.json()["detail"] == ["query.priority: Unknown query parameter"], r.text
    assert (await api.get("/api/v1/deliveries", params={"status": "dead", "limit": 5})).status_code == 200


@SQLITE_ONLY
async def test_a_silence_matches_values_with_commas_and_refuses_bad_label_names(make_api: Any) -> None:
    api = await make_api(dispatch=False)
    r = await api.post("/api/v1/silences", json={"matchers": {"service": "a,b=c"}, "duration": "2h"})
    assert r.status_code == 201, r.text
    assert r.json()["matchers"] == {"service": "a,b=c"}
    r = await api.post("/api/v1/silences", json={"matchers": {"bad name": "x"}, "duration": "2h"})
    assert r.status_code == 422 and "not a label name" in r.json()["detail"], r.text
    r = await api.post("/api/v1/silences", json={"matchers": {"a": "x\u0000"}, "duration": "2h"})
    assert r.status_code == 422 and "NUL" in r.json()["detail"], r.text


@SQLITE_ONLY
async def test_a_receive_only_integration_has_nothing_to_enable_and_its_listing_no_sender_keys(make_api: Any) -> None:
    api = await make_api({"integrations": {"inbox": {"kind": "inbox"}, "gh": {"kind": "github", "secret": "s"}}},
                         dispatch=False)
    for action in ("enable", "disable"):
        r = await api.post(f"/api/v1/integrations/gh/{action}")
        assert r.status_code == 404 and "only receives" in r.json()["detail"], r.text
    listed = {i["name"]: i for i in (await api.get("/api/v1/integrations")).json()}
    assert "stats" in listed["inbox"] and "inbound" not in listed["inbox"]
    assert "inbound" in listed["gh"] and not {"stats", "limits", "circuit"} & set(listed["gh"])
