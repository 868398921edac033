"""The 3-way merge of one linked item, field by field, against the base both sides last agreed on."""

from __future__ import annotations

from typing import Any

from .model import Conflict, Direction, Merged, Policy, normalize


def merge(
    base: dict[str, Any] | None,
    local: dict[str, Any],
    remote: dict[str, Any],
    directions: dict[str, Direction],
    policy: Policy,
    *,
    local_newer: bool,
) -> Merged:
    """Merge ``remote`` (the tracker's item, task space) with ``local`` (the task) against ``base``.

    Only fields the tracker carries (``remote``'s keys) whose direction is not ``off`` take part.
    A field changed on one side flows to the other if its direction lets it (``import``: remote →
    task, ``export``: task → remote); changed on both to different values, an ``import`` field takes
    the remote value, an ``export`` field keeps the local one, and a ``both`` field follows
    ``policy`` (``newest`` by ``local_newer``; ``manual`` parks it: nothing written, base kept).
    ``labels`` merge as sets: what either side added or removed since the base is applied to both,
    so they never conflict. Without a base (a first link), every differing field is a conflict."""
    base = normalize(base) if base is not None else None
    local, remote = normalize(local), normalize(remote)
    out = Merged()
    for name, r in remote.items():
        direction = directions.get(name, "both")
        if direction == "off" or name not in local:
            continue
        here = local[name]
        b = base.get(name, _MISSING) if base is not None else _MISSING
        if here == r:
            out.base[name] = here
            continue
        if name == "labels" and b is not _MISSING:
            _merge_labels(out, b, here, r, direction)
            continue
        if b is not _MISSING and r == b:  # changed here only
            if direction in ("both", "export"):
                out.to_remote[name] = here
                out.base[name] = here
            else:
                out.base[name] = r
        elif b is not _MISSING and here == b:  # changed there only
            if direction in ("both", "import"):
                out.to_local[name] = r
            out.base[name] = r
        else:
            winner = _winner(direction, policy, local_newer)
            if winner == "local":
                out.to_remote[name] = here
                out.base[name] = here
            elif winner == "remote":
                out.to_local[name] = r
                out.base[name] = r
            else:
                out.conflicts.append(Conflict(name, None if b is _MISSING else b, here, r))
                if b is not _MISSING:
                    out.base[name] = b
    return out


_MISSING: Any = object()


def _winner(direction: Direction, policy: Policy, local_newer: bool) -> str:
    if direction == "import":
        return "remote"
    if direction == "export":
        return "local"
    if policy == "newest":
        return "local" if local_newer else "remote"
    return policy  # local, remote or manual


def _merge_labels(out: Merged, base: list[str], local: list[str], remote: list[str], direction: Direction) -> None:
    """Apply each side's additions and removals since ``base`` to the sides ``direction`` writes."""
    b, mine, r = set(base or ()), set(local), set(remote)
    new_local = (mine | (r - b)) - (b - r) if direction in ("both", "import") else mine
    new_remote = (r | (mine - b)) - (b - mine) if direction in ("both", "export") else r
    if new_local != mine:
        out.to_local["labels"] = sorted(new_local)
    if new_remote != r:
        out.to_remote["labels"] = sorted(new_remote)
    out.base["labels"] = sorted(new_remote)
