"""The outbound guard (SSRF): tidings only connects to public addresses, unless allow-listed.

Private, loopback, link-local, unique-local, shared (CGNAT), unspecified, multicast, reserved and
other non-global addresses are refused, also when an IPv6 form carries one (IPv4-mapped, NAT64,
6to4), and so are cloud metadata services (by address and by name). The check runs on the
address actually connected to: a host name is checked on what the resolver answered (so DNS
rebinding gets nowhere), an IP literal in any spelling (``2130706433``, ``0x7f000001``,
``127.1``, ``[::ffff:169.254.169.254]``) on the address it means.

``server.allow_destinations`` (and an integration's own ``allow_destinations``) lists networks
(``10.0.0.0/8``, ``127.0.0.1``) and host names (``hooks.internal.example``; every address such a
name resolves to is then allowed). A metadata address is allowed only by an entry of exactly that
address or name, never by a wider network such as ``0.0.0.0/0``.

HTTP integrations get the guard through :func:`guarded_connector` (a resolver that filters the
answers, and a client middleware for IP literals, which aiohttp never resolves); SMTP through
:meth:`Destinations.connect`, which hands aiosmtplib a socket already connected to a checked address.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from ..errors import TidingsError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

HINT = "allow it with server.allow_destinations"
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "169.254.169.254",  # AWS, GCP, Azure, OpenStack, DigitalOcean...
        "169.254.170.2",  # AWS ECS task metadata
        "169.254.170.23",  # AWS EKS pod identity
        "fd00:ec2::254",  # AWS IMDS over IPv6
        "fd00:ec2::23",  # AWS EKS pod identity over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
    )
)
METADATA_NAMES = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "metadata.azure.com",
        "instance-data",
        "instance-data.ec2.internal",
    }
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_UNIQUE_LOCAL = ipaddress.ip_network("fc00::/7")
_RFC1918 = tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"))
_NUMERIC_HOST = re.compile(r"^[0-9a-fA-FxX.]+$")
_HOST_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?)(\.[A-Za-z0-9_]([A-Za-z0-9_\-]{0,61}[A-Za-z0-9_])?)*$")


class DestinationRefused(TidingsError, aiohttp.ClientConnectionError):
    """tidings refused to connect to a destination; the message says why and how to allow it.
    Permanent: sending again would be refused again."""


def literal_address(host: str) -> IPAddress | None:
    """The address an IP literal means, in any spelling the C library accepts (``127.1``,
    ``2130706433``, ``0x7f000001``, ``0177.0.0.1``); None for a host name."""
    host = host.strip("[]").rstrip(".")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if not _NUMERIC_HOST.match(host) or not host[:1].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except OSError:
        return None


def _embedded(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for (IPv4-mapped, NAT64, 6to4), if any."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def _kind(address: IPAddress) -> str | None:
    """What makes ``address`` unfit to connect to, or None for a public address."""
    v6 = isinstance(address, ipaddress.IPv6Address)
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "an unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address in _CGNAT:
        return "a shared (CGNAT) address"
    if v6 and address.is_site_local:
        return "a site-local address"
    if address in _NAT64_LOCAL:
        return "a local-use NAT64 address"
    if address in _UNIQUE_LOCAL:
        return "a unique-local address"
    if any(address in n for n in _RFC1918):
        return "a private address"
    if address.is_reserved:
        return "a reserved address"
    if not address.is_global:
        return "a special-purpose (non-public) address"
    return None


def check_entry(entry: str) -> str:
    """An allow-list entry: a network or address (``10.0.0.0/8``, ``::1``) or a host name."""
    entry = entry.strip()
    try:
        ipaddress.ip_network(entry, strict=False)
        return entry
    except ValueError:
        pass
    if "/" in entry or ":" in entry:
        raise ValueError(f"{entry!r} is not a valid network (write e.g. 10.0.0.0/8 or fd00::/8)")
    if (address := literal_address(entry)) is not None:
        raise ValueError(f"{entry!r} means {address}: write the address as {address}")
    if not _HOST_NAME.match(entry.rstrip(".")):
        raise ValueError(f"{entry!r} is neither a network (10.0.0.0/8) nor a host name")
    return entry


def _name(host: str) -> str:
    return host.strip().rstrip(".").lower()


@dataclass(frozen=True)
class Destinations:
    """Where tidings may connect: public addresses, plus what the allow list names."""

    networks: tuple[IPNetwork, ...] = ()
    names: frozenset[str] = frozenset()
    _memo: dict[str, str | None] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def parse(cls, entries: Iterable[str]) -> Destinations:
        """From allow-list entries already checked by :func:`check_entry`."""
        networks: list[IPNetwork] = []
        names: set[str] = set()
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                names.add(_name(entry))
        return cls(tuple(networks), frozenset(names))

    @classmethod
    def anywhere(cls) -> Destinations:
        """Every address but the cloud metadata services."""
        return cls.parse(["0.0.0.0/0", "::/0"])

    def merged(self, entries: Iterable[str]) -> Destinations:
        more = Destinations.parse(entries)
        if not more.networks and not more.names:
            return self
        return Destinations(self.networks + more.networks, self.names | more.names)

    def _listed(self, address: IPAddress, exact: bool) -> bool:
        return any(
            address in n and (not exact or n.num_addresses == 1) for n in self.networks if n.version == address.version
        )

    def address_refusal(self, address: IPAddress, host: str | None = None) -> str | None:
        """Why connecting to ``address`` (which ``host`` resolved to, or spells) is refused, or None.
        An IPv6 form of an IPv4 address (mapped, NAT64, 6to4) is judged by the IPv4 address. A
        host name on the allow list may resolve anywhere but to a metadata address."""
        target = _embedded(address) or address
        kind = _kind(target)
        if kind is None:
            return None
        exact = target in METADATA_ADDRESSES
        if not exact and host is not None and _name(host) in self.names:
            return None
        if self._listed(address, exact) or self._listed(target, exact):
            return None
        if host is not None and literal_address(host) is None:
            meaning = f"{address}" + (f" ({target})" if target != address else "")
            return f"destination {_display(host)} resolves to {meaning}, {kind}; {HINT}"
        shown = _display(host) if host else str(address)
        meaning = f" ({target})" if str(target) != shown else ""
        return f"destination {shown}{meaning} is {kind}; {HINT}"

    def host_refusal(self, host: str) -> str | None:
        """What can be refused without DNS: a metadata name, or an IP literal's address.
        Checked on every request, so the answers are remembered (they never change)."""
        try:
            return self._memo[host]
        except KeyError:
            pass
        reason = self._host_refusal(host)
        if len(self._memo) < 4096:
            self._memo[host] = reason
        return reason

    def _host_refusal(self, host: str) -> str | None:
        name = _name(host)
        if name in self.names:
            return None
        if name in METADATA_NAMES:
            return f"destination {name} is a cloud metadata service; {HINT}"
        address = literal_address(host)
        return None if address is None else self.address_refusal(address, host)

    def filter(self, host: str, addresses: Sequence[str]) -> tuple[list[int], str | None]:
        """Indexes of the resolved ``addresses`` of ``host`` that may be connected to, and the
        first refusal (for the error when none may)."""
        kept: list[int] = []
        first: str | None = None
        for i, text in enumerate(addresses):
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue
            reason = self.address_refusal(address, host)
            if reason is None:
                kept.append(i)
            elif first is None:
                first = reason
        return kept, first

    async def connect(self, host: str, port: int) -> socket.socket:
        """A TCP socket connected to ``host``:``port`` on an address the guard allows (for
        aiosmtplib's ``sock=``; TLS then still verifies the certificate against ``host``)."""
        if reason := self.host_refusal(host):
            raise DestinationRefused(reason)
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        kept, first = self.filter(host, [str(info[4][0]) for info in infos])
        if not kept:
            raise DestinationRefused(first or f"destination {host} has no address")
        last: OSError | None = None
        for i in kept:
            family, kind, proto, _, address = infos[i]
            sock = socket.socket(family, kind, proto)
            sock.setblocking(False)
            try:
                await loop.sock_connect(sock, address)
                return sock
            except OSError as exc:
                sock.close()
                last = exc
            except BaseException:
                sock.close()
                raise
        assert last is not None
        raise last


def _display(host: str) -> str:
    return host.strip("[]").rstrip(".")


class GuardedResolver(AbstractResolver):
    """Resolves with ``inner`` (the system resolver by default) and keeps only the answers the
    guard allows; none left is a :class:`DestinationRefused`."""

    def __init__(self, destinations: Destinations, inner: AbstractResolver | None = None) -> None:
        self.destinations = destinations
        self.inner = inner if inner is not None else aiohttp.ThreadedResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if reason := self.destinations.host_refusal(host):
            raise DestinationRefused(reason)
        answers = await self.inner.resolve(host, port, family)
        kept, first = self.destinations.filter(host, [a["host"] for a in answers])
        if not kept:
            raise DestinationRefused(first or f"destination {host} has no address")
        return [answers[i] for i in kept]

    async def close(self) -> None:
        await self.inner.close()


def guard_middleware(destinations: Destinations) -> Any:
    """A client middleware refusing IP-literal and metadata-name destinations before aiohttp
    connects (it never hands IP literals to the resolver)."""

    async def guard(request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType) -> aiohttp.ClientResponse:
        if reason := destinations.host_refusal(request.url.host or ""):
            raise DestinationRefused(reason)
        return await handler(request)

    return guard


def guarded_session(
    destinations: Destinations,
    *,
    concurrency: int,
    timeout: float,
    headers: dict[str, str] | None = None,
    resolver: AbstractResolver | None = None,
) -> aiohttp.ClientSession:
    """The one way tidings makes an HTTP session: pooled, guarded, and never through a proxy
    from the environment (``trust_env`` stays off, so the guard sees the real destination)."""
    connector = aiohttp.TCPConnector(
        limit=concurrency,
        limit_per_host=concurrency,
        ttl_dns_cache=300,
        resolver=GuardedResolver(destinations, resolver),
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=aiohttp.ClientTimeout(total=timeout, connect=min(timeout, 10.0)),
        headers=headers,
        raise_for_status=False,
        trust_env=False,
        middlewares=(guard_middleware(destinations),),
    )


__all__ = [
    "HINT",
    "METADATA_ADDRESSES",
    "METADATA_NAMES",
    "DestinationRefused",
    "Destinations",
    "GuardedResolver",
    "check_entry",
    "guard_middleware",
    "guarded_session",
    "literal_address",
]
