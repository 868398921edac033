"""Durations and sizes as configuration values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from tidings.units import Duration, Size, parse_duration, parse_size


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("90s", 90.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h 30m", 5400.0),
        ("2h15m30s", 8130.0),
        ("500ms", 0.5),
        ("1s500ms", 1.5),
        ("1.5h", 5400.0),
        ("0.25s", 0.25),
        ("2d", 172800.0),
        ("1w", 604800.0),
        ("5M", 300.0),
        ("10S", 10.0),
        (" 5m ", 300.0),
        ("10", 10.0),
        ("2.5", 2.5),
        ("0", 0.0),
        ("0s", 0.0),
        (3, 3.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_durations(value: Any, seconds: float) -> None:
    assert parse_duration(value) == pytest.approx(seconds)
    assert isinstance(parse_duration(value), float)


@pytest.mark.parametrize(
    "value",
    ["", " ", "m", "abc", "5 parsecs", "5x", "5m30", "m5", "1h-30m", "--5m", "5mm", "1,5h", "5 minutes",
     "nan", "inf", "-inf", "NaN", float("nan"), float("inf"), None, [], {}, True, False, b"5m"],
)
def test_garbage_durations_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("value", [-1, -0.5, "-1", "-5s", "-1h30m", " -2 "])
def test_negative_durations_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError, match="negative|invalid duration"):
        parse_duration(value)


def test_duration_error_messages_show_the_value_and_examples() -> None:
    with pytest.raises(ValueError) as info:
        parse_duration("5 parsecs")
    assert "'5 parsecs'" in str(info.value) and "5m" in str(info.value)
    with pytest.raises(ValueError, match="can't be negative"):
        parse_duration(-3)


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("1MiB", 1024**2),
        ("1mib", 1024**2),
        ("5MB", 5_000_000),
        ("512k", 512 * 1024),
        ("512K", 512 * 1024),
        ("512KiB", 512 * 1024),
        ("512KB", 512_000),
        ("1kb", 1000),
        ("1M", 1024**2),
        ("1G", 1024**3),
        ("2GiB", 2 * 1024**3),
        ("1GB", 1_000_000_000),
        ("1.5MiB", 1572864),
        ("100b", 100),
        ("100", 100),
        (" 1 MiB ", 1024**2),
        (1048576, 1048576),
        (1, 1),
    ],
)
def test_sizes(value: Any, size: int) -> None:
    assert parse_size(value) == size
    assert isinstance(parse_size(value), int)


@pytest.mark.parametrize(
    "value",
    ["", "lots", "1TB", "1 MiB 2", "MiB", "-1", "-1MiB", "1e6", "0x10", "1,5MB", 0, -1, "0", "0MiB", "0.1b",
     1.5, float("nan"), None, True, [], b"1MiB"],
)
def test_garbage_sizes_are_rejected(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_the_annotated_types_validate_in_models() -> None:
    class Settings(BaseModel):
        wait: Duration = 1.0
        limit: Size = 1024

    s = Settings.model_validate({"wait": "1h30m", "limit": "2MiB"})
    assert s.wait == 5400.0 and s.limit == 2 * 1024**2
    assert Settings().wait == 1.0
    with pytest.raises(ValidationError) as info:
        Settings.model_validate({"wait": "soon", "limit": "huge"})
    errors = {e["loc"][0]: e["msg"] for e in info.value.errors()}
    assert "invalid duration 'soon'" in errors["wait"]
    assert "invalid size 'huge'" in errors["limit"]
    schema = Settings.model_json_schema()
    assert set(schema["properties"]) == {"wait", "limit"}
