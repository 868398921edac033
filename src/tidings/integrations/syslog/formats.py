"""What a message becomes on the wire: an RFC 5424 syslog message whose MSG is plain text (with
structured data), an ArcSight CEF event or an IBM QRadar LEEF 2.0 event. Pure functions: the
delivery's own parts (its time, the message and delivery ids) go in through slots that
:func:`frame` fills when sending, so that :meth:`SyslogNotifier.render` stays pure and a retry
sends the same bytes.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass

from ...message import Format, Message, Priority
from ..base import TRUNCATED
from ..markup import html_to_text

SEVERITY: dict[Priority, int] = {
    Priority.CRITICAL: 2,  # crit
    Priority.HIGH: 3,  # err
    Priority.MEDIUM: 4,  # warning
    Priority.LOW: 5,  # notice
    Priority.INFO: 6,  # info
}
"""RFC 5424 severity of each priority."""
SIEM_SEVERITY: dict[Priority, int] = {
    Priority.CRITICAL: 10,
    Priority.HIGH: 8,
    Priority.MEDIUM: 5,
    Priority.LOW: 3,
    Priority.INFO: 1,
}
"""CEF ``Severity`` (0-10) and LEEF ``sev`` (1-10) of each priority."""
FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "console": 14,
    "solaris-cron": 15, **{f"local{i}": 16 + i for i in range(8)},
}
SD_ID = "tidings@32473"
LABELS_SD_ID = "labels@32473"
"""32473 is the enterprise number RFC 5612 reserves for documentation and examples."""
NIL = "-"
BOM = "\ufeff"
LEEF_TIME_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSZ"
"""``devTimeFormat``: Java SimpleDateFormat, as QRadar reads it."""

_TAG = secrets.token_hex(6)
SLOT_ID = f"\u2060tidings-id-{_TAG}\u2060"
SLOT_DELIVERY = f"\u2060tidings-delivery-{_TAG}\u2060"
SLOT_MS = f"\u2060tidings-ms-{_TAG}\u2060"
SLOT_LEEF_TIME = f"\u2060tidings-leeftime-{_TAG}\u2060"
_NOT_PRINTUSASCII = re.compile(r"[^\x21-\x7e]")
_NOT_SD_NAME = re.compile(r'[^\x21-\x7e]|[= \]"]')
_LEEF_KEY = re.compile(r"[^A-Za-z0-9_.\-]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CONTROL_NOT_TAB = re.compile(r"\r\n|[\x00-\x08\x0a-\x1f\x7f]")
"""A line break (CR LF counts as one) or another C0 control character but the tab, or DEL."""
_LEEF_VALUE_UNSAFE = re.compile(r"\r\n|[\x00-\x1f\x7f]")
_LEEF_HEADER_UNSAFE = re.compile(r"\r\n|[\x00-\x1f\x7f|]")


# -- escaping --------------------------------------------------------------------------------------
def header_field(value: str, limit: int) -> str:
    """An RFC 5424 header field (HOSTNAME, APP-NAME, PROCID, MSGID): printable US-ASCII only, at most
    ``limit`` characters, ``-`` (NILVALUE) when empty."""
    return _NOT_PRINTUSASCII.sub("_", value)[:limit] or NIL


def sd_name(value: str) -> str:
    """An SD-NAME: printable US-ASCII but ``=``, space, ``]`` and ``"``, 1 to 32 characters."""
    return _NOT_SD_NAME.sub("_", value)[:32] or "_"


def sd_value(value: str) -> str:
    """A PARAM-VALUE: ``"``, ``\\`` and ``]`` escaped with a backslash (RFC 5424 section 6.3.3)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def cef_header(value: str) -> str:
    """A CEF header (prefix) field: ``\\`` and ``|`` escaped with a backslash; line breaks and other
    control characters but the tab become spaces (CEF allows several lines only in extension values)."""
    return _CONTROL_NOT_TAB.sub(" ", value.replace("\\", "\\\\").replace("|", "\\|"))


def cef_value(value: str) -> str:
    """A CEF extension value: ``\\`` and ``=`` escaped, a line break as ``\\n`` (``\\r`` for a lone
    CR), other control characters but the tab as spaces."""
    value = value.replace("\\", "\\\\").replace("=", "\\=")
    value = value.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\r")
    return _CONTROL_NOT_TAB.sub(" ", value)


def leef_header(value: str) -> str:
    """A LEEF header field. LEEF has no escapes (IBM's "LEEF event components"): QRadar splits the
    header at every ``|``, so a ``|`` becomes a space, and so do line breaks, tabs and other control
    characters. A backslash is an ordinary character."""
    return _LEEF_HEADER_UNSAFE.sub(" ", value)


def leef_value(value: str, delimiter: str) -> str:
    """A LEEF attribute value. LEEF has no escapes and QRadar splits attributes at every delimiter,
    so the declared delimiter becomes a space, and so do line breaks (an event is one line), tabs
    ("values cannot contain tabs") and other control characters. ``=``, ``|`` and ``\\`` stay as
    they are (a key ends at its first ``=``)."""
    return _LEEF_VALUE_UNSAFE.sub(" ", value).replace(delimiter, " ")


def leef_key(value: str) -> str:
    return _LEEF_KEY.sub("_", value)[:64] or "_"


def leef_delimiter_field(delimiter: str) -> str:
    """How the header declares the delimiter: the character itself when it is printable US-ASCII,
    else ``x`` and its code in hex (IBM allows 1 to 4 hex digits: a tab is ``x09``, ``¦`` ``xA6``)."""
    return delimiter if 0x21 <= ord(delimiter) <= 0x7E else f"x{ord(delimiter):02X}"


# -- the parts of a message ------------------------------------------------------------------------
def event_id(message: Message) -> str:
    """MSGID / CEF Signature ID / LEEF EventID: the ``event_type`` label, else ``alert`` (``resolve``
    for a resolving message)."""
    return message.labels.get("event_type") or ("resolve" if message.resolves else "alert")


def text_of(message: Message) -> str:
    """Title, body, fields and links as plain text on several lines."""
    body = html_to_text(message.body) if message.format is Format.HTML else message.body.strip("\n")
    parts = [message.title]
    if body:
        parts.append(body)
    lines = [f"{f.name}: {f.value}" for f in message.fields] + [f"{link.label}: {link.url}" for link in message.links]
    if lines:
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def sd_elements(message: Message, project: str) -> tuple[str, str]:
    """The ``[tidings@32473 ...]`` element and the ``[labels@32473 ...]`` one ("" without labels)."""
    params = [("id", SLOT_ID), ("delivery", SLOT_DELIVERY), ("project", project), ("priority", message.priority._value_)]
    if message.thread_key:
        params.append(("thread", message.thread_key))
    if message.dedup_key:
        params.append(("dedup", message.dedup_key))
    if message.resolves:
        params.append(("resolves", "true"))
    own = f"[{SD_ID} " + " ".join(f'{k}="{sd_value(v)}"' for k, v in params) + "]"
    if not message.labels:
        return own, ""
    return own, f"[{LABELS_SD_ID} " + " ".join(f'{sd_name(k)}="{sd_value(v)}"' for k, v in sorted(message.labels.items())) + "]"


@dataclass(frozen=True)
class Product:
    vendor: str
    product: str
    version: str


def cef(message: Message, project: str, hostname: str, product: Product) -> str:
    """``CEF:0|Vendor|Product|Version|SignatureID|Name|Severity|Extension``."""
    header = "|".join(cef_header(v) for v in (
        product.vendor, product.product, product.version, event_id(message), message.title,
    ))
    ext: list[tuple[str, str]] = [
        ("rt", SLOT_MS), ("dvchost", hostname), ("externalId", SLOT_ID),
        ("cat", message.priority.value), ("act", "resolve" if message.resolves else "alert"),
        ("cs1Label", "project"), ("cs1", project),
        ("cs5Label", "deliveryId"), ("cs5", SLOT_DELIVERY),
    ]
    if message.thread_key:
        ext += [("cs2Label", "threadKey"), ("cs2", message.thread_key)]
    if message.dedup_key:
        ext += [("cs3Label", "dedupKey"), ("cs3", message.dedup_key)]
    if message.labels:
        ext += [("cs4Label", "labels"), ("cs4", "; ".join(f"{k}={v}" for k, v in sorted(message.labels.items())))]
    ext.append(("msg", text_of(message)))  # last: what truncation cuts
    extension = " ".join(f"{k}={cef_value(v)}" for k, v in ext)
    return f"CEF:0|{header}|{SIEM_SEVERITY[message.priority]}|{extension}"


def leef(message: Message, project: str, hostname: str, product: Product, delimiter: str) -> str:
    """``LEEF:2.0|Vendor|Product|Version|EventID|Delimiter|key=value<delimiter>...``."""
    header = "|".join(leef_header(v) for v in (product.vendor, product.product, product.version, event_id(message)))
    attrs: list[tuple[str, str]] = [
        ("devTime", SLOT_LEEF_TIME), ("devTimeFormat", LEEF_TIME_FORMAT),
        ("sev", str(SIEM_SEVERITY[message.priority])), ("cat", message.priority.value),
        # Not identHostName: QRadar feeds identity properties to its asset profiler (a login's
        # host); the sender's name is in the syslog header, which QRadar reads as the log source.
        ("tidingsHost", hostname), ("messageId", SLOT_ID), ("deliveryId", SLOT_DELIVERY),
        ("project", project), ("resolves", "true" if message.resolves else "false"),
        ("title", message.title),
    ]
    if message.thread_key:
        attrs.append(("threadKey", message.thread_key))
    if message.dedup_key:
        attrs.append(("dedupKey", message.dedup_key))
    attrs += [(f"label.{leef_key(k)}", v) for k, v in sorted(message.labels.items())]
    attrs.append(("msg", text_of(message)))  # last: what truncation cuts
    body = delimiter.join(f"{k}={leef_value(v, delimiter)}" for k, v in attrs)
    return f"LEEF:2.0|{header}|{leef_delimiter_field(delimiter)}|{body}"


# -- the frame -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SyslogPayload:
    """One rendered message: everything but the delivery's time and ids."""

    pri: int
    header: str
    """HOSTNAME APP-NAME PROCID MSGID."""
    sd: str
    """STRUCTURED-DATA (``-`` for CEF and LEEF, which carry the same in their extension)."""
    msg: str
    bom: bool
    """Whether MSG is UTF-8 text marked with a BOM (rfc5424), or a CEF/LEEF record (no BOM, so that
    the record starts right after the header where SIEM parsers look for it)."""
    escaped: bool
    """MSG is a CEF record: a cut must not leave half an escape (a lone trailing backslash). LEEF has
    no escapes."""
    sd_short: str = NIL
    """The structured data without the labels element, for when a long one would not fit."""


_second: tuple[tuple[int, int, int, int], str] = ((-1, 0, 0, 0), "")
"""The last second formatted, ``YYYY-MM-DDTHH:MM:SS``: a connection sends many frames a second,
and strftime cost more than the rest of the header."""


def timestamp(when: float) -> str:
    """RFC 5424's TIMESTAMP in UTC with microseconds (``%Y-%m-%dT%H:%M:%S.%fZ``)."""
    global _second
    t = dt.datetime.fromtimestamp(when, dt.UTC)
    key = (t.toordinal(), t.hour, t.minute, t.second)
    last, head = _second
    if key != last:
        head = t.strftime("%Y-%m-%dT%H:%M:%S")
        _second = (key, head)  # one assignment: a thread sees the old pair or the new
    return f"{head}.{t.microsecond:06d}Z"


def leef_time(when: float) -> str:
    t = dt.datetime.fromtimestamp(when, dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}+0000"


def fill(text: str, when: float, message_id: str, delivery_id: str) -> str:
    # Ids are printable US-ASCII without quotes or backslashes; nothing to escape in them. The
    # times only where their slot is (each format has one at most): formatting them costs more
    # than looking.
    if SLOT_MS in text:
        text = text.replace(SLOT_MS, str(int(when * 1000)))
    if SLOT_LEEF_TIME in text:
        text = text.replace(SLOT_LEEF_TIME, leef_time(when))
    return text.replace(SLOT_ID, message_id).replace(SLOT_DELIVERY, delivery_id)


def frame(
    payload: SyslogPayload, when: float, message_id: str, delivery_id: str, limit: int, *, one_line: bool = False
) -> bytes:
    """The syslog message (without transport framing) of ``payload`` for one delivery, at most
    ``limit`` bytes: MSG is cut (at a character boundary, never inside an escape) and marked, and
    when the header and structured data alone are too long the labels are left out. ``one_line``:
    line breaks in MSG become spaces (LF framing can't carry them)."""
    msg = fill(payload.msg, when, message_id, delivery_id)
    sd = fill(payload.sd, when, message_id, delivery_id)
    if one_line:
        msg, sd = _LINE_BREAK.sub(" ", msg), _LINE_BREAK.sub(" ", sd)
    head = f"<{payload.pri}>1 {timestamp(when)} {payload.header} "
    body = ((BOM if payload.bom else "") + msg).encode()
    prefix = f"{head}{sd} ".encode()
    if len(prefix) + len(body) <= limit:
        return prefix + body
    if len(prefix) > limit // 2:
        short = fill(payload.sd_short, when, message_id, delivery_id)
        prefix = f"{head}{_LINE_BREAK.sub(' ', short) if one_line else short} ".encode()
    room = limit - len(prefix) - len(TRUNCATED.encode())
    if room <= 0:
        return prefix[:limit].decode("utf-8", "ignore").encode()
    cut = body[:room].decode("utf-8", "ignore")
    if payload.escaped:
        trailing = len(cut) - len(cut.rstrip("\\"))
        if trailing % 2:
            cut = cut[:-1]
    return prefix + (cut + TRUNCATED).encode()
