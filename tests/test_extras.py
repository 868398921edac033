"""The PostgreSQL driver and the Redis client are extras (``tidings[postgres]``,
``tidings[redis]``): a URL that needs one, used without it, is a one-line error naming the extra.
The packages are hidden from a subprocess (``sys.modules[name] = None`` in a sitecustomize), as if
they weren't installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.fixture
def without(tmp_path: Path) -> dict[str, str]:
    """An environment in which ``import psycopg`` and ``import redis`` fail."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("import sys\nsys.modules['psycopg'] = None\nsys.modules['redis'] = None\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}


def test_a_postgresql_url_without_the_driver_is_one_line_naming_the_extra(tmp_path: Path, without: dict[str, str]) -> None:
    config = tmp_path / "tidings.yaml"
    config.write_text('server: {database: "postgresql://127.0.0.1:5432/test"}\n')
    tidings = Path(sys.executable).parent / "tidings"
    done = subprocess.run([str(tidings), "deliveries", "-c", str(config)], env=without, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "pip install 'tidings[postgres]'" in done.stderr and "psycopg" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_redis_url_without_the_client_names_the_extra(without: dict[str, str]) -> None:
    script = (
        "from tidings.delivery.throttle import SharedLimits\n"
        "from tidings.errors import ConfigError\n"
        "try:\n    SharedLimits('redis://127.0.0.1:6379/0')\n"
        "except ConfigError as exc:\n    print(exc)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], env=without, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "pip install 'tidings[redis]'" in done.stdout and "rate_limit_storage: redis://" in done.stdout


def test_with_the_packages_there_nothing_is_refused() -> None:
    from tidings.delivery.throttle import SharedLimits
    from tidings.extras import require

    require("psycopg", "postgres", "a postgresql:// database")
    assert SharedLimits("redis://127.0.0.1:6379/0").url.startswith("redis://")
