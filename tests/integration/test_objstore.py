"""ObjectStore against a real S3 server (SeaweedFS on loopback)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from devstack.procs import free_ports
from services.common.objstore import ObjectStore
from videobg import object_keys
from videobg.errors import NotFound, Transient

from .conftest import S3_ACCESS_KEY, S3_SECRET_KEY

pytestmark = pytest.mark.integration


def _http() -> httpx.Client:
    return httpx.Client(trust_env=False, timeout=10.0)  # no proxy from the environment: loopback only


def test_bytes_round_trip(object_store: ObjectStore, uid: str) -> None:
    key = object_keys.matte_manifest(uid)
    object_store.put_bytes(key, b'{"chunks": 3}', content_type="application/json")
    assert object_store.get_bytes(key) == b'{"chunks": 3}'
    assert object_store.exists(key)
    st = object_store.stat(key)
    assert (st.size, st.content_type) == (13, "application/json")


def test_multi_mb_file_round_trip(object_store: ObjectStore, uid: str, tmp_path: Path) -> None:
    src = tmp_path / "source.mp4"
    data = os.urandom(12 * 1024 * 1024 + 123)  # > 2 multipart parts of 5 MiB, odd tail
    src.write_bytes(data)
    key = object_keys.source(uid, ".mp4")
    object_store.put_file(key, src)
    assert object_store.stat(key).size == len(data)
    dst = object_store.get_file(key, tmp_path / "out" / "copy.mp4")
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert object_store.stat(key).content_type == "video/mp4"


def test_missing_key_is_not_found(object_store: ObjectStore, uid: str, tmp_path: Path) -> None:
    key = object_keys.result(uid, ".mp4")
    assert not object_store.exists(key)
    with pytest.raises(NotFound):
        object_store.get_bytes(key)
    with pytest.raises(NotFound):
        object_store.stat(key)
    with pytest.raises(NotFound):
        object_store.get_file(key, tmp_path / "x.mp4")
    assert not (tmp_path / "x.mp4").exists()


def test_missing_bucket_is_not_found(s3_endpoint: str) -> None:
    store = ObjectStore(s3_endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, "vbg-no-such-bucket")
    with pytest.raises(NotFound):
        store.get_bytes("uploads/a")


def test_unreachable_server_is_transient() -> None:
    (port,) = free_ports(1)  # nothing listens there
    store = ObjectStore(f"127.0.0.1:{port}", "k", "s", "bucket", connect_timeout_s=1.0, retries=0)
    with pytest.raises(Transient):
        store.get_bytes("uploads/a")
    with pytest.raises(Transient):
        store.put_bytes("uploads/a", b"x")


def test_presigned_get_downloads_then_expires(object_store: ObjectStore, uid: str) -> None:
    key = object_keys.result(uid, ".webm")
    object_store.put_bytes(key, b"result bytes")
    with _http() as http:
        url = object_store.presigned_get(key, expires=3600)
        r = http.get(url)
        assert r.status_code == 200 and r.content == b"result bytes"

        short = object_store.presigned_get(key, expires=1)
        assert http.get(short).status_code == 200
        time.sleep(2.5)  # X-Amz-Date has 1 s resolution
        assert http.get(short).status_code == 403


class _TcpForwarder:
    """127.0.0.1:<port> -> target, bytes passed unchanged: stands in for an ingress in front of S3."""

    def __init__(self, target_port: int):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.target_port = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.server.close()


def test_presigned_url_uses_public_endpoint(object_store: ObjectStore, s3_endpoint: str, uid: str) -> None:
    key = object_keys.upload(uid)
    object_store.put_bytes(key, b"via the public host")
    fwd = _TcpForwarder(int(s3_endpoint.rsplit(":", 1)[1]))
    try:
        public = ObjectStore(
            s3_endpoint,
            S3_ACCESS_KEY,
            S3_SECRET_KEY,
            object_store.bucket,
            public_endpoint=f"http://127.0.0.1:{fwd.port}",
        )
        url = public.presigned_get(key, expires=60)
        parts = urlsplit(url)
        assert parts.netloc == f"127.0.0.1:{fwd.port}"
        with _http() as http:
            r = http.get(url)
            assert r.status_code == 200 and r.content == b"via the public host"
            # The signature covers the host: the same URL sent straight to the server is refused.
            direct = urlunsplit(parts._replace(netloc=s3_endpoint))
            assert http.get(direct).status_code == 403
    finally:
        fwd.close()


def test_wait_for_sees_a_late_writer_and_times_out(object_store: ObjectStore, uid: str) -> None:
    key = object_keys.matte_chunk(uid, 0)
    writer = threading.Timer(0.5, object_store.put_bytes, args=(key, b"matte"))
    writer.start()
    try:
        t0 = time.monotonic()
        st = object_store.wait_for(key, timeout=10, poll=0.1)
        assert st.size == len(b"matte") and 0.4 < time.monotonic() - t0 < 5
    finally:
        writer.join()

    t0 = time.monotonic()
    with pytest.raises(Transient, match="did not appear"):
        object_store.wait_for(object_keys.matte_chunk(uid, 1), timeout=0.6, poll=0.1)
    assert 0.5 < time.monotonic() - t0 < 3


def test_delete_prefix_only_touches_the_prefix(object_store: ObjectStore, uid: str) -> None:
    other = f"{uid}x"
    for i in range(3):
        object_store.put_bytes(object_keys.matte_chunk(uid, i), b"m")
    object_store.put_bytes(object_keys.source(uid, ".mov"), b"s")
    object_store.put_bytes(object_keys.source(other, ".mov"), b"keep")
    assert object_store.list_keys(object_keys.matte_prefix(uid)) == [
        object_keys.matte_chunk(uid, i) for i in range(3)
    ]

    assert object_store.delete_prefix(object_keys.job_prefix(uid)) == 4
    assert object_store.list_keys(object_keys.job_prefix(uid)) == []
    assert object_store.get_bytes(object_keys.source(other, ".mov")) == b"keep"
    assert object_store.delete_prefix(object_keys.job_prefix(uid)) == 0
    with pytest.raises(ValueError):
        object_store.delete_prefix("")
