"""Templates rewrite title, body and fields per route and per integration, in a sandbox."""

from __future__ import annotations

from typing import Any

import pytest

from tidings import ConfigError, Message
from tidings.config import parse_config
from tidings.templates import Template, TemplateError, apply_templates

ALERT = Message(
    "Disk full",
    "92% used",
    priority="high",
    labels={"env": "prod", "alertname": "DiskFull", "host": "web-01"},
    fields={"count": "3"},
)


def test_a_template_rewrites_title_body_and_fields() -> None:
    t = Template(
        title="[{{ labels.env | upper }}] {{ title }}",
        body="{{ body }} on {{ labels.host }}",
        fields={"Host": "{{ labels.host }}", "Seen": "{{ fields.count }}x", "Missing": "{{ labels.nope }}"},
    )
    m = t.apply(ALERT)
    assert m.title == "[PROD] Disk full"
    assert m.body == "92% used on web-01"
    assert m.field_map() == {"Host": "web-01", "Seen": "3x", "Missing": ""}
    assert m.labels == ALERT.labels and m.priority == ALERT.priority


def test_an_empty_rendered_title_keeps_the_original() -> None:
    assert Template(title="{{ labels.nope }}").apply(ALERT).title == "Disk full"


def test_templates_apply_in_order() -> None:
    route = Template(title="{{ title }} (route)")
    integration = Template(title="{{ title }} (integration)")
    assert apply_templates(ALERT, route, None, integration).title == "Disk full (route) (integration)"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ title.__class__.__init__.__globals__ }}",
        "{{ labels.update({'x': 1}) }}",
        "{{ range(10**9) | list }}",
    ],
)
def test_the_sandbox_refuses_to_reach_into_python(source: str) -> None:
    with pytest.raises(TemplateError, match="template failed"):
        Template(body=source).apply(ALERT)


def test_a_syntax_error_is_a_config_problem_with_its_path() -> None:
    with pytest.raises(ConfigError) as exc:
        parse_config({"routes": [{"to": ["inbox"], "template": {"title": "{{ title "}}]})
    assert any(p.startswith("routes[0].template.title:") and "syntax error" in p for p in exc.value.problems)


async def test_route_then_integration_templates_reach_the_channel(make_hub: Any) -> None:
    hub = await make_hub(
        {
            "integrations": {"inbox": {"kind": "inbox", "template": {"title": "{{ title }} [inbox]"}}},
            "routes": [{"name": "prod", "match": {"labels": {"env": "prod"}}, "to": ["inbox"],
                        "template": {"title": "PROD: {{ title }}"}}],
        }
    )
    receipt = await hub.notify(ALERT)
    await hub.wait(receipt.id)
    item = (await hub.inbox())["items"][0]
    assert item["message"]["title"] == "PROD: Disk full [inbox]"
    stored = await hub.message(receipt.id)
    assert stored["title"] == "Disk full", "the stored message is the original; templates shape deliveries"
    preview = hub.preview(ALERT)
    assert preview[0]["payload"]["title"] == "PROD: Disk full [inbox]"


async def test_a_template_that_fails_at_send_time_makes_the_delivery_dead(make_hub: Any) -> None:
    hub = await make_hub({"integrations": {"inbox": {"kind": "inbox", "template": {"body": "{{ labels.update({'x': 1}) }}"}}}})
    receipt = await hub.notify(ALERT)
    d = (await hub.wait(receipt.id))["deliveries"][0]
    assert d["status"] == "dead" and d["last_error"].startswith("template failed")
