"""Upload one archive file to a remote, create-once, and prove the copy before saying so.

The upload is our own multipart loop rather than boto3's transfer manager, because three of
its steps have to be ours:

- **create-once**: `CompleteMultipartUpload` carries `If-None-Match: *`, so the object comes
  into being whole or not at all, and never over an object already there (a PUT-then-check
  would leave a window in which another writer's object is replaced);
- **proof**: every part is sent with its SHA-256, which the server checks on receipt and keeps;
  the object's composite checksum (SHA-256 of the parts' SHA-256s, `-N`) read back with
  `HeadObject` must equal the one computed here from the bytes read, and its size the file's.
  Together that proves the server holds exactly these bytes in this order. A server that keeps
  no checksum gets a streaming read-back of the whole object instead;
- **no leftovers**: a failed upload is aborted at once; one cut short by SIGKILL is aborted by
  the next run (`abort_unfinished`), which knows its keys from the ledger.

Memory is bounded by `PARTS_IN_FLIGHT` parts of `part_size()` bytes.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..archive.format import Frame
from ..errors import EnvironmentFault, InputError, IntegrityError, from_os_error
from ..progress import ProgressCallback, emit
from .client import error_code, is_not_found, is_precondition_failed, make_client, translate
from .url import Remote, RemoteObject

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

MIN_PART = 8 * 1024 * 1024
MAX_PARTS = 10_000
PARTS_IN_FLIGHT = 3
# Whole-upload restarts when the server lost the upload itself (restarted without state).
UPLOAD_ATTEMPTS = 3
# Compliance mode: nobody, the account root included, can shorten or remove the lock; that is
# what keeps a copy out of reach of whoever took over the gateway and its credentials.
LOCK_MODE = "COMPLIANCE"
READ_BACK_CHUNK = 1024 * 1024

META_PART_SIZE = "backupkit-part-size"
META_BACKUP_ID = "backupkit-backup-id"


def part_size(size: int) -> int:
    """Parts of 8 MiB, larger for archives that would need more than S3's 10,000 parts."""
    need = -(-size // MAX_PARTS)
    mib = 1024 * 1024
    return max(MIN_PART, -(-need // mib) * mib)


def composite_sha256(part_digests: Iterable[bytes]) -> str:
    """S3's composite checksum of a multipart object: base64 SHA-256 of the parts' SHA-256s,
    then `-<part count>`."""
    digests = list(part_digests)
    outer = hashlib.sha256(b"".join(digests)).digest()
    return f"{base64.b64encode(outer).decode()}-{len(digests)}"


@dataclass
class RemoteCopy:
    """A remote copy, proven: what is in the bucket is these bytes."""

    url: str
    bucket: str
    key: str
    size_bytes: int
    sha256: str  # hex, of the whole file
    checksum: str | None  # the server's composite SHA-256, when it keeps one
    proof: str  # "sha256-parts" (server-checked part checksums) or "read-back"
    locked_until: datetime | None = None
    already_there: bool = False
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "checksum": self.checksum,
            "proof": self.proof,
            "locked_until_at": (
                self.locked_until.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
                if self.locked_until
                else None
            ),
            "already_there": self.already_there,
        }


@dataclass(frozen=True)
class Expected:
    """What the file's bytes must hash to, frame by frame: each `Frame` (contiguous from
    offset 0) with the sha256 recorded as it was written. A whole-file digest (an encrypted
    archive's ciphertext, an archive sealed over its whole stream) is one frame."""

    frames: tuple[Frame, ...]

    def __post_init__(self) -> None:
        if not self.frames:
            raise ValueError("an expectation needs at least one frame")

    @classmethod
    def whole(cls, length: int, sha256: bytes) -> Expected:
        """The first `length` bytes, as one sha256."""
        return cls((Frame(0, length, sha256),))


def _not_as_written(url: str) -> IntegrityError:
    return IntegrityError(
        "the archive on disk is not the one written (its sha256 differs): not completing the "
        f"upload of {url}; run verify on it"
    )


class _FrameCheck:
    """Each frame's sha256, checked as the file's bytes go by in order."""

    def __init__(self, frames: tuple[Frame, ...], url: str) -> None:
        self._frames, self._url = frames, url
        self._index = 0
        self._hash = hashlib.sha256()
        self._at = 0  # file offset reached

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        while view and self._index < len(self._frames):
            frame = self._frames[self._index]
            take = min(len(view), frame.offset + frame.length - self._at)
            self._hash.update(view[:take])
            view = view[take:]
            self._at += take
            if self._at == frame.offset + frame.length:
                if self._hash.digest() != frame.sha256:
                    raise _not_as_written(self._url)
                self._index += 1
                self._hash = hashlib.sha256()

    @property
    def done(self) -> bool:
        return self._index == len(self._frames)


class _Progress:
    def __init__(self, callback: ProgressCallback | None, total: int, name: str) -> None:
        self._callback, self._total, self._name = callback, total, name
        self._done = 0
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        with self._lock:
            self._done += n
            emit(self._callback, "upload", self._done, self._total, self._name, unit="bytes")


def _head(client: S3Client, obj: RemoteObject) -> dict[str, Any] | None:
    try:
        return dict(client.head_object(Bucket=obj.bucket, Key=obj.key, ChecksumMode="ENABLED"))
    except Exception as err:
        if is_not_found(err):
            return None
        raise translate(err, "looking up", obj.url) from err


def _pread(fd: int, n: int, offset: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        try:
            chunk = os.pread(fd, n - len(out), offset + len(out))
        except OSError as err:
            raise from_os_error(err, "reading the archive for upload") from err
        if not chunk:
            raise EnvironmentFault("the archive shrank while it was uploaded: run again")
        out += chunk
    return bytes(out)


def _local_digests(fd: int, size: int, psize: int) -> tuple[str, str]:
    """(sha256 hex, composite checksum) of the local file cut in parts of `psize`."""
    full = hashlib.sha256()
    parts = []
    for offset in range(0, size, psize) if size else [0]:
        data = _pread(fd, min(psize, size - offset), offset)
        full.update(data)
        parts.append(hashlib.sha256(data).digest())
    return full.hexdigest(), composite_sha256(parts)


def upload_file(
    path: Path,
    remote: Remote,
    *,
    backup_id: str | None = None,
    expect: Expected | None = None,
    retention_days: int | None = None,
    progress: ProgressCallback | None = None,
    client: S3Client | None = None,
    on_started: Callable[[RemoteObject], None] | None = None,
) -> RemoteCopy:
    """Upload `path` to `remote` as `PREFIX/<file name>` and prove it. `expect`, what the
    file's first bytes must hash to (the seal of a plain archive, the sha256 of the ciphertext
    written), is checked against the bytes sent before the upload is completed, so a file
    damaged on disk is never made into a remote copy. `on_started` is called with the object
    before its first byte leaves, so that a run cut short can be cleaned up by the next."""
    client = client or make_client()
    obj = remote.object(path.name)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise InputError(f"archive {path} does not exist: see `backupkit list`") from None
    except OSError as err:
        raise from_os_error(err, "opening the archive for upload") from err
    started = time.monotonic()
    try:
        size = os.fstat(fd).st_size
        head = _head(client, obj)
        if head is not None:
            copy = _already_there(client, obj, head, fd, size, retention_days)
        else:
            if on_started is not None:
                on_started(obj)
            job = _Job(client, obj, fd, size, backup_id, expect, retention_days, progress)
            copy = _upload_retrying(job)
        copy.seconds = time.monotonic() - started
        return copy
    finally:
        os.close(fd)


@dataclass(frozen=True)
class _Job:
    """One upload: the file (open as `fd`), where it goes, and what to ask of the server."""

    client: S3Client
    obj: RemoteObject
    fd: int
    size: int
    backup_id: str | None
    expect: Expected | None
    retention_days: int | None
    progress: ProgressCallback | None


def _upload_retrying(job: _Job) -> RemoteCopy:
    # botocore retries each request (5xx, throttling, dropped connections) with backoff; this
    # loop covers what it cannot: a server that forgot the upload itself.
    for attempt in range(1, UPLOAD_ATTEMPTS + 1):
        try:
            return _upload_once(job)
        except _UploadLost:
            if attempt == UPLOAD_ATTEMPTS:
                break
            time.sleep(min(2.0**attempt, 10.0))
    raise EnvironmentFault(
        f"the object store lost the upload of {job.obj.url} {UPLOAD_ATTEMPTS} times (restarted "
        "without its state?): run again"
    )


def _already_there(
    client: S3Client,
    obj: RemoteObject,
    head: dict[str, Any],
    fd: int,
    size: int,
    retention_days: int | None,
) -> RemoteCopy:
    """An object is already under the key: fine if it is this file, proven; refused if not."""
    meta = head.get("Metadata") or {}
    server = head.get("ChecksumSHA256")
    same = False
    sha = ""
    if head.get("ContentLength") == size:
        psize = _int(meta.get(META_PART_SIZE))
        if server and psize:
            sha, composite = _local_digests(fd, size, psize)
            same = server == composite
        elif not server:
            sha, _ = _local_digests(fd, size, part_size(size))
            same = _read_back_sha256(client, obj, size) == sha
    if not same:
        raise InputError(
            f"{obj.url} already exists and is not a copy of this archive: backupkit never "
            "overwrites a remote object"
        )
    proof = "sha256-parts" if server else "read-back"
    copy = RemoteCopy(obj.url, obj.bucket, obj.key, size, sha, server, proof, already_there=True)
    copy.locked_until = _lock_until(head)
    if retention_days is not None:
        copy.locked_until = _ensure_lock(client, obj, _retain_until(retention_days))
    return copy


def _int(value: object) -> int | None:
    try:
        number = int(str(value))
    except ValueError:
        return None
    return number if number > 0 else None


class _UploadLost(Exception):
    """The server no longer knows the multipart upload (NoSuchUpload): start again."""


def _upload_once(job: _Job) -> RemoteCopy:
    client, obj = job.client, job.obj
    psize = part_size(job.size)
    metadata = {META_PART_SIZE: str(psize)}
    if job.backup_id:
        metadata[META_BACKUP_ID] = job.backup_id
    create: dict[str, Any] = {
        "Bucket": obj.bucket,
        "Key": obj.key,
        "ChecksumAlgorithm": "SHA256",
        "ContentType": "application/octet-stream",
        "Metadata": metadata,
    }
    until = _retain_until(job.retention_days) if job.retention_days is not None else None
    if until is not None:
        create["ObjectLockMode"] = LOCK_MODE
        create["ObjectLockRetainUntilDate"] = until
    try:
        upload_id = client.create_multipart_upload(**create)["UploadId"]
    except Exception as err:
        if until is not None and error_code(err) in {"InvalidRequest", "InvalidBucketState"}:
            raise InputError(
                f"--retention-days needs a bucket with Object Lock enabled, and {obj.bucket} "
                "refused it: create the bucket with Object Lock on, or drop --retention-days"
            ) from err
        raise translate(err, "starting the upload of", obj.url) from err
    try:
        sha, parts = _send_parts(job, upload_id, psize)
        composite = composite_sha256(digest for _n, _etag, digest in parts)
        _complete(client, obj, upload_id, parts, composite)
    except BaseException:
        with contextlib.suppress(Exception):
            client.abort_multipart_upload(Bucket=obj.bucket, Key=obj.key, UploadId=upload_id)
        raise
    return _prove(client, obj, job.size, sha, composite, until)


def _send_parts(job: _Job, upload_id: str, psize: int) -> tuple[str, list[tuple[int, str, bytes]]]:
    """Send every part, `PARTS_IN_FLIGHT` at a time. Returns the whole file's sha256 (hex) and
    (number, ETag, sha256) of each part, in order."""
    client, obj, fd, size, progress = job.client, job.obj, job.fd, job.size, job.progress
    full = hashlib.sha256()
    frames = _FrameCheck(job.expect.frames, obj.url) if job.expect is not None else None
    sent: dict[int, tuple[str, bytes]] = {}
    shown = _Progress(progress, size, obj.name)
    emit(progress, "upload", 0, size, obj.name)

    def send(number: int, data: bytes) -> None:
        digest = hashlib.sha256(data).digest()
        try:
            reply = client.upload_part(
                Bucket=obj.bucket,
                Key=obj.key,
                UploadId=upload_id,
                PartNumber=number,
                Body=data,
                ContentLength=len(data),
                ChecksumSHA256=base64.b64encode(digest).decode(),
            )
        except Exception as err:
            if error_code(err) == "NoSuchUpload":
                raise _UploadLost() from err
            raise translate(err, f"uploading part {number} of", obj.url) from err
        sent[number] = (reply["ETag"], digest)
        shown.add(len(data))

    with ThreadPoolExecutor(max_workers=PARTS_IN_FLIGHT, thread_name_prefix="upload") as pool:
        pending: set[Future[None]] = set()
        try:
            for number, offset in enumerate(range(0, size, psize) if size else [0], start=1):
                while len(pending) >= PARTS_IN_FLIGHT:
                    done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                    for future in done:
                        future.result()
                data = _pread(fd, min(psize, size - offset), offset)
                if frames is not None:
                    frames.feed(data)
                full.update(data)
                pending.add(pool.submit(send, number, data))
            for future in pending:
                future.result()
            if frames is not None and not frames.done:
                raise IntegrityError("the archive is shorter than it was written: not uploaded")
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    return full.hexdigest(), [(n, *sent[n]) for n in sorted(sent)]


def _complete(
    client: S3Client,
    obj: RemoteObject,
    upload_id: str,
    parts: list[tuple[int, str, bytes]],
    composite: str,
) -> None:
    """Complete the upload only if no object is under the key yet (`If-None-Match: *`)."""
    body = {
        "Parts": [
            {"PartNumber": n, "ETag": etag, "ChecksumSHA256": base64.b64encode(d).decode()}
            for n, etag, d in parts
        ]
    }
    try:
        client.complete_multipart_upload(
            Bucket=obj.bucket,
            Key=obj.key,
            UploadId=upload_id,
            MultipartUpload=body,  # type: ignore[arg-type]
            IfNoneMatch="*",
        )
    except Exception as err:
        code = error_code(err)
        if code == "NoSuchUpload" or is_precondition_failed(err):
            # Either our own Complete went through and its reply was lost (botocore retried
            # it), or another writer got there first: the object under the key tells which.
            head = _head(client, obj)
            if head is not None and head.get("ChecksumSHA256") == composite:
                return
            if is_precondition_failed(err):
                raise InputError(
                    f"{obj.url} appeared while this copy was uploaded: backupkit never "
                    "overwrites a remote object"
                ) from err
            raise _UploadLost() from err
        raise translate(err, "completing the upload of", obj.url) from err


def _prove(
    client: S3Client,
    obj: RemoteObject,
    size: int,
    sha: str,
    composite: str,
    until: datetime | None,
) -> RemoteCopy:
    """Compare what the server holds with what was computed here from the bytes read."""
    head = _head(client, obj)
    if head is None:
        raise EnvironmentFault(f"{obj.url} is not there after its upload completed: run again")
    held = head.get("ContentLength")
    if held != size:
        raise IntegrityError(f"{obj.url} holds {held} bytes where {size} were sent")
    server = head.get("ChecksumSHA256")
    if server is not None and server != composite:
        raise IntegrityError(
            f"{obj.url}: the server's checksum {server} is not the {composite} of the bytes sent"
        )
    proof = "sha256-parts"
    if server is None:
        if _read_back_sha256(client, obj, size) != sha:
            raise IntegrityError(f"{obj.url}: the bytes read back are not the bytes sent")
        proof = "read-back"
    copy = RemoteCopy(obj.url, obj.bucket, obj.key, size, sha, server, proof)
    copy.locked_until = _lock_until(head)
    if until is not None:
        copy.locked_until = _ensure_lock(client, obj, until)
    return copy


def _read_back_sha256(client: S3Client, obj: RemoteObject, size: int) -> str:
    """sha256 of the object as the server sends it back, streamed (for servers that keep no
    checksum of their own)."""
    digest = hashlib.sha256()
    got = 0
    try:
        body = client.get_object(Bucket=obj.bucket, Key=obj.key)["Body"]
        for chunk in body.iter_chunks(READ_BACK_CHUNK):
            digest.update(chunk)
            got += len(chunk)
    except Exception as err:
        raise translate(err, "reading back", obj.url) from err
    if got != size:
        raise IntegrityError(f"{obj.url}: {got} bytes read back where {size} were sent")
    return digest.hexdigest()


def _retain_until(days: int) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days)).replace(microsecond=0)


def _lock_until(head: dict[str, Any]) -> datetime | None:
    until = head.get("ObjectLockRetainUntilDate")
    return until if isinstance(until, datetime) else None


def _ensure_lock(client: S3Client, obj: RemoteObject, until: datetime) -> datetime:
    """Make sure the object is locked at least until `until`, and prove it. Some servers
    ignore the lock asked for when the upload started; retention is then set on the object."""
    head = _head(client, obj) or {}
    held = _lock_until(head)
    if held is None or held < until - timedelta(seconds=1):
        try:
            client.put_object_retention(
                Bucket=obj.bucket,
                Key=obj.key,
                Retention={"Mode": "COMPLIANCE", "RetainUntilDate": until},
            )
        except Exception as err:
            raise translate(err, "locking", obj.url) from err
        held = _lock_until(_head(client, obj) or {})
    if held is None or held < until - timedelta(seconds=1):
        raise EnvironmentFault(
            f"{obj.url} was uploaded and proven, but the object store did not keep its lock "
            f"until {until.isoformat()}: check the bucket's Object Lock settings"
        )
    return held


def abort_unfinished(client: S3Client, remote: Remote, keys: set[str]) -> list[str]:
    """Abort the multipart uploads left under `remote` for `keys` (this state dir's own
    archives, from its ledger) by runs that did not finish. Returns the keys cleaned."""
    cleaned = []
    try:
        paginator = client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=remote.bucket, Prefix=remote.key_prefix):
            for upload in page.get("Uploads", []):
                key = upload.get("Key", "")
                if key in keys:
                    client.abort_multipart_upload(
                        Bucket=remote.bucket, Key=key, UploadId=upload["UploadId"]
                    )
                    cleaned.append(key)
    except Exception as err:
        raise translate(err, "cleaning unfinished uploads under", remote.url) from err
    return cleaned
