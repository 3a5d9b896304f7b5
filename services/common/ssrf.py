"""Which addresses a user-given URL may make this service connect to (the SSRF guard).

Video URLs, background-image URLs and webhook URLs come from callers. Fetched naively they would let a
caller read the cluster's insides (the S3 endpoint, NATS monitoring, a cloud metadata service that hands
out credentials). `guard(url)` decides, before any connection is opened:

    scheme http/https, a host, no user:password@     else Refused (invalid_parameter)
    a literal IP, or the host resolved ONCE          every address must be public, else Refused
    the result: a Target holding the vetted addresses

Callers then connect to one of `Target.addresses` themselves, sending the original host as Host header and
TLS SNI (so certificates are checked against the name), and never resolve the name again: a DNS answer
that changes between the check and the connection (DNS rebinding) cannot move the request inside. Every
redirect hop is a new URL and goes through `guard` again (services/common/fetch.py).

Refused: loopback, private (RFC 1918, fc00::/7), link-local (169.254/16, fe80::/10, which holds the
metadata service 169.254.169.254), CGNAT 100.64/10, unspecified, multicast, reserved and documentation
ranges, cloud metadata names, and IPv6 forms that embed a refused IPv4 address (::ffff:10.0.0.1,
64:ff9b::a00:1, 2002:a00:1::). An operator allow-list (`AllowList`, from a setting such as
VBG_INGEST_FETCH_ALLOW="127.0.0.0/8,::1/128,minio.internal") admits CIDRs and exact host names anyway: a
local stack serving clips from 127.0.0.1, an in-cluster media server.

No transport library is imported here: the guard only decides.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator

from videobg.errors import InvalidInput, Transient

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]  # (host, port) -> address strings, in preference order

_V4 = ipaddress.IPv4Network
_V6 = ipaddress.IPv6Network

# (network, why) checked in order; the first match names the reason.
BLOCKED: tuple[tuple[IPNetwork, str], ...] = (
    (_V4("0.0.0.0/8"), "unspecified"),
    (_V4("10.0.0.0/8"), "private"),
    (_V4("100.64.0.0/10"), "shared (CGNAT)"),
    (_V4("127.0.0.0/8"), "loopback"),
    (_V4("169.254.169.254/32"), "cloud metadata"),
    (_V4("169.254.0.0/16"), "link-local"),
    (_V4("172.16.0.0/12"), "private"),
    (_V4("192.0.0.0/24"), "reserved"),
    (_V4("192.0.2.0/24"), "documentation"),
    (_V4("192.88.99.0/24"), "reserved"),
    (_V4("192.168.0.0/16"), "private"),
    (_V4("198.18.0.0/15"), "reserved"),
    (_V4("198.51.100.0/24"), "documentation"),
    (_V4("203.0.113.0/24"), "documentation"),
    (_V4("224.0.0.0/4"), "multicast"),
    (_V4("240.0.0.0/4"), "reserved"),  # and 255.255.255.255
    (_V6("::/128"), "unspecified"),
    (_V6("::1/128"), "loopback"),
    (_V6("::/96"), "reserved"),  # deprecated IPv4-compatible addresses
    (_V6("64:ff9b:1::/48"), "private"),  # local-use NAT64
    (_V6("100::/64"), "reserved"),  # discard-only
    (_V6("2001::/32"), "reserved"),  # Teredo: the inner address cannot be vetted
    (_V6("2001:db8::/32"), "documentation"),
    (_V6("fd00:ec2::254/128"), "cloud metadata"),
    (_V6("fc00::/7"), "private"),
    (_V6("fe80::/10"), "link-local"),
    (_V6("fec0::/10"), "private"),  # deprecated site-local
    (_V6("ff00::/8"), "multicast"),
)
_NAT64 = _V6("64:ff9b::/96")

# Names that reach a metadata service without being a metadata address in every resolver's view.
BLOCKED_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)


class Refused(InvalidInput):
    """The URL points somewhere this service does not connect to (public code: invalid_parameter)."""


# --- the operator's allow-list -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AllowList:
    """CIDRs and exact host names that pass the guard even though they are not public."""

    networks: tuple[IPNetwork, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, entries: str | Iterable[str]) -> AllowList:
        """'127.0.0.0/8, ::1/128, minio.internal' (commas or whitespace) -> AllowList; ValueError if an
        entry is neither a CIDR / address nor a host name."""
        if isinstance(entries, str):
            entries = entries.replace(",", " ").split()
        nets: list[IPNetwork] = []
        hosts: set[str] = set()
        for raw in entries:
            entry = raw.strip()
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=False))
                continue
            except ValueError:
                pass
            name = _normal_host(entry)
            if not name or any(c in name for c in "/:@ []") or name.replace(".", "").isdigit():
                raise ValueError(f"allow-list entry {raw!r} is neither a CIDR nor a host name")
            hosts.add(name)
        return cls(tuple(nets), frozenset(hosts))

    def permits(self, host: str, ip: IPAddress | None = None) -> bool:
        if _normal_host(host) in self.hosts:
            return True
        if ip is None:
            return False
        inner = _embedded_v4(ip)
        candidates = (ip,) if inner is None else (ip, inner)
        return any(c.version == n.version and c in n for c in candidates for n in self.networks)

    def __bool__(self) -> bool:
        return bool(self.networks or self.hosts)

    def __str__(self) -> str:
        return ",".join([*(str(n) for n in self.networks), *sorted(self.hosts)])


NOTHING = AllowList()


@functools.lru_cache(maxsize=64)
def allow_list(value: str) -> AllowList:
    """A setting's string -> AllowList (cached: settings are parsed once, used per request)."""
    return AllowList.parse(value)


def as_allow_list(value: AllowList | str | None) -> AllowList:
    if value is None:
        return NOTHING
    return value if isinstance(value, AllowList) else allow_list(value)


def _validate_setting(value: str) -> str:
    return str(AllowList.parse(value))


# A settings field type: `fetch_allow: AllowSetting = ""` fails at start-up on a malformed entry.
AllowSetting = Annotated[str, AfterValidator(_validate_setting)]


# --- addresses ----------------------------------------------------------------------------------------------


def _normal_host(host: str) -> str:
    return host.strip().lower().rstrip(".")


def _embedded_v4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries: IPv4-mapped, NAT64 (well-known prefix) or 6to4."""
    if ip.version != 6:
        return None
    assert isinstance(ip, ipaddress.IPv6Address)
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return ip.sixtofour


def blocked_reason(ip: IPAddress) -> str | None:
    """Why `ip` is refused ('private', 'loopback', ...), or None for a public address."""
    inner = _embedded_v4(ip)
    if inner is not None:
        why = blocked_reason(inner)
        return f"{why} (embedded in IPv6)" if why else None
    if isinstance(ip, ipaddress.IPv6Address) and ip.scope_id:
        return "link-local"
    for net, why in BLOCKED:
        if ip.version == net.version and ip in net:
            return why
    return None


def resolve(host: str, port: int) -> list[str]:
    """The system resolver: every address of `host`, in the order to try. Tests patch this function."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    seen: list[str] = []
    for _family, _type, _proto, _canon, sockaddr in infos:
        addr = str(sockaddr[0])
        if addr not in seen:
            seen.append(addr)
    return seen


# --- the guard ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """A vetted URL: connect to one of `addresses`, with `host_header` as Host and `sni` as TLS name."""

    url: str
    scheme: str
    host: str  # as in the URL, lower case, IDNA-encoded, without brackets
    port: int
    addresses: tuple[IPAddress, ...]

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"

    @property
    def sni(self) -> str | None:
        """The TLS server name: the host name (certificates are checked against it); None for IP URLs."""
        if self.scheme != "https" or _is_ip(self.host):
            return None
        return self.host

    def url_for(self, address: IPAddress) -> str:
        """The URL with its host replaced by `address`: what a client connects to, no resolving left."""
        parts = urlsplit(self.url)
        host = f"[{address.compressed}]" if address.version == 6 else str(address)
        return urlunsplit((self.scheme, f"{host}:{self.port}", parts.path or "/", parts.query, ""))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def guard(
    url: str, allow: AllowList | str | None = None, *, what: str = "URL", resolver: Resolver | None = None
) -> Target:
    """Decide whether the service may connect to `url`; no connection is opened here (only a DNS lookup
    for a host name). Raises Refused (invalid_parameter) with a message naming `what`, InvalidInput for a
    name that does not resolve, Transient when the resolver is temporarily failing."""
    policy = as_allow_list(allow)
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as e:
        raise Refused(f"The {what} is not a valid URL: {e}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"The {what} must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise Refused(f"The {what} must not carry a user name or password")
    try:
        host = parts.hostname.rstrip(".").encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise Refused(f"The {what} has an invalid host name") from None
    if not host:
        raise Refused(f"The {what} has an invalid host name")
    port = port or (443 if scheme == "https" else 80)
    if host in BLOCKED_HOSTS and not policy.permits(host):
        raise Refused(f"The {what} points to a cloud metadata service, which the service does not fetch from")

    literal = _is_ip(host)
    raw = [host] if literal else _lookup(resolver or resolve, host, port, what)
    addresses: list[IPAddress] = []
    for text in raw:
        try:
            ip = ipaddress.ip_address(text)
        except ValueError:
            raise Refused(f"The {what}'s host resolves to something that is not an address") from None
        why = blocked_reason(ip)
        if why is not None and not policy.permits(host, ip):
            where = f"is a {why} address" if literal else f"resolves to a {why} address"
            raise Refused(f"The {what}'s host {host} {where}; the service only fetches from public addresses")
        addresses.append(ip)
    if not addresses:
        raise InvalidInput(f"The host of the {what} ({host}) does not resolve")
    return Target(url=url.strip(), scheme=scheme, host=host, port=port, addresses=tuple(addresses))


def _lookup(resolver: Resolver, host: str, port: int, what: str) -> list[str]:
    try:
        return resolver(host, port)
    except socket.gaierror as e:
        if e.errno == socket.EAI_AGAIN:
            raise Transient(f"Resolving the host of the {what} ({host}) failed temporarily") from None
        raise InvalidInput(f"The host of the {what} ({host}) does not resolve") from None
    except (UnicodeError, OSError) as e:
        raise InvalidInput(f"The host of the {what} ({host}) could not be resolved: {e}") from None


async def check_webhook_url(url: str, allow: AllowList | str | None) -> None:
    """Refuse at submit what webhook delivery would refuse: InvalidInput (400 invalid_parameter) for a
    URL that is not http(s) or whose host is (or resolves to) a non-public address outside `allow`.
    Resolves the host once, in a thread; opens no connection."""
    if url:
        await asyncio.to_thread(guard, url, allow, what="webhook URL")
