"""One attempt of the dispatcher (a mixin of :class:`~tidings.delivery.dispatcher.Dispatcher`):
a delivery, or a :class:`~tidings.integrations.base.BatchNotifier`'s batch, prepared (templates,
addressing, rendering), given a rate-limit slot and admitted by the circuit breaker, sent under the
watchdog's deadline, and its outcome turned into the :class:`~tidings.delivery.outbox.Result` the
recorder writes (delivered, retrying after the policy's delay, or dead)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from ..integrations.base import Attempt, BatchNotifier, Outcome, OutcomeStatus
from ..logs import Throttle
from ..message import Message
from ..security.redact import ERROR_MAX, clip, redact
from ..store.tables import nul_safe
from ..templates import TemplateError, apply_templates
from .lanes import MAX_RATE_WAIT, Lane
from .outbox import Claimed, Result
from .retry import gives_up, next_delay
from .throttle import NO_SLOT, Slot

if TYPE_CHECKING:
    from ..integrations.base import Notifier
    from ..routing import RouteOptions
    from . import circuits
    from .recording import Recorder

log = structlog.get_logger("tidings.dispatcher")
noisy = Throttle()
"""Dead deliveries, retries and broken templates: one line per integration and kind a minute."""

DISABLED_REFRESH = 5.0
"""How often the dispatcher reads which integrations are disabled; a disabled lane's delivery comes back then."""

TIMEOUT_GRACE = 5.0
"""The watchdog cancels a send this long after its integration's own timeout should have fired."""


class Sending:
    """The dispatcher's attempts (a mixin: it needs the dispatcher's clock, routes, addressing,
    recorder, circuits, the workers its watchdog timed out, and its check of rotated secrets)."""

    if TYPE_CHECKING:  # the dispatcher's own
        routes: Callable[[str | None], RouteOptions]
        address: Callable[[Notifier, Claimed, Message], Message | str] | None
        recorder: Recorder
        circuits: circuits.Circuits
        _clock: Callable[[], float]
        _timed_out: set[asyncio.Task[None]]

        async def _fresh_secrets(self) -> list[str]: ...

    async def _attempt(self, lane: Lane, c: Claimed, worker: asyncio.Task[None]) -> Result:
        now = self._clock()
        if lane.disabled:
            return self._release(c, now + DISABLED_REFRESH, None)
        blocked, epoch = lane.breaker.admit()
        if blocked is not None:
            return self._release(c, blocked, None)
        notifier = lane.notifier
        prepared = self._prepare(lane, c)
        if isinstance(prepared, Result):
            lane.breaker.release(epoch)
            return prepared
        message, payload = prepared
        slot = await self._rate_slot(lane, notifier.rate_key(payload))
        if isinstance(slot, float):
            lane.breaker.release(epoch)
            return self._release(c, slot, None)
        attempt = Attempt(c.id, c.message_id, c.attempts + 1, c.created_at, message)
        outcomes, latency = await self._send(lane, worker, epoch, slot, lambda: notifier.send(payload, attempt), [c])
        return self._finish(lane, c, outcomes[0], latency)

    async def _attempt_batch(self, lane: Lane, group: list[Claimed], results: list[Result],
                             worker: asyncio.Task[None]) -> None:
        """Send ``group`` and what else is queued, up to the notifier's batch, in one request.
        Each delivery moves from ``group`` to ``results`` (or back to the front of the queue,
        order kept, when the request can't carry it): what stays in ``group`` has no result yet."""
        notifier = lane.notifier
        assert isinstance(notifier, BatchNotifier)
        while lane.queue and len(group) < notifier.effective_max_batch:
            group.append(lane.queue.popleft())

        def hand_back(due: float) -> None:
            results.extend(self._release(c, due, None) for c in group)
            group.clear()

        if lane.disabled:
            return hand_back(self._clock() + DISABLED_REFRESH)
        blocked, epoch = lane.breaker.admit()
        if blocked is not None:
            return hand_back(blocked)
        ready: list[tuple[Claimed, Message, Any]] = []
        for c in list(group):
            prepared = self._prepare(lane, c)
            if isinstance(prepared, Result):
                group.remove(c)
                results.append(prepared)
            else:
                ready.append((c, *prepared))
        keep = max(1, notifier.batch_cut([p for _, _, p in ready])) if ready else 0
        if keep < len(ready):
            rest = [c for c, _, _ in ready[keep:]]
            del ready[keep:], group[len(group) - len(rest):]
            lane.queue.extendleft(reversed(rest))
            lane._wake_one()
        if not ready:
            return lane.breaker.release(epoch)
        slot = await self._rate_slot(lane, notifier.rate_key(ready[0][2]))
        if isinstance(slot, float):
            lane.breaker.release(epoch)
            return hand_back(slot)
        attempts = [Attempt(c.id, c.message_id, c.attempts + 1, c.created_at, m) for c, m, _ in ready]
        payloads = [p for _, _, p in ready]
        outcomes, latency = await self._send(lane, worker, epoch, slot, lambda: notifier.send_batch(payloads, attempts),
                                             group)
        results.extend(self._finish(lane, c, o, latency) for c, o in zip(group, outcomes, strict=True))
        group.clear()

    def _prepare(self, lane: Lane, c: Claimed) -> Result | tuple[Message, Any]:
        """The message after templates and its payload, or the delivery's (permanent) result."""
        notifier = lane.notifier
        route = self.routes(c.route)
        try:
            message = apply_templates(c.message, route.template, notifier.settings.template)
        except TemplateError as exc:
            noisy(log.error, (c.integration, c.route, "template"), "config.template_failed", integration=c.integration,
                  route=c.route, error=redact(str(exc)))
            return self._finish(lane, c, Outcome.permanent(str(exc)), None)
        if c.recipient is not None and self.address is not None:
            addressed = self.address(notifier, c, message)
            if isinstance(addressed, str):
                return self._finish(lane, c, Outcome.permanent(addressed), None)
            message = addressed
        try:
            return message, notifier.render(message, route.render)
        except Exception as exc:
            log.exception("dispatcher.render_failed", integration=notifier.name, delivery=c.id)
            return self._finish(lane, c, Outcome.permanent(f"render failed: {type(exc).__name__}: {exc}"), None)

    async def _rate_slot(self, lane: Lane, key: str) -> Slot | float:
        """Wait for a rate-limit slot and take it (:meth:`_send` gives it back with the answer), or,
        when the wait would be too long, say when to try again."""
        if lane.limiter is None:
            return NO_SLOT
        while isinstance(got := await lane.limiter.acquire(key), float):
            if got > MAX_RATE_WAIT:
                return self._clock() + got
            await asyncio.sleep(got)
        return got

    async def _send(self, lane: Lane, worker: asyncio.Task[None], epoch: int, slot: Slot,
                    sending: Callable[[], Awaitable[Outcome | list[Outcome]]],
                    sent: list[Claimed]) -> tuple[list[Outcome], float]:
        """Make and await one request carrying ``sent``: an outcome per delivery, and how long it
        took. One request is one call for the breaker: a failure only when every delivery is to
        be retried. Whatever happens, the request's rate-limit ``slot`` is answered."""
        notifier = lane.notifier
        started = time.perf_counter()
        lane.sending[worker] = time.monotonic() + notifier.effective_timeout + TIMEOUT_GRACE
        try:
            answer = await sending()
            outcomes = [answer] if isinstance(answer, Outcome) else answer
            if len(outcomes) != len(sent):
                raise ValueError(f"{len(outcomes)} outcomes for {len(sent)} deliveries")
        except asyncio.CancelledError:
            if worker in self._timed_out:  # the watchdog's: a failure (and _work records the retry)
                self._breaker_record(lane, False, epoch)
            else:
                lane.breaker.release(epoch)
            raise
        except TimeoutError:
            outcomes = [Outcome.retry(f"timed out after {notifier.effective_timeout:g}s")] * len(sent)
        except Exception as exc:
            log.warning("dispatcher.send_raised", integration=notifier.name, delivery=sent[0].id, error=repr(exc))
            outcomes = [Outcome.retry(f"{type(exc).__name__}: {exc}")] * len(sent)
        finally:
            slot.answered()
        latency = time.perf_counter() - started
        self._breaker_record(lane, any(o.status is not OutcomeStatus.RETRY for o in outcomes), epoch)
        if any(o.disable for o in outcomes) and notifier.name in await self._fresh_secrets():
            outcomes = [Outcome.retry(f"{o.error}; its credentials just changed: tried again with them", after=0.0,
                                      http_status=o.http_status)
                        if o.disable else o for o in outcomes]
        if any(o.disable for o in outcomes):
            error = next(o.error for o in outcomes if o.disable)
            if not lane.disabled:
                log.warning("integration.disabled", integration=notifier.name, reason=clip(error or "by the peer", ERROR_MAX))
            lane.disabled = True
            self.recorder.disable(notifier.name, clip(error or "disabled by the peer", ERROR_MAX))
        return outcomes, latency

    def _breaker_record(self, lane: Lane, ok: bool, epoch: int) -> None:
        if lane.breaker.record(ok, epoch):
            self.circuits.changed(lane.breaker)

    def _finish(self, lane: Lane, c: Claimed, outcome: Outcome, latency: float | None) -> Result:
        now = self._clock()
        attempts = c.attempts + 1
        latency_ms = latency * 1000 if latency is not None else None
        # The outbox writes results at driver level, past the tables' NUL-safe types: a peer's
        # text (an error body, a remote id) is made storable here.
        if outcome.status is OutcomeStatus.DELIVERED:
            warning = nul_safe(clip(outcome.error, ERROR_MAX)) if outcome.error else None
            remote_id = nul_safe(outcome.remote_id) if outcome.remote_id else outcome.remote_id
            return Result(c.id, c.integration, "delivered", attempts, now, warning, remote_id, latency_ms, now,
                          thread=c.thread)
        error = nul_safe(clip(outcome.error or "failed", ERROR_MAX))
        if outcome.status is not OutcomeStatus.PERMANENT and not gives_up(lane.policy, attempts, c.queued_at, now):
            delay = next_delay(lane.policy, attempts, outcome.retry_after)
            noisy(log.info, (c.integration, "retry"), "delivery.retry", integration=c.integration, delivery=c.id,
                  attempt=attempts, retry_in=round(delay, 3), error=error)
            return Result(c.id, c.integration, "retrying", attempts, now + delay, error, None, latency_ms,
                          thread=c.thread, status_code=outcome.http_status)
        if outcome.status is not OutcomeStatus.PERMANENT:
            error = f"gave up after {attempts} attempts: {error}"
        noisy(log.warning, (c.integration, "dead"), "delivery.dead", integration=c.integration, delivery=c.id,
              message=c.message_id, attempts=attempts, error=error)
        return Result(c.id, c.integration, "dead", attempts, now, error, None, latency_ms, thread=c.thread,
                      status_code=outcome.http_status)

    @staticmethod
    def _release(c: Claimed, due: float, error: str | None) -> Result:
        """Hand a delivery back without counting an attempt."""
        status = "retrying" if c.attempts else "pending"
        return Result(c.id, c.integration, status, c.attempts, due, error, released=True, thread=c.thread)
