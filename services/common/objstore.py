"""The S3 object store every stage shares (MinIO in Kubernetes, SeaweedFS locally and in CI).

A thin, synchronous wrapper over the `minio` client that speaks in the project's errors: a missing key or
bucket raises `videobg.errors.NotFound`, an unreachable or failing server raises `Transient` (so a NATS
worker naks and retries later). Other S3 errors (bad credentials, access denied) are operator problems and
propagate unchanged. The minio client is blocking: async callers wrap calls in `asyncio.to_thread`.

Keys come from `videobg.object_keys`; this module does not know the layout.
"""

from __future__ import annotations

import contextlib
import io
import mimetypes
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import minio
import urllib3
from minio.deleteobjects import DeleteObject
from minio.error import InvalidResponseError, S3Error, ServerError

from videobg.errors import NotFound, Transient

_NOT_FOUND_CODES = {"NoSuchKey", "NoSuchBucket", "NoSuchObject", "NotFound", "ResourceNotFound"}
_TRANSIENT_CODES = {"SlowDown", "InternalError", "ServiceUnavailable", "RequestTimeout", "OperationAborted"}
_REGION = "us-east-1"  # fixed, so that no call (presigning included) asks the server for a bucket's location


@dataclass(frozen=True)
class ObjectStat:
    key: str
    size: int  # bytes
    etag: str
    content_type: str | None
    metadata: dict[str, str] = field(default_factory=dict)  # user metadata (x-amz-meta-*), names lower case


def _split_endpoint(endpoint: str, secure: bool) -> tuple[str, bool]:
    """'host:port' (scheme from `secure`) or 'http[s]://host[:port]' -> (host[:port], secure)."""
    if "://" not in endpoint:
        return endpoint, secure
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or parts.path not in ("", "/"):
        raise ValueError(f"endpoint must be host[:port] or http(s)://host[:port], got {endpoint!r}")
    return parts.netloc, parts.scheme == "https"


class ObjectStore:
    """One bucket on one S3 endpoint.

    `public_endpoint` is the host browsers and API clients use for presigned URLs when it differs from the
    in-cluster `endpoint` (an ingress, a port-forward). A presigned URL's signature covers the host, so the
    URL is signed for the public host directly (no request is sent to it) and must reach the same server
    with the Host header unchanged.
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        *,
        public_endpoint: str | None = None,
        region: str = _REGION,
        connect_timeout_s: float = 5.0,
        read_timeout_s: float = 60.0,
        retries: int = 3,
    ):
        self.bucket = bucket
        host, secure = _split_endpoint(endpoint, secure)
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout_s, read=read_timeout_s),
            maxsize=10,
            retries=urllib3.Retry(
                total=retries,
                backoff_factor=0.2,
                status_forcelist=[500, 502, 503, 504],
                raise_on_status=False,
            ),
        )
        self._client = minio.Minio(
            host, access_key=access_key, secret_key=secret_key, secure=secure, region=region, http_client=http
        )
        self._public = self._client
        if public_endpoint:
            phost, psecure = _split_endpoint(public_endpoint, secure)
            self._public = minio.Minio(
                phost, access_key=access_key, secret_key=secret_key, secure=psecure, region=region
            )

    @contextlib.contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        # messages may reach a client (a job's error): the bucket and key go to `detail`, for the logs
        what = f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}"
        try:
            yield
        except S3Error as e:
            if e.code in _NOT_FOUND_CODES:
                raise NotFound("A stored file was not found", detail=f"{what}: {e.code}") from e
            if e.code in _TRANSIENT_CODES:
                raise Transient("The object store is busy", detail=f"{what}: {e.code}") from e
            raise
        except (ServerError, InvalidResponseError, urllib3.exceptions.HTTPError, ConnectionError) as e:
            raise Transient("The object store is unreachable", detail=f"{what}: {e!r}") from e

    def ensure_bucket(self) -> None:
        with self._errors():
            if self._client.bucket_exists(self.bucket):
                return
            try:
                self._client.make_bucket(self.bucket)
            except S3Error as e:  # created by a replica since bucket_exists
                if e.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def put_file(self, key: str, path: str | Path, content_type: str | None = None) -> str:
        """Upload from disk, streamed (multipart above 5 MiB parts), never read whole. Returns the etag."""
        path = Path(path)
        ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        with self._errors(key):
            return self._client.fput_object(self.bucket, key, str(path), content_type=ctype).etag or ""

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        with self._errors(key):
            result = self._client.put_object(
                self.bucket, key, io.BytesIO(data), len(data), content_type=content_type
            )
            return result.etag or ""

    def put_stream(
        self,
        key: str,
        reader: BinaryIO,
        content_type: str = "application/octet-stream",
        *,
        metadata: dict[str, str] | None = None,
        part_size: int = 5 * 1024 * 1024,
    ) -> str:
        """Upload from a reader of unknown length, one `part_size` part in memory at a time (5 MiB is S3's
        smallest part). An exception raised by `reader.read` aborts the upload: no object is left, and
        the exception propagates. Returns the etag."""
        with self._errors(key):
            result = self._client.put_object(
                self.bucket,
                key,
                reader,
                length=-1,
                part_size=part_size,
                content_type=content_type,
                metadata=metadata,  # type: ignore[arg-type]
                num_parallel_uploads=1,
            )
            return result.etag or ""

    def get_file(self, key: str, path: str | Path) -> Path:
        """Download to `path` (via a temporary file beside it, renamed when complete)."""
        with self._errors(key):
            self._client.fget_object(self.bucket, key, str(path))
        return Path(path)

    def get_bytes(self, key: str, offset: int = 0, length: int = 0) -> bytes:
        """The object's bytes; with `length`, only that many from `offset` (a ranged GET)."""
        with self._errors(key):
            resp = self._client.get_object(self.bucket, key, offset=offset, length=length)
            try:
                return resp.read()
            finally:
                resp.close()
                resp.release_conn()

    def stat(self, key: str) -> ObjectStat:
        with self._errors(key):
            o = self._client.stat_object(self.bucket, key)
        meta = {
            k.lower().removeprefix("x-amz-meta-"): v
            for k, v in (o.metadata or {}).items()
            if k.lower().startswith("x-amz-meta-")
        }
        return ObjectStat(
            key=key, size=o.size or 0, etag=o.etag or "", content_type=o.content_type, metadata=meta
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except NotFound:
            return False
        return True

    def list_keys(self, prefix: str) -> list[str]:
        """Keys under `prefix`, in lexical order (matte chunks are zero-padded, so that is frame order)."""
        with self._errors(prefix):
            return sorted(
                o.object_name for o in self._client.list_objects(self.bucket, prefix, recursive=True)
            )

    def keys_older_than(self, prefix: str, age_s: float) -> list[str]:
        """Keys under `prefix` last written more than `age_s` seconds ago (retention sweeps)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=age_s)
        with self._errors(prefix):
            return sorted(
                o.object_name
                for o in self._client.list_objects(self.bucket, prefix, recursive=True)
                if o.last_modified is not None and o.last_modified < cutoff
            )

    def wait_for(self, key: str, timeout: float = 30.0, poll: float = 0.25) -> ObjectStat:
        """Poll until another stage has written `key`. Raises Transient on timeout: the writer may only be
        slow, so a worker naks and tries again later rather than failing the job."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while True:
            try:
                return self.stat(key)
            except (NotFound, Transient) as e:
                last = e
            if time.monotonic() >= deadline:
                raise Transient(
                    f"A stored file did not appear within {timeout:g} s",
                    detail=f"s3://{self.bucket}/{key}",
                ) from last
            time.sleep(poll)

    def presigned_get(self, key: str, expires: float | timedelta = 3600.0) -> str:
        """A GET URL valid for `expires` (1 s .. 7 days), signed for the public endpoint when one is set."""
        if not isinstance(expires, timedelta):
            expires = timedelta(seconds=expires)
        with self._errors(key):
            return self._public.presigned_get_object(self.bucket, key, expires=expires)

    def delete(self, key: str) -> None:
        with self._errors(key):
            self._client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (e.g. `keys.job_prefix(job_id)`); returns how many."""
        if not prefix:
            raise ValueError("refusing to delete the whole bucket: empty prefix")
        with self._errors(prefix):
            names = [o.object_name for o in self._client.list_objects(self.bucket, prefix, recursive=True)]
            if not names:
                return 0
            errors = list(self._client.remove_objects(self.bucket, (DeleteObject(n) for n in names)))
        if errors:
            raise Transient(
                f"Could not delete {len(errors)} stored files", detail=f"under {prefix!r}: {errors[0]}"
            )
        return len(names)
