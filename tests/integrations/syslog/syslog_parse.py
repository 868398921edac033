"""Reading syslog messages back the way a receiver does: RFC 5424 (header, structured data with
its escapes, MSG), ArcSight CEF and QRadar LEEF 2.0 (with their escapes). Written from the
specifications, independently of the code that writes them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HEADER = re.compile(r"^<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) ")


@dataclass
class Syslog:
    pri: int
    timestamp: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    sd: dict[str, dict[str, str]] = field(default_factory=dict)
    msg: str = ""
    bom: bool = False

    @property
    def facility(self) -> int:
        return self.pri // 8

    @property
    def severity(self) -> int:
        return self.pri % 8


def parse_5424(raw: str) -> Syslog:
    m = _HEADER.match(raw)
    assert m, f"not an RFC 5424 header: {raw[:120]!r}"
    out = Syslog(int(m[1]), m[2], m[3], m[4], m[5], m[6])
    i = m.end()
    if raw[i] == "-":
        i += 1
    else:
        while i < len(raw) and raw[i] == "[":
            i += 1
            j = i
            while raw[j] not in " ]":
                j += 1
            sd_id, i = raw[i:j], j
            params: dict[str, str] = {}
            while raw[i] == " ":
                eq = raw.index("=", i)
                name = raw[i + 1:eq]
                assert raw[eq + 1] == '"', raw[eq:eq + 20]
                k, value = eq + 2, []
                while raw[k] != '"':
                    if raw[k] == "\\" and raw[k + 1] in '"\\]':
                        value.append(raw[k + 1])
                        k += 2
                    else:
                        assert raw[k] != "]", "an unescaped ] inside a PARAM-VALUE"
                        value.append(raw[k])
                        k += 1
                params[name] = "".join(value)
                i = k + 1
            assert raw[i] == "]", raw[i:i + 20]
            i += 1
            out.sd[sd_id] = params
    if i < len(raw):
        assert raw[i] == " ", f"no space before MSG: {raw[i:i + 20]!r}"
        msg = raw[i + 1:]
        out.bom = msg.startswith("\ufeff")
        out.msg = msg.removeprefix("\ufeff")
    return out


def _split_unescaped(text: str, sep: str, limit: int) -> list[str]:
    parts, cur, i = [], [], 0
    while i < len(text) and len(parts) < limit:
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            cur.append(text[i:i + 2])
            i += 2
            continue
        if c == sep:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(c)
        i += 1
    parts.append("".join(cur) + text[i:])
    return parts


def _unescape(text: str, escapes: dict[str, str]) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text) and text[i + 1] in escapes:
            out.append(escapes[text[i + 1]])
            i += 2
        else:
            assert text[i] != "\\", f"a lone backslash in {text!r}"
            out.append(text[i])
            i += 1
    return "".join(out)


def parse_cef(msg: str) -> tuple[list[str], dict[str, str]]:
    """(the six header fields after ``CEF:0``, the extension)."""
    assert msg.startswith("CEF:0|"), msg[:40]
    parts = _split_unescaped(msg[len("CEF:0|"):], "|", 6)
    assert len(parts) == 7, parts
    header = [_unescape(p, {"\\": "\\", "|": "|"}) for p in parts[:6]]
    ext_text = parts[6]
    keys = list(re.finditer(r"(?:^| )([A-Za-z0-9_]+)=", ext_text))
    keys = [k for k in keys if not _escaped_at(ext_text, k.end() - 1)]
    ext: dict[str, str] = {}
    for n, k in enumerate(keys):
        end = keys[n + 1].start() if n + 1 < len(keys) else len(ext_text)
        ext[k[1]] = _unescape(ext_text[k.end():end], {"\\": "\\", "=": "=", "n": "\n", "r": "\r"})
    return header, ext


def _escaped_at(text: str, pos: int) -> bool:
    n = 0
    while pos - 1 - n >= 0 and text[pos - 1 - n] == "\\":
        n += 1
    return n % 2 == 1


def parse_leef(msg: str) -> tuple[list[str], str, dict[str, str]]:
    """(vendor, product, version, event id), the delimiter, the attributes."""
    assert msg.startswith("LEEF:2.0|"), msg[:40]
    parts = _split_unescaped(msg[len("LEEF:2.0|"):], "|", 5)
    assert len(parts) == 6, parts
    header = [_unescape(p, {"\\": "\\", "|": "|"}) for p in parts[:4]]
    declared = parts[4]
    delimiter = chr(int(declared[1:], 16)) if len(declared) > 1 and declared[0] in "xX" else declared
    attrs: dict[str, str] = {}
    for pair in _split_unescaped(parts[5], delimiter, 10_000):
        key, eq, value = pair.partition("=")
        assert eq, f"no = in {pair!r}"
        attrs[key] = _unescape(value, {"\\": "\\", delimiter: delimiter, "n": "\n", "r": "\r"})
    return header, delimiter, attrs
