"""``tidings serve`` for bench/authz.py, run as ``python bench/_serve.py [--no-audit] [serve options]``.

Without ``--no-audit`` it is exactly ``tidings serve``. With it, the audit append is a no-op in
this server process: ``tidings.audit.chain.append`` and every module attribute that holds it
(``from ..audit import append``, under any name; found by scanning ``sys.modules`` after
importing all of tidings) are replaced, so the same server runs the same code minus the audit
entry. The bench checks that this server appends nothing and that the other one appends an
entry per change.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from typing import Any


async def _no_append(conn: Any, actor: Any, action: str, **_: Any) -> dict[str, Any]:
    return {"seq": None, "hash": None}  # what callers read of an entry (a revision links its seq)


def disable_audit() -> list[str]:
    """Replace the audit append everywhere it is reachable by name; the names patched."""
    import tidings
    from tidings.audit import chain

    for info in pkgutil.walk_packages(tidings.__path__, "tidings."):
        if ".migrations." in info.name:
            continue
        try:
            importlib.import_module(info.name)
        except Exception:  # an optional extra that isn't installed: nothing of it runs here either
            continue
    original = chain.append
    patched = []
    for name, module in list(sys.modules.items()):
        if name == "tidings" or name.startswith("tidings."):
            for attr, value in list(vars(module).items()):
                if value is original:  # under any name it was imported as
                    setattr(module, attr, _no_append)
                    patched.append(f"{name}.{attr}")
    if "tidings.audit.chain.append" not in patched:
        raise SystemExit("could not disable the audit append: tidings.audit.chain.append not found")
    return patched


if __name__ == "__main__":
    args = sys.argv[1:]
    if "--no-audit" in args:
        args.remove("--no-audit")
        print(f"audit append disabled in {', '.join(sorted(disable_audit()))}", file=sys.stderr)
    from tidings.cli import main

    sys.argv = ["tidings", "serve", *args]
    main()
