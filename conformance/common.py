"""Uploads (seed 002: "Upload your background image and get a URL"; seed 004: a video URL may come "from
upload"), at `--uploads-path` (`POST /v1/uploads`, multipart, one part named `file`)."""

from __future__ import annotations

import mimetypes
from collections.abc import Iterator

from conformance import seeds
from conformance.kit import Kit


def flow_uploads(kit: Kit) -> Iterator[None]:
    opts = kit.opts
    for name, path, quote in (
        ("image", opts.image, seeds.UPLOAD_URL),
        ("sample", opts.sample, seeds.RBV_VIDEO_URL),
    ):
        with kit.case(
            f"uploads.{name}",
            quote,
            f"POST {opts.uploads_path or '(uploads)'} of the {name} → 2xx with an http(s) URL",
        ) as c:
            if not opts.uploads_path:
                c.skip("no upload endpoint (--uploads-path '')")
            if path is None:
                c.skip(f"no local {name} file to upload")
            ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            r = kit.upload(path.name, path.read_bytes(), ctype)
            if r.status in (200, 201):
                kit.uploaded[name] = kit.uploaded.pop(path.name)
            c.expect(r.status in (200, 201), r.short())
            url = c.need_str(kit.upload_url(r), f"{r.short()}: no url")
            c.expect(url.startswith(("http://", "https://")), f"{r.status}, url {url!r}")
            c.got(f"{r.status}, {url[:60]}…" if len(url) > 60 else f"{r.status}, {url}")
    kit.image_url = opts.image_url or kit.upload_url_of("image") or ""
    yield
