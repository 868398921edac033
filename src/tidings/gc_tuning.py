"""The cyclic garbage collector's settings while a hub runs (``server.gc_threshold``).

CPython collects its young generation every 700 net container allocations. A busy hub allocates
hundreds per message (requests, futures, rows), so it collected every few messages, promoted
objects still in flight into the old generation, and ran full collections that walk the whole
heap with the loop stopped. Measured with bench/throughput.py (20,000 messages to a local sink):
40-45% of the throughput lost and 130-190 ms pauses in ``notify``'s p99.

While a hub runs, what exists at its start (modules, models, configuration: never garbage) is
frozen out of collections and the young threshold is raised; the last hub to stop puts the
collector back as it found it. Cyclic garbage is still collected, in larger, rarer batches.
"""

from __future__ import annotations

import gc
import threading

_lock = threading.Lock()
_users = 0
_saved: tuple[int, int, int] | None = None
_froze = False


def tune(threshold: int | None) -> bool:
    """Apply the hub's settings (nothing when ``threshold`` is None); True when the caller must
    call :func:`restore` at its end. Hubs nest: the first applies, the last restores."""
    global _users, _saved, _froze
    if threshold is None:
        return False
    with _lock:
        if _users == 0:
            _saved = gc.get_threshold()
            # Freeze only a heap nobody froze before: then restore() undoes exactly this.
            _froze = gc.get_freeze_count() == 0
            if _froze:
                gc.freeze()
            gc.set_threshold(max(threshold, _saved[0]), *_saved[1:])
        _users += 1
    return True


def restore() -> None:
    global _users, _saved, _froze
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _saved is not None:
            gc.set_threshold(*_saved)
            if _froze:
                gc.unfreeze()
            _saved, _froze = None, False
