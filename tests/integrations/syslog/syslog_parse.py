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
    assert not re.search(r"[\x00-\x08\x0a-\x1f\x7f]", msg), "CEF escapes line breaks; no other controls"
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


_LEEF_DELIMITER = re.compile(r"(?:0x|x)([0-9A-Fa-f]{1,4})|([^\x00-\x20])", re.S)
_LEEF_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def parse_leef(msg: str) -> tuple[list[str], str, dict[str, str]]:
    """(vendor, product, version, event id), the delimiter, the attributes: a strict LEEF 2.0 reader
    written from IBM's "LEEF event components" and "Best practices guidelines for LEEF events".

    LEEF has no escape sequences: the header is the first six ``|``-separated fields, the sixth
    declaring the delimiter (one character, or ``x``/``0x`` and 1 to 4 hex digits); the attributes
    are split at every delimiter and each at its first ``=``. Keys have no spaces or ``=``; values no
    tabs. An event is one line: no control characters anywhere (a tab only as the delimiter)."""
    assert msg.startswith("LEEF:2.0|"), msg[:40]
    parts = msg.split("|", 6)
    assert len(parts) == 7, f"a LEEF 2.0 header has six fields: {msg[:120]!r}"
    header, declared, payload = parts[1:5], parts[5], parts[6]
    assert header[0] and header[1], "Vendor and Product are required"
    assert not any(_LEEF_CONTROL.search(f) for f in header), f"a control character in the header: {header!r}"
    m = _LEEF_DELIMITER.fullmatch(declared)
    assert m, f"not a LEEF 2.0 delimiter declaration: {declared!r}"
    delimiter = chr(int(m[1], 16)) if m[1] else m[2]
    attrs: dict[str, str] = {}
    for pair in payload.split(delimiter):
        key, eq, value = pair.partition("=")
        assert eq, f"no = in {pair!r}"
        assert key and " " not in key and key not in attrs, f"a bad or repeated key {key!r}"
        assert not _LEEF_CONTROL.search(value), f"a tab, line break or control character in {key}={value!r}"
        attrs[key] = value
    return header, delimiter, attrs


def leef_shown(value: str, delimiter: str) -> str:
    """What a LEEF value can carry of ``value``, as docs/syslog.md says tidings sends it: the
    delimiter, line breaks (CR LF is one), tabs and other control characters become spaces."""
    out = re.sub(r"\r\n|[\x00-\x1f\x7f]", " ", value)
    return out.replace(delimiter, " ")


def leef_header_shown(value: str) -> str:
    """What a LEEF header field can carry of ``value``: ``|`` and control characters as spaces."""
    return re.sub(r"\r\n|[\x00-\x1f\x7f|]", " ", value)
