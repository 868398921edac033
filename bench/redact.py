"""What masking costs as secrets accumulate: N secrets registered one after another (as a hub
reads its vault, and as each OAuth refresh registers a new token), a text masked after each, then
a log line masked once they are all in.

    PYTHONPATH=src python bench/redact.py [--secrets 200] [--lines 20000]

Baseline, measured in the same run: the whole pattern compiled again at every registration (what
``redact.register`` did before its levels) and one pattern of every form for the log line.
Goal: registering costs a tenth of the baseline or less at 200 secrets (it grows as n log n, the
baseline as n²), and a line, once registrations have stopped, about what one pattern costs (ratio
≤ 1.5: the same pattern, behind one more check). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import re
import secrets
import time

from tidings.security import redact

LINE = 'delivery failed: HTTP 500 from https://hooks.example.com/services/T000/B000 body={"ok":false}'


def register_all(values: list[str]) -> float:
    redact.restore((set(), 0, ()))
    started = time.perf_counter()
    for value in values:
        redact.register([value])
        redact.redact("a text between two registrations")
    return time.perf_counter() - started


def register_all_recompiling(values: list[str]) -> float:
    """The baseline: every form in one pattern, compiled again at each registration."""
    known: set[str] = set()
    started = time.perf_counter()
    for value in values:
        known |= redact.forms(value)
        pattern = re.compile(redact._trie_pattern(known))
        pattern.sub(lambda m: redact.mask(m.group(0)), "a text between two registrations")
    return time.perf_counter() - started


def per_line(mask: object, lines: int) -> float:
    started = time.perf_counter()
    for _ in range(lines):
        mask(LINE)  # type: ignore[operator]
    return (time.perf_counter() - started) / lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=200)
    parser.add_argument("--lines", type=int, default=20_000)
    args = parser.parse_args()
    values = ["tok-" + secrets.token_urlsafe(24) for _ in range(args.secrets)]
    ours = register_all(values)
    baseline = register_all_recompiling(values)
    for _ in range(redact.COMPACT_AFTER):  # registrations have stopped: the levels become one
        redact.redact(LINE)
    one = re.compile(redact._trie_pattern(redact._known))
    line_ours = per_line(redact.redact, args.lines)
    line_one = per_line(lambda text: one.sub(lambda m: redact.mask(m.group(0)), text), args.lines)
    print(f"{args.secrets} secrets registered one by one: {ours:.2f} s; recompiling the whole pattern each time"
          f" {baseline:.2f} s (ratio {ours / baseline:.3f})")
    print(f"a log line once they are in: {line_ours * 1e6:.1f} µs; one pattern {line_one * 1e6:.1f} µs"
          f" (ratio {line_ours / line_one:.2f})")
    print(json.dumps({
        "secrets": args.secrets, "register_s": round(ours, 3), "register_recompiling_s": round(baseline, 3),
        "register_vs_recompiling": round(ours / baseline, 3), "line_us": round(line_ours * 1e6, 2),
        "line_one_pattern_us": round(line_one * 1e6, 2), "line_vs_one_pattern": round(line_ours / line_one, 2),
    }))


if __name__ == "__main__":
    main()
