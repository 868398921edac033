"""`import tidings`, `tidings --help` and `tidings version` load nothing heavy: the hub,
SQLAlchemy, aiohttp, FastAPI, uvicorn and pydantic wait until a command needs them.
(How fast that is: bench/cli_start.py.)"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("tidings.hub", "sqlalchemy", "aiohttp", "fastapi", "uvicorn", "pydantic", "yaml", "structlog", "rich")

RUN = """
import json, sys
{code}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", RUN.format(code=code, heavy=HEAVY)], capture_output=True, text=True,
                         check=True, timeout=60).stdout
    return json.loads(out.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "code",
    [
        "import tidings",
        "import tidings.cli",
        "from tidings.cli import app\ntry:\n    app(['--help'])\nexcept SystemExit:\n    pass",
        "from tidings.cli import app\ntry:\n    app(['version'])\nexcept SystemExit:\n    pass",
        "from tidings.cli import app\ntry:\n    app(['--version'])\nexcept SystemExit:\n    pass",
        "from tidings.cli import app\ntry:\n    app(['send', '--help'])\nexcept SystemExit:\n    pass",
    ],
    ids=["import tidings", "import tidings.cli", "--help", "version", "--version", "send --help"],
)
def test_nothing_heavy_is_loaded(code: str) -> None:
    assert loaded(code) == []


def test_the_public_names_still_import() -> None:
    import tidings

    assert tidings.Hub.__name__ == "Hub" and tidings.Message.__name__ == "Message"
    from tidings import Outcome, Priority, Receipt

    assert Outcome and Priority and Receipt
    with pytest.raises(AttributeError):
        tidings.Nope  # noqa: B018
    assert "Hub" in dir(tidings)
