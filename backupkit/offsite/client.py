"""The S3 client, configured from the standard AWS settings only, and the one place where
botocore's errors become backupkit's (a one-line message and the contract's exit code).

Endpoint, region and credentials come from boto3's own resolution: `AWS_ENDPOINT_URL`
(or `AWS_ENDPOINT_URL_S3`), `AWS_REGION`, `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`,
`AWS_PROFILE` and the shared config files. Nothing here reads a secret itself, and no message
built here holds one.

Checksums: botocore 1.36 and later add CRC32 checksums to every upload by default, which
several S3-compatible servers refuse or mishandle. The client is told to send a checksum only
when an operation requires one (`request_checksum_calculation="when_required"`), and the
uploader sends its own SHA-256 checksums explicitly on every part, which the server checks on
receipt (docs/offsite.md).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from ..errors import BackupError, EnvironmentFault, InputError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

DEFAULT_MAX_ATTEMPTS = 8
_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
_DENIED = {"AccessDenied", "403", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}


def _custom_endpoint(session: Any) -> bool:
    if os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL"):
        return True
    config = session._session.get_scoped_config()  # the profile's settings, as boto3 reads them
    return bool(config.get("endpoint_url") or (config.get("s3") or {}).get("endpoint_url"))


def _addressing_style_set(session: Any) -> bool:
    config = session._session.get_scoped_config()
    return bool((config.get("s3") or {}).get("addressing_style"))


MAX_CLIENTS = 8
_clients: dict[tuple[object, ...], S3Client] = {}
_clients_lock = threading.Lock()


def make_client() -> S3Client:
    """An S3 client from the standard settings, made once per process and settings: a command
    that reads one archive twice (is it encrypted? then its members), or uploads and then
    prunes, would otherwise pay about 80 ms for each new one. A forked child makes its own, so
    no two processes share a connection. boto3 clients are safe to share between threads."""
    key = (os.getpid(), *sorted((k, v) for k, v in os.environ.items() if k.startswith("AWS_")))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            if len(_clients) >= MAX_CLIENTS:  # settings that changed: drop the oldest
                del _clients[next(iter(_clients))]
            client = _clients[key] = _new_client()
        return client


def _new_client() -> S3Client:
    """Against a custom endpoint (MinIO, R2, B2, a local server) path-style addressing is used
    unless the profile sets its own."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as err:  # pragma: no cover - boto3 is a dependency
        raise EnvironmentFault(f"remote copies need boto3, which is not installed: {err}") from err
    session = boto3.session.Session()
    s3: dict[str, Any] = {}
    if _custom_endpoint(session) and not _addressing_style_set(session):
        s3["addressing_style"] = "path"
    # AWS_RETRY_MODE and AWS_MAX_ATTEMPTS are the standard knobs; these are the defaults.
    retries: Any = {
        "mode": os.environ.get("AWS_RETRY_MODE", "standard"),
        "max_attempts": int(os.environ.get("AWS_MAX_ATTEMPTS", DEFAULT_MAX_ATTEMPTS)),
    }
    config = Config(
        retries=retries,
        connect_timeout=10,
        read_timeout=60,
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        s3=s3 or None,  # type: ignore[arg-type]
    )
    if not session.region_name:
        # S3-compatible servers ignore the region, but the signer needs one.
        return session.client("s3", config=config, region_name="us-east-1")
    return session.client("s3", config=config)


def error_code(err: BaseException) -> str:
    """The S3 error code of a botocore ClientError (or its HTTP status), else ''."""
    response = getattr(err, "response", None)
    if not isinstance(response, dict):
        return ""
    code = str((response.get("Error") or {}).get("Code") or "")
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return code or (str(status) if status else "")


def is_precondition_failed(err: BaseException) -> bool:
    return error_code(err) in {"PreconditionFailed", "412"}


def is_not_found(err: BaseException) -> bool:
    return error_code(err) in _NOT_FOUND


def translate(err: BaseException, doing: str, where: str) -> BackupError:
    """One line for a failed S3 operation: what was being done, where, and what to do."""
    if isinstance(err, BackupError):
        return err
    from botocore import exceptions as bx

    if isinstance(err, bx.NoCredentialsError | bx.PartialCredentialsError):
        return EnvironmentFault(
            f"no AWS credentials for {where}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "or AWS_PROFILE (docs/offsite.md)"
        )
    if isinstance(err, bx.EndpointConnectionError | bx.ConnectionClosedError):
        return EnvironmentFault(
            f"cannot reach the object store while {doing} {where}: check AWS_ENDPOINT_URL and "
            "the network, then run again"
        )
    if isinstance(err, bx.ReadTimeoutError | bx.ConnectTimeoutError):
        return EnvironmentFault(f"the object store timed out while {doing} {where}: run again")
    if isinstance(err, bx.ClientError):
        code = error_code(err)
        if code == "NoSuchBucket":
            return InputError(f"bucket of {where} does not exist: create it or fix the URL")
        if code in _NOT_FOUND:
            return InputError(f"{where} does not exist: see `backupkit list --remote`")
        if code in _DENIED:
            return EnvironmentFault(
                f"the object store refused access ({code}) while {doing} {where}: check the "
                "credentials and the bucket policy"
            )
        return EnvironmentFault(f"the object store said {code or 'no'} while {doing} {where}")
    if isinstance(err, bx.BotoCoreError):
        return EnvironmentFault(f"S3 client error while {doing} {where}: {type(err).__name__}")
    if isinstance(err, OSError):
        return EnvironmentFault(f"I/O error while {doing} {where}: {err.strerror or err}")
    return EnvironmentFault(f"internal error while {doing} {where}: {err!r}")
