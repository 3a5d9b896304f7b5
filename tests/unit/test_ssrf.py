"""The SSRF guard decides without connecting: literal addresses, names through a patched resolver (no DNS,
no network), the operator's allow-list, and fetch_to_file refusing before it opens a connection."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from services.common import fetch, ssrf
from services.common.ssrf import AllowList, Refused, blocked_reason, guard
from videobg.errors import InvalidInput, Transient

pytestmark = pytest.mark.unit

REFUSED_LITERALS = [
    "http://10.0.0.1/x.mp4",
    "http://10.255.255.255/x.mp4",
    "http://172.16.0.1/x.mp4",
    "http://172.31.255.1/x.mp4",
    "http://192.168.1.1/x.mp4",
    "http://169.254.169.254/latest/meta-data/",
    "http://169.254.1.1/x",
    "http://100.64.0.1/x",
    "http://127.0.0.1/x.mp4",
    "http://127.8.9.10:8080/x.mp4",
    "http://0.0.0.0/x",
    "http://224.0.0.1/x",
    "http://255.255.255.255/x",
    "http://[::1]/x.mp4",
    "http://[::]/x",
    "http://[fd00::1]/x.mp4",
    "http://[fc00::1]/x",
    "http://[fe80::1]/x",
    "http://[fd00:ec2::254]/latest/meta-data/",
    "http://[ff02::1]/x",
    "http://[::ffff:10.0.0.1]/x.mp4",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:169.254.169.254]/x",
    "http://[64:ff9b::a00:1]/x",  # NAT64 of 10.0.0.1
    "http://[2002:a00:1::1]/x",  # 6to4 of 10.0.0.1
    "https://[::1]:8443/x",
]


def no_dns(host: str, port: int) -> list[str]:
    raise AssertionError(f"the guard resolved {host!r}: a literal address needs no lookup")


def fake_dns(table: dict[str, list[str]]):
    calls: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return table[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


@pytest.mark.parametrize("url", REFUSED_LITERALS)
def test_refuses_non_public_literals(url: str) -> None:
    with pytest.raises(Refused) as e:
        guard(url, resolver=no_dns)
    assert e.value.code == "invalid_parameter"


def test_refuses_names_that_resolve_inside(monkeypatch: pytest.MonkeyPatch) -> None:
    dns = fake_dns(
        {
            "intranet.example.com": ["10.0.0.1"],
            "router.example.com": ["192.168.1.1"],
            "meta.example.com": ["169.254.169.254"],
            "v6.example.com": ["fd00::1"],
            "loop.example.com": ["::1"],
            "mapped.example.com": ["::ffff:10.0.0.1"],
            "zero.example.com": ["0.0.0.0"],
            "mixed.example.com": ["93.184.216.34", "10.0.0.1"],  # one bad address is enough
        }
    )
    monkeypatch.setattr(ssrf, "resolve", dns)  # the module's resolver: what every caller gets by default
    for host in ("intranet", "router", "meta", "v6", "loop", "mapped", "zero", "mixed"):
        with pytest.raises(Refused, match="resolves to a"):
            guard(f"https://{host}.example.com/video.mp4")
    assert len(dns.calls) == 8  # type: ignore[attr-defined]


def test_refuses_metadata_names_before_resolving() -> None:
    for url in ("http://metadata.google.internal/computeMetadata/v1/", "http://METADATA.google.internal./x"):
        with pytest.raises(Refused, match="metadata"):
            guard(url, resolver=no_dns)


def test_accepts_public_addresses_without_connecting(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_connect(*a, **kw):
        raise AssertionError("the guard opened a connection")

    monkeypatch.setattr(socket, "create_connection", no_connect)
    monkeypatch.setattr(socket.socket, "connect", no_connect)
    t = guard("https://93.184.216.34/clip.mp4?sig=abc", resolver=no_dns)
    assert t.addresses == (ipaddress.ip_address("93.184.216.34"),)
    assert (t.scheme, t.host, t.port, t.sni) == ("https", "93.184.216.34", 443, None)
    assert t.url_for(t.addresses[0]) == "https://93.184.216.34:443/clip.mp4?sig=abc"

    dns = fake_dns({"cdn.example.com": ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]})
    t = guard("https://CDN.example.com:8443/a/b.mov", resolver=dns)
    assert [str(a) for a in t.addresses] == ["2606:2800:220:1:248:1893:25c8:1946", "93.184.216.34"]
    assert (t.host_header, t.sni) == ("cdn.example.com:8443", "cdn.example.com")
    assert t.url_for(t.addresses[0]) == "https://[2606:2800:220:1:248:1893:25c8:1946]:8443/a/b.mov"


def test_bad_urls_are_invalid_parameter() -> None:
    for url in ("file:///etc/passwd", "ftp://93.184.216.34/x", "gopher://x", "http:///nohost", "not a url",
                "http://user:pw@93.184.216.34/x", "http://93.184.216.34:99999/x"):  # fmt: skip
        with pytest.raises(InvalidInput):
            guard(url, resolver=no_dns)


def test_resolver_failures() -> None:
    with pytest.raises(InvalidInput, match="does not resolve"):
        guard("http://nowhere.invalid/x", resolver=fake_dns({}))

    def flaky(host: str, port: int) -> list[str]:
        raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")

    with pytest.raises(Transient):
        guard("http://example.com/x", resolver=flaky)


def test_allow_list() -> None:
    allow = AllowList.parse("127.0.0.0/8, ::1/128 media.internal")
    assert str(allow) == "127.0.0.0/8,::1/128,media.internal"
    assert guard("http://127.0.0.1:8000/x.mp4", allow, resolver=no_dns).port == 8000
    assert guard("http://[::1]:8000/x.mp4", allow, resolver=no_dns).addresses[0].version == 6
    assert guard("http://[::ffff:127.0.0.1]/x", allow, resolver=no_dns)  # mapped form of an allowed one
    dns = fake_dns({"media.internal": ["10.1.2.3"], "localhost": ["127.0.0.1", "::1"]})
    assert str(guard("http://media.internal/x", allow, resolver=dns).addresses[0]) == "10.1.2.3"
    assert len(guard("http://localhost/x", allow, resolver=dns).addresses) == 2
    for url in ("http://10.0.0.1/x", "http://169.254.169.254/", "http://[fd00::1]/"):
        with pytest.raises(Refused):
            guard(url, allow, resolver=no_dns)
    # the setting's string form works the same, and a narrow allow-list admits only what it names
    assert guard("http://127.0.0.2/x", "127.0.0.2/32", resolver=no_dns)
    with pytest.raises(Refused):
        guard("http://127.0.0.1/x", "127.0.0.2/32", resolver=no_dns)
    with pytest.raises(Refused):
        guard("http://127.0.0.1/x", "", resolver=no_dns)
    for bad in ("10.0.0.0/33", "a/b", "user@host", "http://x"):
        with pytest.raises(ValueError):
            AllowList.parse(bad)


def test_blocked_reasons() -> None:
    def reason(text: str) -> str | None:
        return blocked_reason(ipaddress.ip_address(text))

    assert reason("169.254.169.254") == "cloud metadata"
    assert reason("fd00:ec2::254") == "cloud metadata"
    assert reason("10.0.0.1") == "private" and reason("100.64.0.1") == "shared (CGNAT)"
    assert reason("::ffff:192.168.0.1") == "private (embedded in IPv6)"
    for public in ("93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8", "172.32.0.1"):
        assert reason(public) is None, public


def test_fetch_refuses_before_connecting(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fetch_to_file checks the URL first: nothing is sent to a refused address (the transport would
    fail the test if it were asked)."""

    class NoTransport(fetch.httpx.BaseTransport):
        def handle_request(self, request):
            raise AssertionError(f"a request went out to {request.url}")

    client = fetch.httpx.Client(transport=NoTransport())
    monkeypatch.setattr(ssrf, "resolve", fake_dns({"evil.example.com": ["127.0.0.1"]}))
    for url in ("http://10.0.0.1/x.mp4", "http://evil.example.com/x.mp4", "http://[::1]/x"):
        with pytest.raises(InvalidInput):
            fetch.fetch_to_file(url, tmp_path / "x", max_bytes=1000, what="source video", client=client)
    assert not (tmp_path / "x").exists()


def test_fetch_connects_to_the_vetted_address_and_rechecks_redirects(tmp_path, monkeypatch) -> None:
    """The request goes to the address the guard saw, with the name as Host and TLS server name; the
    resolver is asked once per hop (a second answer cannot move the request: DNS rebinding), and a
    redirect into the private range is refused before the second request. No network: a mock transport
    answers in-process."""
    answers = {"cdn.example.com": [["93.184.216.34"], ["10.0.0.1"]]}  # first answer public, then not

    def rebinding(host: str, port: int) -> list[str]:
        return answers[host].pop(0)

    seen: list[fetch.httpx.Request] = []

    def handler(request: fetch.httpx.Request) -> fetch.httpx.Response:
        seen.append(request)
        if request.url.path == "/hop":
            return fetch.httpx.Response(302, headers={"location": "http://10.0.0.1/x.mp4"})
        return fetch.httpx.Response(200, content=b"video bytes")

    client = fetch.httpx.Client(transport=fetch.httpx.MockTransport(handler))
    monkeypatch.setattr(ssrf, "resolve", rebinding)
    got = fetch.fetch_to_file("https://cdn.example.com/a.mp4", tmp_path / "a", max_bytes=100, client=client)
    assert got.size == 11 and (tmp_path / "a").read_bytes() == b"video bytes"
    (req,) = seen
    assert (str(req.url), req.headers["host"]) == ("https://93.184.216.34/a.mp4", "cdn.example.com")
    assert req.extensions["sni_hostname"] == "cdn.example.com"
    assert answers["cdn.example.com"] == [["10.0.0.1"]], "resolved more than once"

    seen.clear()
    with pytest.raises(Refused, match="10.0.0.1"):
        fetch.fetch_to_file("http://93.184.216.34/hop", tmp_path / "b", max_bytes=100, client=client)
    assert [r.url.path for r in seen] == ["/hop"]
