"""Long-running processes: `tidings serve` and `tidings worker`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from .. import __version__
from ._common import ConfigOpt, _hub, app, err, handled

if TYPE_CHECKING:
    from ..hub import Hub


@app.command()
@handled
def serve(
    config: ConfigOpt = None,
    host: Annotated[str | None, typer.Option(help="overrides server.host")] = None,
    port: Annotated[int | None, typer.Option(help="overrides server.port and $TIDINGS_PORT")] = None,
    dispatch: Annotated[bool, typer.Option("--dispatch/--no-dispatch", help="run the dispatcher in this process")] = True,
    access_log: Annotated[bool, typer.Option(help="log every request")] = False,
) -> None:
    """Run the HTTP server (API, /docs, /metrics) and, unless --no-dispatch, the dispatcher."""
    import asyncio

    import uvicorn

    from ..logs import configure
    from ..server import create_app
    from ..server.access import with_access_log

    configure()
    hub = _hub(config, create=True, dispatch=None if dispatch else False, watch=True)
    s = hub.config.server
    server = uvicorn.Server(
        uvicorn.Config(
            with_access_log(create_app(hub), access_log),
            host=host or s.host,
            port=port or s.port,
            access_log=False,  # tidings' own (server/access.py): structured, on stderr, no query strings
            log_level="warning",
            timeout_graceful_shutdown=int(hub.config.dispatcher.shutdown_timeout) + 1,
        )
    )

    async def _main() -> None:
        # The hub starts before the server: what stops it (a ${vault:NAME} not stored, a database
        # that can't be reached) is one line, not a traceback from inside uvicorn's lifespan.
        await hub.start()
        try:
            base = f"http://{host or s.host}:{port or s.port}"
            err.print(f"tidings {__version__} on {base}: web UI at {base}/ui/ (API docs at /docs)", highlight=False)
            _freeze_heap()
            with _signals_deferred(), _reload_on_sighup(hub, config):
                await server.serve()
        finally:
            await hub.stop()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(_main())


@contextmanager
def _reload_on_sighup(hub: Hub, config: Path | None) -> Iterator[None]:
    """SIGHUP imports the configuration file again and switches to the revision it makes (see
    :meth:`Hub.reload_file`); a file that doesn't parse or validate logs one line per problem
    and leaves the running revision as it is. The process never dies of it."""
    import asyncio
    import signal

    from ..config import config_path

    loop = asyncio.get_running_loop()
    path = config_path(config)
    running: set[asyncio.Task[None]] = set()

    def _hup() -> None:
        task = loop.create_task(reload_config(hub, path), name="tidings-sighup")
        running.add(task)
        task.add_done_callback(running.discard)

    loop.add_signal_handler(signal.SIGHUP, _hup)
    try:
        yield
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


async def reload_config(hub: Hub, path: Path) -> None:
    """What SIGHUP does: reload, and say what happened in the log."""
    import structlog

    from ..errors import ConfigError
    from ..security.redact import clip

    log = structlog.get_logger("tidings.config")
    log.info("config.reloading", file=str(path), running=hub.revision)
    try:
        revision = await hub.reload_file(path)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config.reload_refused", problem=problem, running=hub.revision)
        return
    except Exception as exc:  # the database away: the running revision stays; say why in one line
        log.error("config.reload_failed", error=clip(f"{type(exc).__name__}: {exc}", 300), running=hub.revision)
        return
    problem = hub.watcher.problem if hub.watcher is not None else None
    if problem:
        log.error("config.reload_not_applied", running=revision, problem=problem)
    else:
        log.info("config.reloaded", revision=revision)


@contextmanager
def _signals_deferred() -> Iterator[None]:
    """uvicorn re-raises the signal that stopped it as it returns; ours is a no-op, so the hub
    stops (draining its deliveries) before the process exits."""
    import signal

    handled_signals = (signal.SIGINT, signal.SIGTERM)
    previous = {sig: signal.signal(sig, lambda *_: None) for sig in handled_signals}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _freeze_heap() -> None:
    """Exempt what start-up built (modules, models, compiled SQL) from the cyclic garbage
    collector. A full collection scans the whole heap: measured here, 60-230 ms with the loop
    stopped, the worst latency of a busy server. Afterwards it scans only what came later."""
    import gc

    gc.collect()
    gc.freeze()


@app.command()
@handled
def worker(config: ConfigOpt = None) -> None:
    """Run only the dispatcher: claim and send deliveries. Run as many as you like on PostgreSQL."""
    import asyncio
    import signal

    from ..logs import configure

    configure()
    _freeze_heap()
    hub = _hub(config, create=True, dispatch=True)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        async with hub:
            err.print(f"tidings worker {hub.dispatcher.owner if hub.dispatcher else ''} started", highlight=False)
            with _reload_on_sighup(hub, config):
                await stop.wait()

    asyncio.run(_main())
