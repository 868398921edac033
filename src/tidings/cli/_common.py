"""What every command shares: the root app, consoles, options, one-line errors, the hub and store."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import functools
import inspect
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.console import Console

from ..config import config_path, load_config
from ..errors import ConfigError, TidingsError
from ..hub import Hub

if TYPE_CHECKING:
    from ..security.vault import Vault
    from ..store.engine import Store

app = typer.Typer(help="tidings: notifications out, verified webhooks in, durable in between.", no_args_is_help=True,
                  pretty_exceptions_enable=False, add_completion=False)

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="tidings.yaml (default: $TIDINGS_CONFIG or ./tidings.yaml)")]
JsonOpt = Annotated[bool, typer.Option("--json", help="machine-readable output")]


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True, soft_wrap=True)
    raise typer.Exit(code)


def handled(fn: Callable[..., T]) -> Callable[..., T]:
    """Turn tidings' errors into one line on stderr and exit code 1 (2 for bad configuration)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except ConfigError as exc:
            for problem in exc.problems:
                err.print(f"[red]error:[/red] {(exc.source + ': ') if exc.source else ''}{problem}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except (TidingsError, ValueError, OSError, TimeoutError) as exc:
            _fail(str(exc) or type(exc).__name__)
            raise  # unreachable: _fail exits

    return wrapper


def run(coro: Awaitable[T]) -> T:
    from ..logs import configure

    configure(level=os.environ.get("TIDINGS_LOG_LEVEL", "WARNING"))
    return asyncio.run(coro)  # type: ignore[arg-type]


def _hub(config: Path | None, **kwargs: Any) -> Hub:
    return Hub.from_config(config, **kwargs)


def _on_hub(config: Path | None, call: Callable[[Hub], Awaitable[T] | T]) -> T:
    """``call(hub)`` on a hub started for this command without dispatching, stopped after."""

    async def _call() -> T:
        async with _hub(config, dispatch=False) as hub:
            result = call(hub)
            return await result if inspect.isawaitable(result) else result  # type: ignore[no-any-return]

    return run(_call())


@contextlib.asynccontextmanager
async def _store(config: Path | None) -> AsyncIterator[Store]:
    """The configured database, migrated, without starting the integrations: managing tokens and
    secrets must work while tidings.yaml refers to a ${vault:NAME} that is not stored yet."""
    from ..store.engine import Store

    cfg = load_config(config)
    store = Store(cfg.server.database, synchronous=cfg.server.sqlite_synchronous)
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


@contextlib.asynccontextmanager
async def _vault(config: Path | None) -> AsyncIterator[Vault]:
    from ..security.vault import Vault, load_keys

    async with _store(config) as store:
        yield Vault(store, load_keys(config_path(config).resolve().parent))


def _when(ts: float | None) -> str:
    if ts is None:
        return ""
    return dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))
