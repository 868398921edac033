"""Running the real ``tidings`` executable in a scratch directory, for the CLI tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

TIDINGS = Path(sys.executable).with_name("tidings")
TOKEN = re.compile(r"\btdg_[A-Za-z0-9_\-]{43}\b")


# -- running the command ---------------------------------------------------------------------
def cli_env(cwd: Path, **extra: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env.update(TIDINGS_KEY_FILE=str(cwd / "tidings.key"), COLUMNS="200", NO_COLOR="1", PYTHONUNBUFFERED="1")
    if env.get("PYTHONPATH"):  # `PYTHONPATH=src pytest`: the command runs elsewhere, with the same code
        env["PYTHONPATH"] = os.pathsep.join(str(Path(p).resolve()) for p in env["PYTHONPATH"].split(os.pathsep) if p)
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


@dataclass
class Ran:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    def __post_init__(self) -> None:
        assert "Traceback" not in self.out + self.err, f"tidings {' '.join(self.args)} crashed:\n{self.err}"

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    def ok(self) -> Ran:
        assert self.code == 0, f"tidings {' '.join(self.args)} exited {self.code}:\n{self.out}\n{self.err}"
        return self

    def one_line_error(self, *fragments: str, code: int | None = None) -> str:
        """The command failed with exactly one line on stderr containing every fragment."""
        assert self.code != 0, f"tidings {' '.join(self.args)} should have failed:\n{self.out}"
        if code is not None:
            assert self.code == code, (self.code, self.err)
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, f"expected one line on stderr, got:\n{self.err}"
        assert lines[0].startswith("error: "), lines[0]
        for f in fragments:
            assert f in lines[0], (f, lines[0])
        return lines[0]


def tidings(cwd: Path, *args: str, stdin: str | None = None, timeout: float = 60, **env: str | None) -> Ran:
    proc = subprocess.run(
        [str(TIDINGS), *args],
        cwd=cwd,
        env=cli_env(cwd, **env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Ran(args, proc.returncode, proc.stdout, proc.stderr)


def in_process(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Ran:
    """Run a command that never starts the hub (``config validate``, ``config schema``) in this
    process: a second faster. Commands that start the hub configure logging for the whole
    process, so they always run as the real executable."""
    from typer.testing import CliRunner

    from tidings.cli import app

    monkeypatch.chdir(cwd)
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "200", "NO_COLOR": "1"})
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return Ran(args, result.exit_code, result.stdout, result.stderr)


def db_rows(cwd: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(cwd / "tidings.db", timeout=10)
    try:
        return conn.execute(sql, params).fetchall()
    finally:
        conn.close()


def key_file_keys(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Project:
    path: Path
    token: str


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Project:
    """One `tidings init`, copied into each test's directory (init takes a second)."""
    path = tmp_path_factory.mktemp("init-template")
    ran = tidings(path, "init").ok()
    [token] = TOKEN.findall(ran.out)
    return Project(path, token)


@pytest.fixture
def project(initialised: Project, tmp_path: Path) -> Project:
    for f in initialised.path.iterdir():
        shutil.copy2(f, tmp_path / f.name)
    return Project(tmp_path, initialised.token)



@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def start(processes: list[subprocess.Popen[bytes]], cwd: Path, *args: str, log: str, **env: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [str(TIDINGS), *args],
        cwd=cwd,
        env=cli_env(cwd, **env),
        stdin=subprocess.DEVNULL,
        stdout=open(cwd / f"{log}.out", "wb"),  # noqa: SIM115 - closed with the process
        stderr=open(cwd / f"{log}.err", "wb"),  # noqa: SIM115
    )
    processes.append(proc)
    return proc


def stop(proc: subprocess.Popen[bytes], timeout: float = 20) -> tuple[int, float]:
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout)
    return code, time.monotonic() - started


def wait_until(check: Any, timeout: float = 30, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
        except (httpx.TransportError, sqlite3.OperationalError):
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout}s")
        time.sleep(0.05)


def with_dead_end(project: Project) -> None:
    """Add an integration whose peer refuses connections and that gives up at once."""
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["integrations"]["down"] = {
        "kind": "webhook",
        "url": f"http://127.0.0.1:{free_port()}/hook",
        "allow_destinations": ["127.0.0.1"],  # past the outbound guard, to a port nobody listens on
        "retry": {"max_attempts": 1},
    }
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))


def vault_config(project: Project, secret_name: str) -> None:
    """Refer to a vault secret from the config, as a webhook signing secret."""
    config = yaml.safe_load((project.path / "tidings.yaml").read_text())
    config["integrations"]["signed"] = {
        "kind": "webhook",
        "url": f"http://127.0.0.1:{free_port()}/hook",
        "allow_destinations": ["127.0.0.1"],
        "secret": f"${{vault:{secret_name}}}",
    }
    (project.path / "tidings.yaml").write_text(yaml.safe_dump(config))


def whsec() -> str:
    import base64

    return "whsec_" + base64.b64encode(os.urandom(24)).decode()
