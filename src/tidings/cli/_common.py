"""What every command shares: the root app, consoles, options, one-line errors, the hub and store.

Nothing heavy is imported at module level: `tidings --help` must not load the hub, SQLAlchemy,
aiohttp or FastAPI. Commands import what they use inside their function.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Any, TypeVar

import typer
import typer.core

from ..errors import ConfigError, TidingsError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..audit import Actor
    from ..config import Config
    from ..hub import Hub
    from ..security.vault import Vault
    from ..store.engine import Store

T = TypeVar("T")
_group_config: ContextVar[Path | None] = ContextVar("tidings_group_config", default=None)
"""A ``-c`` given to tidings itself or to a command group, for the subcommand to use (the root
callback runs first on every invocation and resets it)."""
PIPE_WIDTH = 100_000
"""Output to a pipe or file is not wrapped: a script reads whole lines."""
ID_WIDTH = 36


def _width(stream: IO[str]) -> int | None:
    """The terminal's width (or $COLUMNS); unlimited when the output is not a terminal."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return None
    return PIPE_WIDTH


class _LazyConsole:
    """A rich Console made on first use: `tidings version` and `--help` never load rich."""

    def __init__(self, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(stderr=self._stderr, width=_width(sys.stderr if self._stderr else sys.stdout))
        return getattr(self._console, name)


out: Any = _LazyConsole(stderr=False)
err: Any = _LazyConsole(stderr=True)


_METAVARS = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH", "Path": "PATH"}


def _display_type(self: Any, ctx: Any) -> str | None:
    """Help shows click's plain metavars (TEXT, INTEGER, PATH; once per repeatable option) and
    nothing for flags, not typer's ``<bool>`` / ``<list[str]>``."""
    if self.metavar is not None:
        return str(self.metavar)
    if getattr(self, "is_flag", False) or getattr(self, "count", False):
        return None
    label = self.display_type(ctx).strip("<>")
    label = label.removeprefix("list[").removesuffix("]").removesuffix(" range")
    return _METAVARS.get(label, label.upper())


typer.core.TyperOption.display_type_rich = _display_type  # type: ignore[method-assign]
typer.core.TyperArgument.display_type_rich = _display_type  # type: ignore[method-assign]

_Parameter: Any = getattr(typer.core, "_TyperParameter", None)
if _Parameter is not None and hasattr(_Parameter, "get_runtime_param"):
    _typer_process_value = _Parameter.process_value

    def _process_value(self: Any, ctx: Any, value: Any) -> Any:
        """An option not given stays None, as typer makes it, without building the pydantic
        adapter that typer (>= 0.20) builds first for every parameter: loading pydantic for that
        cost 0.2 s of every `tidings` command, `--help` and `version` included."""
        if value is None and not self.required and not (self.multiple or self.nargs == -1):
            return self.callback(ctx, self, value) if self.callback is not None else value
        return _typer_process_value(self, ctx, value)

    _Parameter.process_value = _process_value

app = typer.Typer(help="tidings: notifications out, verified webhooks in, durable in between.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False, rich_markup_mode=None)

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="tidings.yaml (default: $TIDINGS_CONFIG or ./tidings.yaml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def remember_config(config: ConfigOpt = None) -> None:
    """Options of a command group: ``handled`` keeps its -c for the subcommand."""


def group(name: str, help: str, *, lists: bool = False) -> typer.Typer:
    """A command group of the root app. ``-c`` given to it is used by its subcommands; unless
    ``lists`` (the group's own callback lists things and takes ``-c`` itself) this adds that callback."""
    sub = typer.Typer(help=help, no_args_is_help=not lists, invoke_without_command=lists)
    if not lists:
        sub.callback()(handled(remember_config))
    app.add_typer(sub, name=name)
    return sub


def _fail(message: str, code: int = 1) -> None:
    from rich.markup import escape  # a message may hold brackets: `tidings[postgres]`

    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def _config_from_group(kwargs: dict[str, Any]) -> None:
    if kwargs["config"] is not None:
        _group_config.set(kwargs["config"])
    else:
        kwargs["config"] = _group_config.get()


def reset_config(config: Path | None) -> None:
    """The root callback: a new invocation starts from its own -c (or none)."""
    _group_config.set(config)


def describe_error(exc: BaseException) -> str:
    """One line for an error that is not one of tidings' own."""
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.SQLAlchemyError):
        cause = getattr(exc, "orig", None) or exc
        text = str(cause).strip().splitlines()
        return f"database: {text[0] if text else type(cause).__name__}"
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def handled(fn: Callable[..., T]) -> Callable[..., T]:
    """Run a command: its ``config`` defaults to a ``-c`` given to a group above it; errors are
    one line on stderr and exit code 1 (2 for bad configuration). TIDINGS_DEBUG=1 shows the
    traceback of unexpected errors."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        if "config" in kwargs:
            _config_from_group(kwargs)
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            from rich.markup import escape

            for problem in exc.problems:
                where = escape((exc.source + ": ") if exc.source else "")
                err.print(f"[red]error:[/red] {where}{escape(problem)}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (TidingsError, ValueError, OSError, TimeoutError) as exc:
            _fail(str(exc) or type(exc).__name__)
            raise  # unreachable: _fail exits
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as exc:
            if os.environ.get("TIDINGS_DEBUG"):
                raise
            _fail(describe_error(exc))
            raise  # unreachable: _fail exits

    return wrapper


def emit(data: Any, as_json: bool, human: str | Callable[[], None]) -> None:
    """``data`` as JSON with --json, else ``human`` (a line, or a function that prints)."""
    if as_json:
        print_json(data)
    elif callable(human):
        human()
    else:
        out.print(human, highlight=False)


def run(coro: Awaitable[T]) -> T:
    import asyncio

    from ..logs import configure

    configure(level=os.environ.get("TIDINGS_LOG_LEVEL", "WARNING"))
    return asyncio.run(coro)  # type: ignore[arg-type]


def load(config: Path | None) -> tuple[Config, Path]:
    """The configuration and the directory it was read from."""
    from ..config import config_path, load_config

    return load_config(config), config_path(config).resolve().parent


def sqlite_file(url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    return Path(u.database).expanduser().resolve() if u.drivername.startswith("sqlite") and u.database else None


def require_database(cfg: Config) -> None:
    """A command that only reads or changes what exists must not create an empty database."""
    path = sqlite_file(cfg.server.database)
    if path is not None and not path.exists():
        raise TidingsError(f"no database at {path}; run `tidings init` or `tidings db upgrade`")


def _hub(config: Path | None, *, create: bool = False, **kwargs: Any) -> Hub:
    """A hub (not started) for ``config``. Unless ``create``, its SQLite database must exist."""
    from ..hub import Hub

    cfg, config_dir = load(config)
    if not create:
        require_database(cfg)
    return Hub(cfg, config_dir=config_dir, **kwargs)


def _on_hub(config: Path | None, call: Callable[[Hub], Awaitable[T] | T], *, create: bool = False) -> T:
    """``call(hub)`` on a hub started for this command without dispatching, stopped after."""

    import inspect

    async def _call() -> T:
        async with _hub(config, create=create, dispatch=False) as hub:
            result = call(hub)
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]

    return run(_call())


@contextlib.asynccontextmanager
async def _store(config: Path | None, *, create: bool = False, loaded: Config | None = None) -> AsyncIterator[Store]:
    """The configured database, migrated, without starting the integrations: managing tokens and
    secrets must work while tidings.yaml refers to a ${vault:NAME} that is not stored yet.
    ``loaded``: ``config`` as the command has read it already."""
    from ..store.engine import Store

    cfg = loaded if loaded is not None else load(config)[0]
    if not create:
        require_database(cfg)
    store = Store(cfg.server.database, synchronous=cfg.server.sqlite_synchronous)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _vault(config: Path | None, *, create: bool = False) -> AsyncIterator[Vault]:
    from ..config import config_path
    from ..security.vault import Vault, load_keys

    async with _store(config, create=create) as store:
        yield Vault(store, load_keys(config_path(config).resolve().parent))


def cli_actor() -> Actor:
    """The audit actor of every change the CLI makes: the person at the terminal.

    The CLI reads the machine's database (and key) directly, so it acts as a site admin, as root
    can anyway; the audit entry records the operating-system user who ran it (``cli:alice``)."""
    import getpass

    from ..audit import Actor

    try:
        who = getpass.getuser()
    except (OSError, KeyError):  # no $USER and a uid without a passwd entry (containers)
        who = "unknown"
    return Actor("user", name=f"cli:{who}", auth_method="cli")


def plain(value: str, what: str, *, echo: bool = True) -> str:
    """``value`` unless it holds a control character (NUL, a line break...): names and emails are
    shown in tables and logs, and PostgreSQL's text can't hold NUL. ``echo=False`` for a secret:
    the error doesn't repeat it."""
    if any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in value):
        raise ValueError(f"{what} must not contain control characters" + (f": {value!r}" if echo else ""))
    return value


def print_once(what: str, secret: str) -> None:
    """A password or token that is never shown again."""
    from rich.markup import escape

    out.print(f"\n[bold]{escape(what)} (shown once, store it now):[/bold]")
    out.print(f"  {secret}\n", highlight=False)


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


def table(*columns: str, ids: tuple[str, ...] = ("id",)) -> Table:
    """A table whose id columns are never cut or folded: `tidings retry` needs the whole id."""
    from rich.table import Column, Table

    return Table(*(Column(c, no_wrap=True, min_width=ID_WIDTH) if c in ids else c for c in columns))


@contextlib.contextmanager
def waiting(what: str) -> Iterator[None]:
    """A spinner on stderr while a command waits (only when stderr is a terminal)."""
    if not err.is_terminal:
        yield
        return
    with err.status(what):
        yield
