"""The web console's static side (services/gateway/console): its policy headers, that it leaves the API's
paths alone, that its files load nothing inline or from another origin, and that the model figures it shows
are the ones in docs/. The browser test is tests/e2e/test_console.py."""

from __future__ import annotations

import asyncio
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.gateway import console
from services.gateway.settings import GatewaySettings

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]
STATIC = console.STATIC


def app_with_console(settings: GatewaySettings) -> FastAPI:
    app = FastAPI()

    @app.get("/v1/usage")
    async def usage() -> dict[str, str]:
        return {"owner": "x"}

    console.mount(app, settings)
    return app


def test_policy_names_self_and_the_object_store_only() -> None:
    csp = console.content_security_policy(GatewaySettings(s3_endpoint="10.0.0.5:8333"))
    directives = dict(d.split(" ", 1) for d in csp.split("; "))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'" and directives["style-src"] == "'self'"
    assert directives["media-src"] == "'self' blob: http://10.0.0.5:8333"
    assert directives["connect-src"] == "'self' http://10.0.0.5:8333"
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'none'"
    assert "unsafe" not in csp and "*" not in csp and "data:" not in csp
    # the host browsers download presigned URLs from, when it is not the in-cluster one
    public = GatewaySettings(s3_endpoint="seaweedfs:8333", s3_public_endpoint="https://media.example.org")
    assert "media-src 'self' blob: https://media.example.org;" in console.content_security_policy(public)
    secure = GatewaySettings(s3_endpoint="s3.internal:443", s3_secure=True)
    assert console.storage_origin(secure) == "https://s3.internal:443"


def get_all(app: FastAPI, paths: list[str]) -> dict[str, httpx.Response]:
    async def run() -> dict[str, httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return {p: await client.get(p) for p in paths}

    return asyncio.run(run())


def test_console_paths_carry_the_policy_and_the_api_keeps_its_own() -> None:
    assets = ["/console/" + n for n in ("console.js", "api.js", "console.css", "models.json", "favicon.svg")]
    got = get_all(
        app_with_console(GatewaySettings()),
        ["/", *assets, "/v1/usage", "/v1/no-such-route", "/console/../rest.py"],
    )
    page = got["/"]
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"].startswith("default-src 'none'")
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in page.headers
    for path in assets:
        assert got[path].status_code == 200, path
        assert "content-security-policy" in got[path].headers, path
    api = got["/v1/usage"]
    assert api.json() == {"owner": "x"} and "content-security-policy" not in api.headers
    assert got["/v1/no-such-route"].status_code == 404
    assert got["/console/../rest.py"].status_code == 404


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text = ""
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text += data.strip()


def test_page_has_no_inline_script_style_or_other_origin() -> None:
    parser = _Tags()
    parser.feed((STATIC / "index.html").read_text())
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert scripts and all((a.get("src") or "").startswith("/console/") for a in scripts), scripts
    assert parser.script_text == ""
    for tag, attrs in parser.tags:
        assert "style" not in attrs, tag
        assert not any(name.startswith("on") for name in attrs), (tag, attrs)
        for name in ("src", "href"):
            value = attrs.get(name) or ""
            assert not re.match(r"^(https?:)?//", value), (tag, value)
    for name in ("console.js", "api.js", "console.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"https?://(?!example\.com)", text), name  # placeholders only
        assert "innerHTML" not in text and "eval(" not in text, name  # text goes in as text
        assert "localStorage" not in text and "document.cookie" not in text, name


def _doc_rows(doc: str, pattern: str) -> dict[str, list[str]]:
    """First table row per model matching `pattern` (a regex with a `model` group) in docs/<doc>."""
    rows: dict[str, list[str]] = {}
    for line in (REPO / "docs" / doc).read_text().splitlines():
        m = re.match(pattern, line)
        if m and m["model"] not in rows:
            rows[m["model"]] = [c.strip().strip("*") for c in line.strip().strip("|").split("|")]
    return rows


def test_model_figures_are_the_documented_ones() -> None:
    table = json.loads((STATIC / "models.json").read_text())
    names = [m["name"] for m in table["models"]]
    assert sorted(names) == ["human", "light", "original", "pro"]
    assert table["default"] in names
    speed = _doc_rows("BENCHMARKS.md", r"\| (?P<model>\w+) \| 1280x720 \|")
    quality = _doc_rows("QUALITY.md", r"\| \*\*mean\*\* \| (?P<model>\w+) \|")
    for m in table["models"]:
        # | run | size | frames | matte alone frames/s | end-to-end frames/s | ...
        assert m["fps_720p"] == float(speed[m["name"]][4]), m
        # | clip | model | frames | J | ...
        assert m["mean_j"] == float(quality[m["name"]][3]), m
        assert m["description"]
