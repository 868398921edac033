"""Long-running processes: `tidings serve` and `tidings worker`."""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from .. import __version__
from ._common import ConfigOpt, _hub, app, err, handled


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
    hub = _hub(config, create=True, dispatch=None if dispatch else False)
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
            err.print(f"tidings {__version__} on http://{host or s.host}:{port or s.port} (docs at /docs)", highlight=False)
            _freeze_heap()
            with _signals_deferred():
                await server.serve()
        finally:
            await hub.stop()

    with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
        runner.run(_main())


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
            await stop.wait()

    asyncio.run(_main())
