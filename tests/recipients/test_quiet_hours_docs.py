"""The examples of docs/recipients.md "Quiet hours" are valid and do what the page says."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import yaml

from tidings.config import parse_config
from tidings.config.people import QuietHours
from tidings.recipients.quiet import decide_quiet, quiet_period

PAGE = Path(__file__).resolve().parents[2] / "docs" / "recipients.md"
BERLIN = ZoneInfo("Europe/Berlin")


def examples() -> list[str]:
    text = PAGE.read_text()
    section = text[text.index("## Quiet hours"):]
    section = section[: m.start()] if (m := re.search(r"\n## ", section[3:])) else section
    return re.findall(r"```yaml\n(.*?)```", section, re.S)


def at(y: int, mo: int, d: int, h: int, mi: int = 0) -> float:
    return dt.datetime(y, mo, d, h, mi, tzinfo=BERLIN).timestamp()


def test_the_examples_are_valid_and_behave_as_described() -> None:
    project, own = examples()
    config = parse_config(yaml.safe_load(project))
    quiet = config.projects["default"].quiet_hours
    assert quiet is not None and quiet.digest and quiet.timezone == "Europe/Berlin"
    friday_evening = at(2026, 6, 5, 20)
    period = quiet_period(quiet, "Europe/Berlin", friday_evening)
    assert period is not None and period.end == at(2026, 6, 8, 8)
    assert decide_quiet(quiet, "Europe/Berlin", "low", friday_evening)[0] == "drop"
    assert decide_quiet(quiet, "Europe/Berlin", "critical", friday_evening)[0] == "deliver"
    assert decide_quiet(quiet, "Europe/Berlin", "medium", at(2026, 6, 8, 3))[2] == \
        "held by quiet hours until 08:00 Europe/Berlin"
    mine = QuietHours.model_validate(yaml.safe_load(own))
    assert decide_quiet(mine, "Europe/Berlin", "high", at(2026, 6, 2, 23))[0] == "deliver"
    assert decide_quiet(mine, "Europe/Berlin", "medium", at(2026, 6, 6, 8))[1] == at(2026, 6, 6, 9)


def test_the_page_says_what_monday_to_friday_nights_leave_out() -> None:
    nights = QuietHours(windows=[{"days": "mon-fri", "start": "19:00", "end": "08:00"}])
    assert quiet_period(nights, "Europe/Berlin", at(2026, 6, 8, 3)) is None  # Sunday night, into Monday
    assert quiet_period(nights, "Europe/Berlin", at(2026, 6, 6, 3)) is not None  # Friday night, into Saturday
    assert "Sunday night is *not* quiet" in PAGE.read_text()
