"""Running the real ``tidings`` executable in a scratch directory, for the CLI tests."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer.testing
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


PROCESS_ONLY = frozenset({"serve", "worker"})
"""Commands that install signal handlers and run until stopped: always the real executable."""


def tidings(cwd: Path, *args: str, stdin: str | None = None, timeout: float = 60, process: bool = False,
            **env: str | None) -> Ran:
    """Run ``tidings *args`` in ``cwd``: in this process (a second faster: the hub, SQLAlchemy
    and aiohttp are imported already) unless ``process`` or the command serves. The tests that
    need the interpreter itself (start-up cost, signals, the console script) pass ``process=True``."""
    if process or PROCESS_ONLY.intersection(args):  # (`-c x serve` too; a value named so only costs time)
        return tidings_process(cwd, *args, stdin=stdin, timeout=timeout, **env)
    return run_in_process(cwd, *args, stdin=stdin, **env)


def tidings_process(cwd: Path, *args: str, stdin: str | None = None, timeout: float = 60, **env: str | None) -> Ran:
    """The real executable, in its own process."""
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


async def tidings_async(cwd: Path, *args: str, **kwargs: Any) -> Ran:
    """:func:`tidings` from an async test whose event loop serves what the command talks to (a
    peer, a sink): the loop keeps running while the command runs in a thread."""
    return await asyncio.to_thread(tidings, cwd, *args, **kwargs)


_cli_lock = threading.Lock()


def _built_once(get_command: Any) -> Any:
    """typer's CliRunner builds the click command from the app on every invoke: 0.15 s of the
    0.18 s a ``--help`` took in this process. The app's commands are fixed once imported (as for
    the executable, which builds it once per run): build it once per app."""
    built: dict[int, Any] = {}

    def get(app: Any) -> Any:
        if id(app) not in built:
            built[id(app)] = get_command(app)
        return built[id(app)]

    return get


typer.testing._get_command = _built_once(typer.testing._get_command)


def run_in_process(cwd: Path, *args: str, stdin: str | None = None, **env: str | None) -> Ran:
    """``tidings *args`` through typer's CliRunner, as the executable would run it: the same
    environment as :func:`cli_env` (the rest of ``TIDINGS_*`` unset), ``cwd`` as the working
    directory, fresh consoles (their width is read once), and nothing left behind in the process:
    the logging configuration, the masking registry, the directory and the environment are put
    back afterwards. From an async test (a running event loop) the command runs in a thread, as
    ``asyncio.run`` needs, and the loop waits for it as it would wait for a process: a test whose
    loop serves the peer the command calls uses :func:`tidings_async`."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return _invoke(cwd, args, stdin, env)
    box: list[Ran | BaseException] = []

    def target() -> None:
        try:
            box.append(_invoke(cwd, args, stdin, env))
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test's thread
            box.append(exc)

    thread = threading.Thread(target=target, name="tidings-cli")
    thread.start()
    thread.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _invoke(cwd: Path, args: tuple[str, ...], stdin: str | None, env: dict[str, str | None]) -> Ran:
    import structlog
    from typer.testing import CliRunner

    from tidings import logs
    from tidings.cli import _common, app
    from tidings.security import redact

    wanted = cli_env(cwd, **env)
    environ: dict[str, str | None] = {k: None for k in os.environ if k not in wanted}
    environ.update(wanted)
    with _cli_lock:
        saved_dir = os.getcwd()
        saved_log = structlog.get_config()
        was_configured = structlog.is_configured()
        saved_masks = redact.saved()
        configure = logs.configure
        # loggers bound meanwhile must not keep the command's configuration once it is put back
        logs.configure = functools.partial(configure, cache=False)  # type: ignore[assignment]
        _common.out._console = _common.err._console = None
        os.chdir(cwd)
        try:
            result = CliRunner().invoke(app, list(args), input=stdin or "", env=environ)
        finally:
            os.chdir(saved_dir)
            logs.configure = configure  # type: ignore[assignment]
            _common.out._console = _common.err._console = None
            redact.restore(saved_masks)
            if was_configured:
                structlog.configure(**saved_log)
            else:
                structlog.reset_defaults()
    err = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        err += "".join(traceback.format_exception(result.exception))  # Ran reports it as a crash
    return Ran(args, result.exit_code, result.stdout, err)


def in_process(cwd: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> Ran:
    """A command run in this process with the test's own ``TIDINGS_*`` variables (set through
    ``monkeypatch``), not only those :func:`cli_env` makes."""
    return run_in_process(cwd, *args, **{k: v for k, v in os.environ.items() if k.startswith("TIDINGS_")})


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


def on_store(db_url: str, call: Any) -> Any:
    """``await call(store)`` on a store of ``db_url`` opened and closed for it, from sync test code."""

    async def _call() -> Any:
        from tidings.store.engine import Store

        store = Store(db_url)
        try:
            return await call(store)
        finally:
            await store.close()

    return asyncio.run(_call())

