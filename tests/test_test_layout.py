"""Test modules have unique file names: tests/ folders are not packages, so pytest imports each test
module by its bare name and refuses the second of two with the same name (a whole folder's tests then
never run: it happened twice with test_tokens.py and test_e2e.py)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).parent


def test_every_test_module_name_is_unique() -> None:
    seen: defaultdict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        seen[path.name].append(str(path.relative_to(TESTS)))
    assert {name: paths for name, paths in seen.items() if len(paths) > 1} == {}
