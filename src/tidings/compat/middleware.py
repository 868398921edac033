"""``AlertingMiddleware``: pure ASGI middleware that alerts when an application answers too many
429 (``rate_limit``), 401 (``auth_failures``) or 413 (``large_payloads``) responses in a sliding
window. Works around any ASGI app: FastAPI, Starlette, Django's ``get_asgi_application()``.

    app.add_middleware(AlertingMiddleware, alert_threshold={"auth_failures": 20})   # FastAPI
    application = AlertingMiddleware(get_asgi_application())                         # Django

When ``alert_threshold[type]`` such responses (defaults 100, 50, 10) fall within
``window_seconds`` (60), it alerts once, through an :class:`AlertDispatcher` (Teams and email,
from the environment unless given) or a :class:`tidings.Hub` (``hub=``: a durable message
labelled ``source=middleware``, ``event_type=<type>``, routed like any other), naming the top
clients and paths; then that type stays quiet for ``alert_cooldown`` seconds (300).

Cost on the hot path: one dict lookup of the status when the response starts. Only 429/401/413
responses do more: an append to a bounded deque (the last ``threshold`` events of that type) and
two comparisons; the counting of clients and paths happens once per alert. No lock is taken
(the event loop is one thread; the rare alert path uses a non-blocking try-lock in case the
middleware is shared between threads). The response itself is never touched: messages, bodies
and streams pass through as they are, and an error in the accounting (or in the dispatcher) is
logged and swallowed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

import structlog

from ..message import Message as TidingsMessage
from ..message import Priority
from .alerting import AlertDispatcher

log = structlog.get_logger("tidings.compat.middleware")

DEFAULT_THRESHOLDS: dict[str, int] = {"rate_limit": 100, "auth_failures": 50, "large_payloads": 10}
STATUS_EVENTS: dict[int, str] = {429: "rate_limit", 401: "auth_failures", 413: "large_payloads"}
UNKNOWN_THRESHOLD = 100
"""The threshold of an event type that ``alert_threshold`` doesn't name."""
WINDOW_SECONDS = 60.0
ALERT_COOLDOWN = 300.0
TOP_N = 5
_ERROR_LOG_INTERVAL = 60.0

Scope = MutableMapping[str, Any]
ASGIApp = Callable[..., Any]


class AlertingMiddleware:
    """See the module doc. Parameters:

    - ``alert_threshold``: event type -> responses in the window that trigger an alert (merged
      over the defaults; 0 or None turns a type off);
    - ``dispatcher`` (alias ``alert_dispatcher``): anything with ``dispatch(payload)``; default
      ``AlertDispatcher()`` (from the environment). Or ``hub``: a started :class:`tidings.Hub`
      on the app's event loop (``hub_targets``: integration names, else the hub's routes);
    - ``window_seconds`` (60), ``cooldown`` (alias ``alert_cooldown``, 300 s): how long an event
      type stays quiet after its alert; also attributes, changeable later;
    - ``trust_forwarded_for``: False (default) uses the connection's peer address; True or a
      number of trusted proxy hops takes the client from ``X-Forwarded-For``, counting from the
      right (True = 1 hop: the address your own proxy saw), so a client can't forge it;
    - ``status_events``: status -> event type (default 429/401/413 as above);
    - ``clock``: a monotonic clock in seconds (tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        alert_threshold: Mapping[str, int | None] | None = None,
        *,
        dispatcher: Any = None,
        alert_dispatcher: Any = None,
        hub: Any = None,
        hub_targets: Sequence[str] | None = None,
        window_seconds: float = WINDOW_SECONDS,
        alert_cooldown: float = ALERT_COOLDOWN,
        cooldown: float | None = None,
        trust_forwarded_for: bool | int = False,
        top_n: int = TOP_N,
        status_events: Mapping[int, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if dispatcher is not None and alert_dispatcher is not None and dispatcher is not alert_dispatcher:
            raise ValueError("give dispatcher or alert_dispatcher, not both")
        dispatcher = dispatcher if dispatcher is not None else alert_dispatcher
        if hub is not None and dispatcher is not None:
            raise ValueError("alerts go through a dispatcher or a hub: give one of them")
        self.app = app
        self.thresholds: dict[str, int | None] = {**DEFAULT_THRESHOLDS, **(alert_threshold or {})}
        self.hub = hub
        self.hub_targets = list(hub_targets) if hub_targets else None
        self.alert_dispatcher = dispatcher if dispatcher is not None or hub is not None else AlertDispatcher()
        self.window_seconds = float(window_seconds)
        self.alert_cooldown = float(alert_cooldown if cooldown is None else cooldown)
        self.forwarded_hops = int(trust_forwarded_for) if trust_forwarded_for is not False else 0
        self.top_n = top_n
        self.status_events: dict[int, str] = dict(status_events or STATUS_EVENTS)
        self.alerts_sent = 0
        self._clock = clock
        self._events: dict[str, deque[tuple[float, str | None, str]]] = {}
        self._quiet_until: dict[str, float] = {}
        self._alerting = threading.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_error_log = -_ERROR_LOG_INTERVAL

    # -- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        events = self.status_events

        # Not a coroutine function: ``watch`` hands back the awaitable of the ``send`` it wraps,
        # so it adds no coroutine frame to any send; only this small closure is allocated per
        # request. (``__call__`` itself stays ``async def``: servers tell ASGI 3 apps by that.)
        def watch(message: MutableMapping[str, Any]) -> Awaitable[None]:
            if message["type"] == "http.response.start":
                event = events.get(message["status"])
                if event is not None:
                    self._seen(event, scope)
            return send(message)  # type: ignore[no-any-return]

        await self.app(scope, receive, watch)

    def _seen(self, event: str, scope: Scope) -> None:
        try:
            self.record(event, self._client_of(scope), scope.get("path", ""), scope.get("method", ""))
        except Exception as exc:  # the response goes on whatever happens here
            self._log_error(exc)

    def _client_of(self, scope: Scope) -> str | None:
        if self.forwarded_hops:
            forwarded = _forwarded_for(scope.get("headers") or (), self.forwarded_hops)
            if forwarded:
                return forwarded
        client = scope.get("client")
        return client[0] if client else None

    # -- accounting ------------------------------------------------------------------------
    def record(self, event: str, client: str | None, path: str, method: str) -> None:
        """Count one response of ``event``; alert when the last ``threshold`` of them all fall
        within the window and the type isn't cooling down. O(1)."""
        threshold = self.thresholds.get(event, UNKNOWN_THRESHOLD)
        if not threshold or threshold < 1:
            return
        now = self._clock()
        window = self._events.get(event)
        if window is None or window.maxlen != threshold:
            window = self._events[event] = deque(window or (), maxlen=threshold)
        window.append((now, client, path))
        if len(window) < threshold or window[0][0] <= now - self.window_seconds:
            return
        if now < self._quiet_until.get(event, float("-inf")):
            return
        self._alert(event, window, now, client, path, method)

    @property
    def cooldown(self) -> float:
        """Seconds an event type stays quiet after it alerted (``alert_cooldown``)."""
        return self.alert_cooldown

    @cooldown.setter
    def cooldown(self, value: float) -> None:
        self.alert_cooldown = float(value)

    @property
    def counters(self) -> Counter[str]:
        """Responses of each type within the window now (0 for a type never seen)."""
        now = self._clock()
        horizon = now - self.window_seconds
        return Counter({event: sum(1 for at, _, _ in window if at > horizon) for event, window in self._events.items()})

    def _alert(
        self, event: str, window: deque[tuple[float, str | None, str]], now: float, client: str | None, path: str,
        method: str,
    ) -> None:
        if not self._alerting.acquire(blocking=False):
            return  # another thread is alerting right now
        try:
            if now < self._quiet_until.get(event, float("-inf")):
                return
            self._quiet_until[event] = now + self.alert_cooldown
            entries = list(window)
            window.clear()
        finally:
            self._alerting.release()
        clients = Counter(c for _, c, _ in entries if c)
        paths = Counter(p for _, _, p in entries)
        payload = {
            "event_type": event,
            "count": len(entries),
            "path": path,
            "method": method,
            "client": client,
            "threshold": len(entries),
            "window_seconds": self.window_seconds,
            "top_clients": [{"client": c, "count": n} for c, n in clients.most_common(self.top_n)],
            "top_paths": [{"path": p, "count": n} for p, n in paths.most_common(self.top_n)],
        }
        self.alerts_sent += 1
        log.critical("alerting.threshold_exceeded", event_type=event, count=len(entries),
                     window_seconds=self.window_seconds, top_clients=payload["top_clients"][:3])
        try:
            if self.hub is not None:
                self._notify_hub(payload)
            else:
                self.alert_dispatcher.dispatch(payload)
        except Exception as exc:  # a broken dispatcher never breaks a response
            log.error("alerting.dispatch_failed", event_type=event, error=f"{type(exc).__name__}: {exc}")

    def _notify_hub(self, payload: dict[str, Any]) -> None:
        message = hub_message(payload)
        loop = asyncio.get_running_loop()  # RuntimeError outside the app's loop: logged by the caller
        task = loop.create_task(self.hub.notify(message, to=self.hub_targets))
        self._tasks.add(task)
        task.add_done_callback(self._hub_done)

    def _hub_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.error("alerting.hub_failed", error=f"{type(exc).__name__}: {exc}")

    def _log_error(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._last_error_log >= _ERROR_LOG_INTERVAL:  # at most once a minute
            self._last_error_log = now
            log.error("alerting.middleware_error", error=f"{type(exc).__name__}: {exc}")

    # -- the API of the BaseHTTPMiddleware this replaces ----------------------------------------
    async def dispatch(self, request: Any, call_next: Callable[[Any], Any]) -> Any:
        """``response = await call_next(request)``, counted like the ASGI path (for code that
        drove the old BaseHTTPMiddleware by hand)."""
        response = await call_next(request)
        try:
            event = self.status_events.get(getattr(response, "status_code", None))  # type: ignore[arg-type]
            if event is not None:
                self._check_alert(event, request)
        except Exception as exc:
            self._log_error(exc)
        return response

    def _check_alert(self, event_type: str, request: Any) -> None:
        """Count one ``event_type`` for a Starlette-like request (``url.path``, ``method``,
        ``client.host``, ``headers``)."""
        client = None
        if self.forwarded_hops:
            raw = request.headers.get("x-forwarded-for") if getattr(request, "headers", None) is not None else None
            client = _pick_forwarded(raw, self.forwarded_hops) if isinstance(raw, str) else None
        if client is None:
            client = request.client.host if getattr(request, "client", None) else None
        self.record(event_type, client, str(request.url.path), str(request.method))


def hub_message(payload: Mapping[str, Any]) -> TidingsMessage:
    """The tidings message the middleware sends through a hub for an alert ``payload``."""
    event = str(payload["event_type"])
    tops = [
        ("Top clients", ", ".join(f"{e['client']} ({e['count']})" for e in payload.get("top_clients") or [])),
        ("Top paths", ", ".join(f"{e['path']} ({e['count']})" for e in payload.get("top_paths") or [])),
    ]
    return TidingsMessage(
        title=f"Security alert: {event.replace('_', ' ')}",
        body=f"{payload['count']} {event} responses within {payload['window_seconds']:g} s.",
        priority=Priority.HIGH,
        fields=[("Event", event), ("Count", str(payload["count"])), ("Method", str(payload.get("method"))),
                ("Path", str(payload.get("path"))), ("Client", str(payload.get("client") or "unknown")),
                *[(name, value[:4000]) for name, value in tops if value]],
        labels={"source": "middleware", "event_type": event},
    )


def _forwarded_for(headers: Any, hops: int) -> str | None:
    values = [value for name, value in headers if name == b"x-forwarded-for"]
    if not values:
        return None
    return _pick_forwarded(b",".join(values).decode("latin-1"), hops)


def _pick_forwarded(raw: str, hops: int) -> str | None:
    """The address ``hops`` entries from the right of an X-Forwarded-For list: what the
    outermost trusted proxy saw. Entries to its left were written by the client and prove nothing."""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        return None
    return parts[-hops] if hops <= len(parts) else parts[0]


__all__ = ["DEFAULT_THRESHOLDS", "STATUS_EVENTS", "AlertingMiddleware", "hub_message"]
