"""An archive in a bucket, read as a stream: no local copy first, memory bounded by the
reader's own chunks.

A stream that breaks (a reset, a timeout, a proxy that cuts the connection) is resumed from
the byte it reached with a ranged GET pinned to the object's ETag (`If-Match`), so the bytes
after the break are the same object's; after `RESUMES` breaks in a row it is an environment
failure (exit 4) that says where it stopped.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING, Any

from ..errors import EnvironmentFault, InputError
from .client import is_not_found, is_precondition_failed, make_client, translate
from .url import RemoteObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Breaks in a row with no byte read between them, and breaks in all, before giving up.
RESUMES = 5
MAX_BREAKS = 30


def _stream_errors() -> tuple[type[BaseException], ...]:
    from botocore import exceptions as bx
    from urllib3 import exceptions as ux

    return (bx.BotoCoreError, ux.HTTPError, ConnectionError, TimeoutError, OSError)


class RemoteSource:
    def __init__(self, obj: RemoteObject, client: S3Client | None = None) -> None:
        self.label = obj.url
        self._obj = obj
        self._client = client or make_client()
        try:
            head = self._client.head_object(Bucket=obj.bucket, Key=obj.key)
        except Exception as err:
            if is_not_found(err):
                raise InputError(
                    f"archive {obj.url} does not exist: see `backupkit list --remote "
                    f"s3://{obj.bucket}/{obj.key.rpartition('/')[0]}`"
                ) from None
            raise translate(err, "opening", obj.url) from err
        self._size = int(head["ContentLength"])
        self._etag = str(head["ETag"])
        self._streams: list[RemoteStream] = []

    def size(self) -> int:
        return self._size

    def read_at(self, offset: int, n: int) -> bytes:
        if n <= 0 or offset >= self._size:
            return b""
        end = min(offset + n, self._size)
        stream = RemoteStream(self._client, self._obj, self._etag, offset, end)
        try:
            out = bytearray()
            while len(out) < n:
                chunk = stream.read(n - len(out))
                if not chunk:
                    break
                out += chunk
            return bytes(out)
        finally:
            stream.close()

    def stream(self, length: int | None) -> RemoteStream:
        end = self._size if length is None else min(length, self._size)
        stream = RemoteStream(self._client, self._obj, self._etag, 0, end)
        self._streams.append(stream)
        return stream

    def close(self) -> None:
        for stream in self._streams:
            stream.close()


class RemoteStream:
    """A read-only file object over bytes [start, end) of one version of an object."""

    def __init__(
        self, client: S3Client, obj: RemoteObject, etag: str, start: int, end: int
    ) -> None:
        self._client, self._obj, self._etag = client, obj, etag
        self._pos, self._end = start, end
        self._body: Any = None
        self._breaks = 0
        self.failure: BaseException | None = None  # what ended the stream, for age's reader

    def readable(self) -> bool:
        return True

    def _open(self) -> None:
        try:
            reply = self._client.get_object(
                Bucket=self._obj.bucket,
                Key=self._obj.key,
                Range=f"bytes={self._pos}-{self._end - 1}",
                IfMatch=self._etag,
            )
        except Exception as err:
            if is_precondition_failed(err):
                raise EnvironmentFault(
                    f"{self._obj.url} changed while it was read: run again"
                ) from err
            if isinstance(err, _stream_errors()):
                raise  # a break, resumed by the caller like one in the middle of the body
            raise translate(err, "reading", self._obj.url) from err
        self._body = reply["Body"]

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._read(size)
        except BaseException as err:
            self.failure = err
            raise

    def _read(self, size: int | None) -> bytes:
        left = self._end - self._pos
        want = left if size is None or size < 0 else min(size, left)
        in_a_row = 0
        while want > 0:
            try:
                if self._body is None:
                    self._open()
                chunk = self._body.read(want)
                if chunk:
                    self._pos += len(chunk)
                    return bytes(chunk)
                cause: BaseException | None = None  # the body ended before its range did
            except _stream_errors() as err:
                if isinstance(err, EnvironmentFault):
                    raise
                cause = err
            self.close()
            in_a_row += 1
            self._breaks += 1
            if in_a_row > RESUMES or self._breaks > MAX_BREAKS:
                raise EnvironmentFault(
                    f"the connection to the object store broke {self._breaks} times while "
                    f"reading {self._obj.url} (at byte {self._pos} of {self._end}): check the "
                    "network and run again"
                ) from cause
            time.sleep(min(0.1 * 2**in_a_row, 2.0))
        return b""

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if self._body is not None:
            with contextlib.suppress(Exception):  # a broken body is being dropped anyway
                self._body.close()
            self._body = None
