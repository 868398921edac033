"""Getting syslog messages to the receiver: UDP datagrams, or one persistent TCP / TLS connection.

TCP and TLS (RFC 6587 / RFC 5425) keep one connection per integration and write one frame at a
time through it (``LEN SP MSG``, octet counting; or ``MSG LF``, non-transparent framing, over plain
TCP only). A connection the receiver closed or reset is noticed before the next write and replaced;
a write that fails is made again, whole, on a new connection. Syslog over TCP has no
acknowledgement: a frame the kernel accepted counts as sent, so a receiver that dies with frames in
its socket buffer loses them, and one retried after a reset may get a frame twice (at least once,
no receiver-side dedup). UDP can confirm nothing; an ICMP port-unreachable seen since the last
datagram fails the next send (retryable).

Every connection goes through the outbound guard (:class:`~tidings.security.outbound.Destinations`):
TCP through :meth:`Destinations.connect` (the address actually connected to is the one checked),
UDP through the same checks on the resolved addresses, before a socket is made.
"""

from __future__ import annotations

import asyncio
import select
import socket
import ssl
from dataclasses import dataclass
from typing import Literal

from ...security.outbound import DestinationRefused, Destinations

Transport = Literal["udp", "tcp", "tls"]
Framing = Literal["octet-counting", "lf"]
TLS13_SETTLE = 0.3
"""Seconds a new TLS 1.3 connection waits for the server's verdict on the client (see ``_settle``)."""


class TlsSetupError(Exception):
    """The TLS settings can't be used (an unreadable CA file, a key that doesn't match or whose
    password is wrong): permanent until they change."""


@dataclass(frozen=True)
class TlsOptions:
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    key_password: str | None = None
    verify: bool = True
    verify_hostname: bool = True
    server_name: str | None = None

    def context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.ca_file)
        if not self.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif not self.verify_hostname:
            ctx.check_hostname = False
        if self.cert_file:
            ctx.load_cert_chain(self.cert_file, self.key_file, password=self.key_password)
        return ctx


class _Stream:
    """One TCP or TLS connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @property
    def broken(self) -> bool:
        """The receiver closed or reset it (seen by the event loop): it can't take a frame."""
        return self.writer.is_closing() or self.reader.at_eof() or self.reader.exception() is not None

    @property
    def readable(self) -> bool:
        """The socket has something to read: the receiver never sends data, so most likely it
        closed or reset the connection."""
        sock = self.writer.get_extra_info("socket")
        if sock is None or sock.fileno() < 0:
            return False
        try:
            return bool(select.select([sock.fileno()], [], [], 0)[0])
        except (OSError, ValueError):
            return True

    def close(self) -> None:
        self.writer.close()


class _Datagrams(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.error: OSError | None = None

    def error_received(self, exc: Exception) -> None:
        if isinstance(exc, OSError):
            self.error = exc


class Connection:
    """Where an integration's frames go; :meth:`send` raises what went wrong (OSError,
    ssl.SSLError, TimeoutError, DestinationRefused) for the notifier to classify."""

    def __init__(
        self, host: str, port: int, transport: Transport, framing: Framing, destinations: Destinations,
        timeout: float, tls: TlsOptions | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.transport = transport
        self.framing: Framing = "octet-counting" if transport == "tls" else framing
        self.destinations = destinations
        self.timeout = timeout
        self.tls = tls or TlsOptions()
        self._ssl: ssl.SSLContext | None = None
        self._stream: _Stream | None = None
        self._udp: tuple[asyncio.DatagramTransport, _Datagrams] | None = None
        self._lock = asyncio.Lock()
        self.connects = 0
        """Connections opened so far (tests and metrics)."""

    @property
    def one_line(self) -> bool:
        return self.transport == "tcp" and self.framing == "lf"

    def framed(self, message: bytes) -> bytes:
        if self.transport == "udp":
            return message
        if self.framing == "lf":
            return message + b"\n"
        return b"%d %s" % (len(message), message)

    def ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                self._ssl = self.tls.context()
            except (ssl.SSLError, OSError) as exc:  # never the password: ssl doesn't show it
                raise TlsSetupError(f"could not load the TLS files (CA, client certificate or key): {exc}") from None
        return self._ssl

    # -- TCP / TLS -------------------------------------------------------------------------------
    async def _open_stream(self) -> _Stream:
        tls = self.transport == "tls"
        ctx = self.ssl_context() if tls else None
        async with asyncio.timeout(self.timeout):
            sock = await self.destinations.connect(self.host, self.port)
            try:
                reader, writer = await asyncio.open_connection(
                    sock=sock, ssl=ctx, server_hostname=(self.tls.server_name or self.host.strip("[]")) if tls else None,
                    ssl_handshake_timeout=self.timeout if tls else None,
                )
            except BaseException:
                sock.close()
                raise
        stream = _Stream(reader, writer)
        if tls:
            try:
                await self._settle(stream)
            except BaseException:
                stream.close()
                raise
        self.connects += 1
        return stream

    async def _settle(self, stream: _Stream) -> None:
        """With TLS 1.3 the client's handshake is over before the server has checked the client's
        certificate: a server that refuses it says so right after, and frames written meanwhile
        are lost. Listen for that verdict briefly before the connection is used."""
        if stream.writer.get_extra_info("ssl_object").version() != "TLSv1.3":
            return
        try:
            async with asyncio.timeout(min(TLS13_SETTLE, self.timeout)):
                data = await stream.reader.read(1)
        except TimeoutError:
            return
        if not data:
            hint = "does it accept our client certificate?" if self.tls.cert_file else (
                "does it require a client certificate? set tls_cert_file and tls_key_file")
            raise ConnectionResetError(f"the receiver closed the connection right after the TLS handshake ({hint})")

    async def _send_stream(self, data: bytes) -> None:
        stream = self._stream
        if stream is not None and stream.readable:
            # A close or reset (or a TLS record) arrived that the loop hasn't handled yet: one turn
            # to poll the socket, one to run what the poll found (this coroutine resumes first).
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        if stream is not None and stream.broken:
            stream.close()
            stream = self._stream = None
        fresh = stream is None
        if stream is None:
            stream = self._stream = await self._open_stream()
        try:
            await self._write(stream, data)
        except (OSError, TimeoutError):
            if fresh:
                raise
            # The old connection failed mid-write: the whole frame again, on a new one.
            stream = self._stream = await self._open_stream()
            await self._write(stream, data)

    async def _write(self, stream: _Stream, data: bytes) -> None:
        try:
            stream.writer.write(data)
            async with asyncio.timeout(self.timeout):
                await stream.writer.drain()
        except BaseException:
            stream.close()
            if self._stream is stream:
                self._stream = None
            raise

    # -- UDP -------------------------------------------------------------------------------------
    async def _resolve(self, kind: socket.SocketKind) -> tuple[int, tuple[object, ...]]:
        """The first address of ``host`` the guard allows, with its family."""
        if reason := self.destinations.host_refusal(self.host):
            raise DestinationRefused(reason)
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            infos = await loop.getaddrinfo(self.host.strip("[]"), self.port, type=kind)
        kept, first = self.destinations.filter(self.host, [str(info[4][0]) for info in infos])
        if not kept:
            raise DestinationRefused(first or f"destination {self.host} has no address")
        family, _, _, _, address = infos[kept[0]]
        return family, address

    async def _open_udp(self) -> tuple[asyncio.DatagramTransport, _Datagrams]:
        family, address = await self._resolve(socket.SOCK_DGRAM)
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(_Datagrams, remote_addr=address, family=family)
        self.connects += 1
        return transport, protocol

    async def _send_udp(self, data: bytes) -> None:
        if self._udp is not None and (self._udp[0].is_closing() or self._udp[1].error is not None):
            transport, protocol = self._udp
            self._udp = None
            transport.close()
            if protocol.error is not None:
                raise protocol.error
        if self._udp is None:
            self._udp = await self._open_udp()
        self._udp[0].sendto(data)

    # -- the interface ---------------------------------------------------------------------------
    async def send(self, message: bytes) -> None:
        """Send one syslog message (framed here); one at a time, in the order called."""
        await self.send_many([message])

    async def send_many(self, messages: list[bytes]) -> None:
        """Send syslog messages (framed here) in order: over TCP/TLS their frames back to back in
        one write (a failure sends them all again, whole, on a new connection: at least once);
        over UDP a datagram each."""
        # One deadline for the whole send, waiting behind other sends included: it fails as timed
        # out (retried) before the dispatcher's watchdog has to step in. A connection cut short by
        # it is closed, never reused with half a frame on it.
        async with asyncio.timeout(self.timeout), self._lock:
            if self.transport == "udp":
                for message in messages:
                    await self._send_udp(message)
            else:
                await self._send_stream(b"".join(self.framed(m) for m in messages))

    async def check(self) -> str:
        """Open a new connection (with the TLS handshake) and close it, sending nothing; what was
        checked, in words."""
        if self.transport == "udp":
            _, address = await self._resolve(socket.SOCK_DGRAM)
            return f"UDP to {address[0]}:{self.port} (allowed; UDP can't confirm that anything listens)"
        stream = await self._open_stream()
        try:
            peer = stream.writer.get_extra_info("peername")
            if self.transport == "tcp":
                return f"TCP connection to {peer[0]}:{peer[1]}"
            verified = "certificate verified" if self.tls.verify else "certificate NOT verified (tls_verify: false)"
            version = stream.writer.get_extra_info("ssl_object").version()
            return f"TLS connection to {peer[0]}:{peer[1]} ({version}, {verified})"
        finally:
            stream.close()
            await _closed(stream.writer)

    async def close(self) -> None:
        async with self._lock:
            stream, self._stream = self._stream, None
            udp, self._udp = self._udp, None
        if stream is not None:
            stream.close()
            await _closed(stream.writer)
        if udp is not None:
            udp[0].close()


async def _closed(writer: asyncio.StreamWriter) -> None:
    try:
        async with asyncio.timeout(2.0):
            await writer.wait_closed()
    except (OSError, TimeoutError, ssl.SSLError):
        pass
