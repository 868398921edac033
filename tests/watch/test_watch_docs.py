"""docs/watching.md's example configuration is valid and means what the page says."""

from __future__ import annotations

from pathlib import Path

import yaml

from tidings.config import parse_config
from tidings.watch import FAIL_AFTER, KINDS, REJECT_AFTER, REJECT_WINDOW

PAGE = Path(__file__).resolve().parents[2] / "docs" / "watching.md"


def test_the_example_configuration_is_valid() -> None:
    example = PAGE.read_text().split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_config(yaml.safe_load(example), env={})
    settings = config.projects["default"]
    assert settings.alerts_to == ["email", "pager", "slack"]
    assert float(settings.alert_cooldown) == 3600.0
    assert float(settings.alert_recover_after) == 300.0
    assert set(settings.alerts_to) <= set(config.integrations)


def test_the_page_names_every_kind_and_the_thresholds_the_code_uses() -> None:
    text = PAGE.read_text()
    for kind in KINDS:
        assert f"| `{kind}` |" in text, kind
    assert f"{FAIL_AFTER} attempts in a row" in text
    assert f"{REJECT_AFTER} inbound requests failed verification within {REJECT_WINDOW / 60:g} minutes" in text
